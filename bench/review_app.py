"""The review app under a team's load: how long a decision takes, from the reviewer's press to the next card shown.

Builds a small crawl (six leaves, 60 products each, synthetic names) and a text-only model with ``modeling.train``,
then a filing queue of ``--cards`` products from a file (the model's real prediction lines, each under its own
record id) and, for comparison in the same run, one of ``--small`` cards. For each queue it starts the real app in
a subprocess (``modeling.review.process``) and lets ``--reviewers`` people work through it at once over HTTP, each
through the pages as a browser does: post the decision (with the form's CSRF token and version), follow the
redirect, read the next card. Prints p50 and p95 of that round trip per queue size, and the refusals (a card
another reviewer took). Goal: p95 <= 100 ms on the 100,000-card queue.

    .venv/bin/python bench/review_app.py [--cards 100000] [--decisions 200] [--reviewers 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from contextlib import closing, redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import httpx
import numpy as np

from modeling import store, train
from modeling.filing_queue import queue_products
from modeling.persistence import load_model
from modeling.predict import prediction_lines
from modeling.review.process import ReviewProcess

GOAL_P95_MS = 100.0
LEAVES = ("tees", "tanks", "jeans", "skirts", "boots", "bags")
WORDS = {"tees": "cotton crew tee", "tanks": "ribbed tank top", "jeans": "denim skinny jeans",
         "skirts": "pleated midi skirt", "boots": "leather ankle boots", "bags": "canvas tote bag"}
NOW = "2026-01-01T00:00:00+00:00"
FIELD = re.compile(r'<input type="hidden" name="(item|seen|csrf)" value="([^"]*)"')


def build_crawl(folder: Path) -> tuple[Path, Path]:
    """A crawl database of six leaves and a text-only model trained on it; (database, model)."""
    db = folder / "crawl.db"
    rng = np.random.default_rng(0)
    adjectives = ("soft", "black", "blue", "slim", "oversized", "vintage", "classic", "washed", "cropped", "long")
    with closing(sqlite3.connect(db)):
        pass
    store.connect(db).close()
    with closing(sqlite3.connect(db)) as connection, connection:
        connection.executemany("INSERT INTO categories (id, name, parent_id, is_leaf, path, first_seen, last_seen) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)", [
            ("women", "Women", None, 0, "women", NOW, NOW),
            *((leaf, leaf, "women", 1, f"women/{leaf}", NOW, NOW) for leaf in LEAVES)])
        connection.executemany(
            "INSERT INTO products (id, name, description, category_id, image_status, first_seen, last_seen) "
            "VALUES (?, ?, '', ?, 'none', ?, ?)",
            [(i * 100 + n, f"{' '.join(rng.choice(adjectives, 2))} {WORDS[leaf]}", leaf, NOW, NOW)
             for i, leaf in enumerate(LEAVES) for n in range(60)])
    models = folder / "models"
    with redirect_stdout(StringIO()), redirect_stderr(StringIO()):
        assert train.main(["--db", str(db), "--images", str(folder), "--image-backbone", "none", "--out",
                           str(models), "--min-products", "5", "--no-progress", "--labels", "crawled"]) == 0
    return db, next(models.glob("*.joblib"))


def fill_queue(source: Path, target: Path, model_path: Path, cards: int) -> Path:
    """A copy of the crawl with ``cards`` products from a file in its filing queue, with real prediction lines."""
    with closing(sqlite3.connect(source)) as original, closing(sqlite3.connect(target)) as copy:
        original.backup(copy)
    model = load_model(model_path)
    rows = [{"id": i, "name": f"new {WORDS[LEAVES[i % len(LEAVES)]]} {i}", "description": "", "image_path": None}
            for i in range(500)]
    lines = list(prediction_lines(model, rows))
    with closing(store.connect(target)) as connection:
        for start in range(0, cards, 10_000):
            with connection.begin():
                queue_products(connection, [({**rows[i % 500], "id": f"p{i}"}, lines[i % 500])
                                            for i in range(start, min(start + 10_000, cards))],
                               source="bench.jsonl", model_path=str(model_path), from_crawl=False)
    return target


def card_of(html: str) -> dict:
    return dict(FIELD.findall(html))


def reviewer(url: str, name: str, decisions: int, times: list[float], refused: list[int],
             start: threading.Barrier) -> None:
    """One person: sign in as ``name``, then decide ``decisions`` cards in a row, timing each round trip."""
    with httpx.Client(base_url=url, follow_redirects=True, timeout=60) as client:
        home = client.get("/")
        client.post("/login", data={"name": name, "csrf": re.search(r'name="csrf" value="([^"]+)"',
                                                                      home.text).group(1)})
        card = card_of(client.get("/queue/file").text)
        start.wait()
        for _ in range(decisions):
            began = time.perf_counter()
            answer = client.post("/queue/file/decide", data={**card, "choice": "exclude"})
            times.append(time.perf_counter() - began)
            if 'role="alert"' in answer.text:  # refused (the other reviewer took it), back on its card: the next one
                refused.append(1)
                answer = client.get("/queue/file")
            answer.raise_for_status()
            card = card_of(answer.text)


def measure(db: Path, model: Path, images: Path, reviewers: int, decisions: int) -> dict:
    times: list[float] = []
    refused: list[int] = []
    with ReviewProcess("--db", db, "--model", model, "--images", images) as app:
        start = threading.Barrier(reviewers)
        threads = [threading.Thread(target=reviewer, args=(app.url, f"reviewer{i}", decisions, times, refused,
                                                           start)) for i in range(reviewers)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
    milliseconds = sorted(t * 1000 for t in times)
    with closing(sqlite3.connect(db)) as connection:
        (decided,), = connection.execute("SELECT count(*) FROM reviews")
    return {"decisions": len(times), "recorded": decided, "refused": len(refused), "seconds": round(wall, 1),
            "p50_ms": round(statistics.median(milliseconds), 1),
            "p95_ms": round(milliseconds[int(0.95 * (len(milliseconds) - 1))], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--cards", type=int, default=100_000, help="cards in the large filing queue")
    parser.add_argument("--small", type=int, default=1_000, help="cards in the comparison queue")
    parser.add_argument("--decisions", type=int, default=200, help="decisions each reviewer makes per queue")
    parser.add_argument("--reviewers", type=int, default=2, help="reviewers deciding at once")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-review-app-") as folder:
        folder = Path(folder)
        started = time.perf_counter()
        crawl, model = build_crawl(folder)
        results = {}
        for cards in (args.small, args.cards):
            filled = time.perf_counter()
            db = fill_queue(crawl, folder / f"queue-{cards}.db", model, cards)
            print(f"queued {cards} cards in {time.perf_counter() - filled:.1f} s", file=sys.stderr)
            results[cards] = measure(db, model, folder, args.reviewers, args.decisions)
    print(json.dumps({"machine": platform.platform(), "python": platform.python_version(),
                      "reviewers": args.reviewers, "results": results,
                      "seconds": round(time.perf_counter() - started, 1)}, indent=2))
    print(f"{'cards':>8} {'decisions':>9} {'refused':>7} {'p50 ms':>7} {'p95 ms':>7}")
    for cards, result in results.items():
        print(f"{cards:>8} {result['decisions']:>9} {result['refused']:>7} {result['p50_ms']:>7} "
              f"{result['p95_ms']:>7}")
    large = results[args.cards]
    met = large["p95_ms"] <= GOAL_P95_MS
    print(f"p95 on {args.cards} cards: {large['p95_ms']} ms, goal <= {GOAL_P95_MS:.0f} ms: "
          f"{'met' if met else 'NOT met'}; {large['p95_ms'] / results[args.small]['p95_ms']:.2f}x the "
          f"{args.small}-card queue's")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
