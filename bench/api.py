"""The review app's JSON prediction API against ``modeling.predict`` in this process, same model, same products.

A text-only model is trained on the shared fashion catalog (its article types as categories); the app is started
with it in a subprocess (uvicorn on a loopback port) and an httpx client posts batches of 100 products one after
the other, as a shop's import job would; each batch is also predicted here with what ``python -m modeling.predict``
runs for each record (``check_record`` + ``prediction_lines``), alternating batch by batch so that both ways see the
same load on a shared machine. Both answers must be the same lines; the figure is the API's products per second over
the in-process ones (goal: >= 0.85), the median of the rounds. Each batch's own ratio (the two ways timed back to
back) is printed too, with its quartiles: on a machine shared with other work a burst of load can slow a whole
round's in-process sum and not its HTTP one (a round of 1.85x was seen), which the median over batches resists.
Then one product at a time, alternating likewise: the p50 and p95 of a one-product request's round trip against the
same prediction in process.

The client sends each batch already encoded with orjson (``Content-Type: application/json``) and decodes the answer
with orjson, as a client that cares for throughput would: httpx's ``json=`` and ``.json()`` use the standard
library's encoder and decoder, about 0.2 ms a batch of 100 that is the client's choice, not the API's cost. The
in-process side still makes the same line dicts the API answers with (``prediction_lines`` + ``decision``), so both
ways end with the same Python objects; the API's figure includes encoding the request and decoding the answer.

    .venv/bin/python bench/api.py [--train 10000] [--products 3000] [--batch 100] [--rounds 3] [--singles 300]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import pandas as pd

from modeling import store
from modeling.persistence import save_model
from modeling.predict import check_record, decision_of, prediction_lines
from modeling.review.process import ReviewProcess
from modeling.stacking import ProductClassifier
from shopstyle_spider import config
from shopstyle_spider.sandbox.fashion import describe, read_styles

GOAL = 0.85
JSON = {"content-type": "application/json"}


def fashion_products(limit: int) -> pd.DataFrame:
    rows = read_styles(config.fashion_dir() / "styles.csv")
    frame = pd.DataFrame({"id": [r["id"] for r in rows], "name": [r["productDisplayName"] for r in rows],
                          "description": [describe(r) for r in rows], "category": [r["articleType"] for r in rows]})
    common = frame["category"].value_counts()
    frame = frame[frame["category"].isin(common[common >= 20].index)]
    return frame.sample(n=min(limit, len(frame)), random_state=0).reset_index(drop=True)


def in_process(model, batch: list[dict]) -> list[dict]:
    lines = list(prediction_lines(model, [check_record(record, None)[0] for record in batch]))
    for line in lines:
        line["decision"] = decision_of(line)
    return lines


def over_http(client: httpx.Client, url: str, batch: list[dict]) -> list[dict]:
    answer = client.post(url + "/api/predict", content=orjson.dumps(batch), headers=JSON)
    answer.raise_for_status()
    return orjson.loads(answer.content)


def one_round(model, client: httpx.Client, url: str, batches: list[list[dict]]) -> tuple[float, float, list[float]]:
    """Seconds in process and over HTTP for every batch, alternating, and each batch's ratio (in process over HTTP,
    the two measured back to back); refuses answers that differ."""
    seconds, pairs = [0.0, 0.0], []
    for batch in batches:
        started = time.perf_counter()
        local = in_process(model, batch)
        middle = time.perf_counter()
        remote = over_http(client, url, batch)
        ended = time.perf_counter()
        seconds[0] += middle - started
        seconds[1] += ended - middle
        pairs.append((middle - started) / (ended - middle))
        if remote != local:
            raise AssertionError(f"the API's lines differ from in-process predict's (batch of {batch[0]['id']})")
    return seconds[0], seconds[1], pairs


def one_at_a_time(model, client: httpx.Client, url: str, records: list[dict]) -> tuple[list[float], list[float]]:
    """Milliseconds of each one-product prediction in process and of each one-product request, alternating."""
    local, remote = [], []
    for record in records:
        started = time.perf_counter()
        in_process(model, [record])
        middle = time.perf_counter()
        over_http(client, url, [record])
        local.append((middle - started) * 1000)
        remote.append((time.perf_counter() - middle) * 1000)
    return local, remote


def percentiles(milliseconds: list[float]) -> str:
    cuts = statistics.quantiles(milliseconds, n=20, method="inclusive")
    return f"p50 {statistics.median(milliseconds):.1f} ms, p95 {cuts[18]:.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--train", type=int, default=10_000, help="fashion products the text model learns from")
    parser.add_argument("--products", type=int, default=3_000, help="products predicted each round, both ways")
    parser.add_argument("--batch", type=int, default=100, help="products per request")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every batch; the median ratio counts")
    parser.add_argument("--singles", type=int, default=300, help="one-product requests timed after the rounds")
    args = parser.parse_args(argv)
    if not (config.fashion_dir() / "styles.csv").is_file():
        print(f"bench/api.py: needs {config.fashion_dir()} (set SHARED_DIR)", file=sys.stderr)
        return 2
    frame = fashion_products(args.train + args.products)
    train, test = frame[:args.train], frame[args.train:]
    records = [{"id": r.id, "name": r.name, "description": r.description} for r in test.itertuples()]
    batches = [records[i:i + args.batch] for i in range(0, len(records), args.batch)]
    print(f"API benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()}: text-only model on {len(train)} fashion "
          f"products ({train['category'].nunique()} categories); {len(records)} products in batches of "
          f"{args.batch}, one request at a time", flush=True)
    started = time.perf_counter()
    model = ProductClassifier().fit(train, train["category"])
    print(f"trained in {time.perf_counter() - started:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        model_path = save_model(model, Path(folder) / "1.joblib", {"bench": "api"})
        db = Path(folder) / "crawl.db"
        store.connect(db).close()
        ratios, pairs = [], []
        with ReviewProcess("--db", db, "--model", model_path, "--images", folder) as app, \
                httpx.Client(timeout=120) as client:
            one_round(model, client, app.url, batches[:1])  # warm both: the first request, the first prediction
            for round_ in range(1, args.rounds + 1):
                try:
                    local_s, http_s, round_pairs = one_round(model, client, app.url, batches)
                except AssertionError as error:
                    print(f"bench/api.py: {error}", file=sys.stderr)
                    return 1
                ratios.append(local_s / http_s)
                pairs += round_pairs
                print(f"round {round_}: in-process {len(records) / local_s:,.0f} products/s, HTTP API "
                      f"{len(records) / http_s:,.0f} products/s ({len(batches) / http_s:.1f} requests/s): "
                      f"{ratios[-1]:.2f}x", flush=True)
            local_ms, http_ms = one_at_a_time(model, client, app.url, records[:args.singles])
    print(f"one product, {len(http_ms)} requests one at a time: in-process {percentiles(local_ms)}; HTTP API "
          f"{percentiles(http_ms)}")
    quartiles = statistics.quantiles(pairs, n=4, method="inclusive")
    print(f"each batch's ratio, the two ways back to back: median {quartiles[1]:.2f}x, quartiles "
          f"{quartiles[0]:.2f}-{quartiles[2]:.2f} over {len(pairs)} batches")
    print(f"HTTP API / in-process predict, median of {len(ratios)} rounds: {statistics.median(ratios):.2f}x "
          f"(goal >= {GOAL})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
