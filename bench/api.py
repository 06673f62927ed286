"""The review app's JSON prediction API against ``modeling.predict`` in this process, same model, same products.

A text-only model is trained on the shared fashion catalog (its article types as categories); the app is started
with it in a subprocess (uvicorn on a loopback port) and a client posts batches of 100 products one after the
other, as a shop's import job would; each batch is also predicted here with what ``python -m modeling.predict``
runs for each record (``check_record`` + ``prediction_lines``), alternating batch by batch so that both ways see the
same load on a shared machine. Both answers must be the same lines; the figure is the API's products per second over
the in-process ones (goal: >= 0.85), the median of the rounds. Each batch's own ratio (the two ways timed back to
back) is printed too, with its quartiles: on a machine shared with other work a burst of load can slow a whole
round's in-process sum and not its HTTP one (a round of 1.85x was seen), which the median over batches resists.
Then one product at a time, alternating likewise: the p50 and p95 of a one-product request's round trip against the
same prediction in process.

Two clients post, each request right after its own in-process prediction of the same batch (which of the two
goes first alternates batch by batch): a keep-alive ``http.client.HTTPConnection`` of the standard library, the
figure the goal is about, and httpx, for comparison. Both are ordinary clients; an import job that cares for
throughput would pick the leaner one: httpx spends about 0.5-0.8 ms of its own a request (its transports, hooks and
header models) and writes the request's head and body apart, so the body reaches the server after the head, where
``http.client`` sends a bytes body in the head's write. One request at a time either way, one server worker: no
concurrency beats the single-threaded in-process baseline. Each client sends the batch already encoded with orjson
(``Content-Type: application/json``) and decodes the answer with orjson, as a client that cares for throughput would
(httpx's ``json=`` and ``.json()`` use the standard library's encoder and decoder, about 0.2 ms a batch of 100). The
in-process side still makes the same line dicts the API answers with (``prediction_lines`` + ``decision``), so both
ways end with the same Python objects; the API's figure includes encoding the request and decoding the answer.

The app is served with ``--no-access-log`` (uvicorn's line per request off, as an import job's server would run;
``--access-log`` serves it as ``make review`` does).

Where the two processes run (``--placements``): an import job's client runs on its own machine, this benchmark's on
the same two cores as the server. Left to the scheduler ("shared"), the server's threads wake on whichever core is
free, often the one whose caches the client's own in-process prediction has just filled, and the server's 7 ms
prediction then runs measurably slower in its worker than the same prediction in process (6.40 against 6.18 ms, see
bench/RESULTS.md). "pinned" puts every thread of this process (the client and the in-process prediction) on one
core and every thread of the server on the other (``os.sched_setaffinity``, Linux), as two machines would be.
Each round runs both placements in turn (which goes first alternates), so both see the same load; the goal's
figure is the pinned one with ``http.client``, and every figure is printed.

    .venv/bin/python bench/api.py [--train 10000] [--products 3000] [--batch 100] [--rounds 3] [--singles 300]
                                  [--access-log] [--placements pinned,shared]
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from pathlib import Path
from urllib.parse import urlsplit

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


Post = Callable[[bytes], bytes]


def stdlib_client(url: str) -> tuple[Post, Callable[[], None]]:
    """POST /api/predict on one keep-alive ``http.client`` connection (its bytes body leaves in the head's write),
    and what closes it."""
    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=120)

    def post(body: bytes) -> bytes:
        connection.request("POST", "/api/predict", body, JSON)
        answer = connection.getresponse()
        content = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"POST /api/predict: {answer.status} {content[:200]!r}")
        return content

    return post, connection.close


def httpx_client(url: str) -> tuple[Post, Callable[[], None]]:
    """POST /api/predict with an httpx client (keep-alive, its default transport), and what closes it."""
    client = httpx.Client(timeout=120)

    def post(body: bytes) -> bytes:
        answer = client.post(url + "/api/predict", content=body, headers=JSON)
        answer.raise_for_status()
        return answer.content

    return post, client.close


CLIENTS = {"http.client": stdlib_client, "httpx": httpx_client}  # the first is the one the goal is about


def in_process(model, batch: list[dict]) -> list[dict]:
    lines = list(prediction_lines(model, [check_record(record, None)[0] for record in batch]))
    for line in lines:
        line["decision"] = decision_of(line)
    return lines


def paired(model, post: Post, batch: list[dict]) -> tuple[float, float]:
    """Seconds of the batch predicted in process, then posted (encoded, sent, answered and decoded); refuses an
    answer that differs."""
    started = time.perf_counter()
    local = in_process(model, batch)
    middle = time.perf_counter()
    remote = orjson.loads(post(orjson.dumps(batch)))
    ended = time.perf_counter()
    if remote != local:
        raise AssertionError(f"the API's lines differ from in-process predict's (batch of {batch[0]['id']})")
    return middle - started, ended - middle


def one_round(model, posts: dict[str, Post], batches: list[list[dict]]) -> dict[str, list[tuple[float, float]]]:
    """Per client, the seconds in process and over HTTP of every batch, each pair timed back to back; the clients
    take turns going first."""
    names = list(posts)
    timed: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for number, batch in enumerate(batches):
        for name in names[number % len(names):] + names[:number % len(names)]:
            timed[name].append(paired(model, posts[name], batch))
    return timed


def placements(server: int) -> dict[str, tuple[set[int], set[int]]]:
    """The CPUs of this process and of the server's, per placement: "shared" lets the scheduler choose among every
    CPU this process may use, "pinned" gives each process a core of its own (left out with fewer than two)."""
    if not hasattr(os, "sched_setaffinity"):  # Linux only: elsewhere the scheduler chooses
        return {"shared": (set(), set())}
    cpus = sorted(os.sched_getaffinity(0))
    chosen = {"shared": (set(cpus), set(cpus))}
    if len(cpus) >= 2:
        chosen["pinned"] = ({cpus[0]}, {cpus[1]})
    return chosen


def place(pid: int, cpus: set[int]) -> None:
    """Every thread of process ``pid`` on ``cpus`` (a thread started later inherits its creator's); no CPUs: left
    where it is."""
    if not cpus:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        with suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task.name), cpus)


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
    parser.add_argument("--placements", default="pinned,shared",
                        help="where the client and the server run, each round in turn: 'pinned' (a core each, as "
                             "two machines), 'shared' (the scheduler's choice); the goal's figure is pinned's")
    parser.add_argument("--access-log", action="store_true",
                        help="serve with uvicorn's line per request (the app's default; off here, as an import job's "
                             "server would run)")
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
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        model_path = save_model(model, Path(folder) / "1.joblib", {"bench": "api"})
        db = Path(folder) / "crawl.db"
        store.connect(db).close()
        app = stack.enter_context(ReviewProcess("--db", db, "--model", model_path, "--images", folder,
                                                *([] if args.access_log else ["--no-access-log"])))
        posts = {}
        for name, client in CLIENTS.items():
            posts[name], close = client(app.url)
            stack.callback(close)
        one_round(model, posts, batches[:1])  # warm every way: the first request, the first prediction
        where = {name: cpus for name, cpus in placements(app.process.pid).items()
                 if name in args.placements.split(",")}
        ways = [(placement, name) for placement in where for name in posts]
        ratios: dict[tuple[str, str], list[float]] = {way: [] for way in ways}
        pairs: dict[tuple[str, str], list[float]] = {way: [] for way in ways}
        singles: dict[tuple[str, str], list[tuple[float, float]]] = {}
        try:
            for round_ in range(1, args.rounds + 1):
                figures = []
                order = list(where) if round_ % 2 else list(where)[::-1]
                for placement in order:
                    place(os.getpid(), where[placement][0])
                    place(app.process.pid, where[placement][1])
                    for name, seconds in one_round(model, posts, batches).items():
                        local_s, http_s = (sum(column) for column in zip(*seconds, strict=True))
                        ratios[placement, name].append(local_s / http_s)
                        pairs[placement, name] += [local / remote for local, remote in seconds]
                        figures.append(f"{placement}, {name} {len(records) / http_s:,.0f} products/s "
                                       f"({len(batches) / http_s:.1f} requests/s; in-process "
                                       f"{len(records) / local_s:,.0f}): {ratios[placement, name][-1]:.2f}x")
                print(f"round {round_}: " + "; ".join(figures), flush=True)
            for placement, (mine, server) in where.items():
                place(os.getpid(), mine)
                place(app.process.pid, server)
                for name, seconds in one_round(model, posts, [[r] for r in records[:args.singles]]).items():
                    singles[placement, name] = seconds
        except AssertionError as error:
            print(f"bench/api.py: {error}", file=sys.stderr)
            return 1
    for (placement, name), seconds in singles.items():
        local_ms, http_ms = ([s * 1000 for s in column] for column in zip(*seconds, strict=True))
        print(f"one product, {len(http_ms)} requests one at a time, {placement}, {name}: in-process "
              f"{percentiles(local_ms)}; HTTP API {percentiles(http_ms)}")
    for (placement, name), batch_ratios in pairs.items():
        quartiles = statistics.quantiles(batch_ratios, n=4, method="inclusive")
        print(f"each batch's ratio, {placement}, {name}, the two ways back to back: median {quartiles[1]:.2f}x, "
              f"quartiles {quartiles[0]:.2f}-{quartiles[2]:.2f} over {len(batch_ratios)} batches")
    goal = ("pinned" if "pinned" in where else next(iter(where)), next(iter(posts)))
    print("HTTP API / in-process predict, median of {} rounds: {} (goal >= {}: {}, {})".format(
        args.rounds, ", ".join(f"{p}, {n} {statistics.median(r):.2f}x" for (p, n), r in ratios.items()), GOAL,
        *goal))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
