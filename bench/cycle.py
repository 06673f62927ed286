"""Eight simulated weeks of the weekly cycle on the fashion catalog, a simulated reviewer answering the queue.

Week 0: the sandbox serves the catalog as of D (``--as-of``), a full crawl, a first model (``modeling.train``, text
only unless ``--image-backbone`` says otherwise, 5 folds so the card's guarantee rests on every training product),
put in service. Weeks 1-8: the sandbox serves the catalog as of D + 7 w and ``python -m modeling.cycle`` runs as
cron would (refresh=new, or refresh=all every ``--full-refresh-weeks``, predict and file at the target, queue the
rest, retrain when ``--retrain-after`` decisions or drift call for it, promote if better, the report); then the
reviewer decides every queued card with the catalog's own label. The catalog's own label is the leaf the catalog
file gives the product (noise as the catalog has it): the sandbox's timeline has a few products arrive mis-filed and
re-filed into that leaf weeks later, so the crawled label is sometimes a mistake the feed has not fixed yet, and
what a product is filed under is scored against its own leaf. Per week: products new or changed, the share filed
automatically and each level's accuracy (with its exact 95% interval), the products of leaves the filing model never
learned, the products sent to a person, whether a model was promoted. Goals (issue 27): filed accuracy at least the
target every week at every level; a person's work per week falls as decisions accumulate.

    .venv/bin/python bench/cycle.py [--target-accuracy 0.99] [--weeks 8] [--image-backbone none]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

from modeling import reviews, store, train
from modeling.champion import interval
from modeling.filing import batch_argument
from shopstyle_spider import config
from shopstyle_spider.runner import run_crawl
from shopstyle_spider.sandbox import SandboxProcess, load_catalog

KEY = "bench-key"
REVIEWER = "bench-reviewer"
SPIDER_ARGS = {"max_per_category": 1_000_000}  # every leaf read whole, as bench/refresh.py reads it


def query(db: Path, sql: str, *params) -> list[tuple]:
    with closing(sqlite3.connect(db)) as connection:
        return connection.execute(sql, params).fetchall()


def answer_queue(db: Path, own: dict[int, str]) -> int:
    """The reviewer decides every queued card nobody decided, with the product's own leaf; how many."""
    open_cards = query(db, "SELECT q.id, q.subject, q.product_id FROM filing_queue q WHERE q.subject NOT IN "
                           "(SELECT subject FROM reviews WHERE subject IS NOT NULL)")
    with closing(store.connect(db)) as connection, connection.begin():
        for queue_id, subject, product_id in open_cards:
            reviews.record_decision(connection, decision=own[product_id], source="unsure", reviewer=REVIEWER,
                                    subject=subject, queue_id=queue_id)
    return len(open_cards)


def learned_leaves(db: Path) -> dict[int, set[str]]:
    """The leaves each registered model learned (its card's categories), by experiment."""
    return {experiment: set(json.loads(Path(card).read_text(encoding="utf-8"))["categories"])
            for experiment, card in query(db, "SELECT experiment_id, card_path FROM models")}


def week_figures(db: Path, own: dict[int, str], parent_of: dict[str, str | None]) -> dict:
    """The latest cycle's work: what its predict step filed, scored against the products' own leaves."""
    cycle_id, started = query(db, "SELECT id, started_at FROM cycles ORDER BY id DESC LIMIT 1")[0]
    predict_at = query(db, "SELECT max(started_at) FROM cycle_steps WHERE cycle_id = ? AND step = 'predict' AND "
                           "status = 'done'", cycle_id)[0][0]
    rows = query(db, "SELECT f.decision, f.category, f.product_id, f.model_id, p.category_id FROM filings f JOIN "
                     "products p ON p.id = f.product_id WHERE f.filed_at >= ? AND f.id IN (SELECT max(id) FROM "
                     "filings GROUP BY subject)", predict_at)
    learned = learned_leaves(db)
    figures = {"cycle": cycle_id, "predicted": len(rows),
               "arrived": query(db, "SELECT count(*) FROM products WHERE first_seen >= ?", started)[0][0],
               "review": sum(r[0] == "review" for r in rows),
               "unlearned": sum(own[r[2]] not in learned[r[3]] for r in rows),
               "misfiled": sum(own[r[2]] != r[4] for r in rows)}
    for level in ("leaf", "parent"):
        filed = [r for r in rows if r[0] == level]
        right = sum(r[1] == (own[r[2]] if level == "leaf" else parent_of.get(own[r[2]])) for r in filed)
        low, high = interval(right, len(filed))
        figures[level] = {"n": len(filed), "right": right, "accuracy": right / len(filed) if filed else None,
                          "low": low, "high": high}
    retrain = query(db, "SELECT status, summary FROM cycle_steps WHERE cycle_id = ? AND step = 'retrain' ORDER BY "
                        "id DESC LIMIT 1", cycle_id)[0]
    figures["retrain"] = retrain[1] if retrain[0] == "done" else "no"
    figures["promoted"] = retrain[0] == "done" and " is in service " in retrain[1]
    return figures


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--catalog", default=f"fashion:{config.fashion_dir()}", help="what the sandbox serves")
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2025, 10, 1), help="week 0's day (D)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the catalog's timeline")
    parser.add_argument("--root", default="clothes-shoes-and-jewelry", help="category to crawl from")
    parser.add_argument("--weeks", type=int, default=8, help="simulated weeks after week 0")
    parser.add_argument("--target-accuracy", default="0.99", help="the cycle's filing target")
    parser.add_argument("--retrain-after", default="100", help="the cycle's --retrain-after (decisions)")
    parser.add_argument("--image-backbone", default="none", help="the models' image backbone ('none': text only)")
    parser.add_argument("--full-refresh-weeks", type=int, default=4,
                        help="every this many weeks the cycle reads every product again (--refresh all, what "
                             "--full-refresh-days 28 does in real time; the simulated weeks pass in minutes); "
                             "0: never")
    parser.add_argument("--batch-promise", type=batch_argument, metavar="N",
                        help="the models' --batch-promise (modeling.train, modeling.cycle): every batch of N products "
                             "a level files promised the target, not only the level; default: none")
    parser.add_argument("--out", type=Path, default=config.data_dir() / "bench" / "cycle",
                        help="the bench's crawl, models and cycle outputs (emptied first)")
    args = parser.parse_args(argv)
    target = float(args.target_accuracy)
    catalog = load_catalog(args.catalog, seed=args.seed)
    own = {product.id: product.category_id for product in catalog.products()}
    parent_of = {category.id: category.parent_id for category in catalog.categories()}
    shutil.rmtree(args.out, ignore_errors=True)
    db, images = args.out / "crawl.db", args.out / "images"
    env = {**os.environ, "SHOPSTYLE_API_KEY": KEY, "SHOPSTYLE_DATA_DIR": str(args.out / "data")}
    os.environ["SHOPSTYLE_DATA_DIR"] = env["SHOPSTYLE_DATA_DIR"]  # week 0's model goes into the bench's folder
    sandbox_args = ("--catalog", args.catalog, "--seed", str(args.seed), "--rate-limit", "0", "--api-key", KEY)
    began = time.perf_counter()

    with SandboxProcess(*sandbox_args, as_of=args.as_of) as sandbox:
        crawl = run_crawl(sandbox.url, db, images, api_key=KEY, timeout=3600,
                          spider_args={**SPIDER_ARGS, "root": args.root})
    if crawl.returncode != 0:
        print(crawl.stderr[-3000:], file=sys.stderr)
        return 1
    products = query(db, "SELECT count(*) FROM products")[0][0]
    print(f"week 0: crawled {products} products as of {args.as_of} in {time.perf_counter() - began:.0f} s", flush=True)
    promise = ["--batch-promise", str(args.batch_promise)] if args.batch_promise else []
    if train.main(["--db", str(db), "--images", str(images), "--image-backbone", args.image_backbone, "--cv", "5",
                   "--name", "week 0", "--no-progress", *promise]) != 0:
        return 1

    weeks = []
    for week in range(1, args.weeks + 1):
        day = args.as_of + timedelta(weeks=week)
        started = time.perf_counter()
        with SandboxProcess(*sandbox_args, as_of=day) as sandbox:
            result = subprocess.run(
                [sys.executable, "-m", "modeling.cycle", "--db", str(db), "--images", str(images), "--api-url",
                 sandbox.url, "--crawl-arg", f"root={args.root}", "--crawl-arg", "max_per_category=1000000",
                 "--target-accuracy", args.target_accuracy, "--retrain-after", args.retrain_after, "--cv", "5",
                 "--image-backbone", args.image_backbone, "--audit", "never", "--no-progress", *promise, "--refresh",
                 "all" if args.full_refresh_weeks and week % args.full_refresh_weeks == 0 else "new"],
                cwd=config.PROJECT_ROOT, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            print(result.stdout[-3000:], result.stderr[-3000:], file=sys.stderr)
            return 1
        figures = week_figures(db, own, parent_of)
        figures.update(week=week, day=day, seconds=time.perf_counter() - started, answered=answer_queue(db, own))
        weeks.append(figures)
        print(f"week {week} ({day}): {figures['predicted']} predicted, {figures['review']} to a person, retrain: "
              f"{figures['retrain']} ({figures['seconds']:.0f} s)", flush=True)

    print(f"\ncycle benchmark, {date.today()}, {platform.node()}: {args.catalog} from {args.as_of}, {args.weeks} "
          f"weeks, target {target:.1%}"
          + (f" (every batch of {args.batch_promise} filed products promised it)" if args.batch_promise else "")
          + f", image backbone {args.image_backbone}, audit off; {products} products at "
          f"week 0; {time.perf_counter() - began:.0f} s in all")
    print("(accuracy against the products' own leaves; 'unlearned': products of leaves the filing model never "
          "learned; 'mis-filed': products whose crawled leaf was a mistake the feed had not fixed yet)")
    print(f"{'week':>4} {'as of':>10} {'new':>5} {'predicted':>9} {'unlearned':>9} {'mis-filed':>9} {'filed':>7} "
          f"{'leaf n':>6} {'leaf acc':>8} {'(95% low)':>9} {'parent n':>8} {'parent acc':>10} {'(95% low)':>9} "
          f"{'person':>6} {'promoted':>8} {'seconds':>7}")
    for w in weeks:
        filed = (w["leaf"]["n"] + w["parent"]["n"]) / w["predicted"] if w["predicted"] else None
        print(f"{w['week']:>4} {w['day'].isoformat():>10} {w['arrived']:>5} {w['predicted']:>9} "
              f"{w['unlearned']:>9} {w['misfiled']:>9} {pct(filed):>7} "
              f"{w['leaf']['n']:>6} {pct(w['leaf']['accuracy']):>8} {pct(w['leaf']['low']):>9} "
              f"{w['parent']['n']:>8} {pct(w['parent']['accuracy']):>10} {pct(w['parent']['low']):>9} "
              f"{w['review']:>6} {'yes' if w['promoted'] else 'no':>8} {w['seconds']:>7.0f}")
    for w in weeks:
        if w["retrain"] != "no":
            print(f"week {w['week']} retrain: {w['retrain']}")
    held = all(w[level]["accuracy"] is None or w[level]["accuracy"] >= target for w in weeks
               for level in ("leaf", "parent"))
    # a week's few hundred products scatter around the level's true accuracy: a promise kept on average still
    # shows weeks below the target by chance, so each week's exact interval and all weeks together are shown too
    within = all(w[level]["accuracy"] is None or w[level]["high"] >= target for w in weeks
                 for level in ("leaf", "parent"))
    for level in ("leaf", "parent"):
        n, right = sum(w[level]["n"] for w in weeks), sum(w[level]["right"] for w in weeks)
        if n:
            low, high = interval(right, n)
            print(f"all weeks, {level} level: {right} of {n} filed products right, {right / n:.2%} (exact 95% "
                  f"interval {low:.2%}-{high:.2%})")
    half = len(weeks) // 2
    shares = [w["review"] / w["predicted"] if w["predicted"] else 0.0 for w in weeks]
    early, late = sum(shares[:half]) / max(half, 1), sum(shares[half:]) / max(len(weeks) - half, 1)
    print(f"goal: filed accuracy >= {target:.1%} every week at every level: {'met' if held else 'NOT met'}"
          + ("" if held else f" (within each week's noise, the target inside its exact 95% interval: "
                             f"{'yes' if within else 'no'})"))
    print(f"goal: a person's share of the week's products falls: weeks 1-{half} {pct(early)}, weeks {half + 1}-"
          f"{len(weeks)} {pct(late)}: {'met' if late < early else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
