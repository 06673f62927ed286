"""Crawl speed: ``scrapy crawl shopstyle`` against a naive client like the 2016 original, same sandbox, same run.

The naive client reads the API one urllib request at a time (categories, then each leaf's pages), stores products
in sqlite as it goes, then fetches the photos in 10 threads. Both crawl the shared fashion catalog from one
sandbox with its rate limit off; the ratio is ours over naive in products per second, end to end.

    .venv/bin/python bench/crawl.py [--catalog fashion:PATH] [--latency SECONDS] [--processes N]

With redis-server installed it also runs our crawl as N processes (default 2) sharing one crawl through Redis, as
``scrapy crawl shopstyle -s REDIS_URL=...`` started N times: how far more processes carry a crawl that one
process's CPU limits.

``--latency`` makes the sandbox hold every answer that long, standing in for the round trip to the real API across
the internet (loopback answers in about 3 ms, which flatters a sequential client).

Each of our crawls also reports its CPU (the crawl processes' user + system time, from ``getrusage``) per request,
and, from each crawl's own summary, per API page and per photo: on a machine shared with other work, CPU per
request moves far less than seconds do. The crawl's time is also set against the API budget's minimum, API requests
/ (``--requests-per-minute`` / 60): at the real API's budget (``--requests-per-minute 750``) a crawl whose photos
and pipelines keep up with the API's pace takes about that long. ``--no-naive`` skips the naive client (minutes at
100 ms) when only that is wanted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import sqlite3
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from shopstyle_spider import config
from shopstyle_spider.runner import run_crawl
from shopstyle_spider.sandbox import RedisServerProcess, SandboxProcess

KEY = "bench-key"
CPU_LINE = re.compile(r"CPU: ([\d.]+)s, [\d.]+ ms per request: ([\d.]+) ms per API page \((\d+)\), "
                      r"([\d.]+) ms per photo \((\d+)\)")
PAGE = 50
RESULT_CAP = 5000


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.load(response)


def naive_crawl(api_url: str, root: str, folder: Path) -> dict[str, float]:
    """The 2016 way: sequential API reads, then photos in 10 threads. Returns counts and seconds."""
    started = time.perf_counter()
    db = sqlite3.connect(folder / "naive.db")
    db.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, description TEXT, category TEXT, "
               "image_url TEXT)")
    categories = get_json(f"{api_url}/categories?pid={KEY}&cat={root}")["categories"]
    parents = {c.get("parentId") for c in categories}
    leaves = [c["id"] for c in categories if c["id"] not in parents]
    requests = 1
    for leaf in leaves:
        offset = 0
        while True:
            page = get_json(f"{api_url}/products?pid={KEY}&cat={leaf}&offset={offset}&limit={PAGE}")
            requests += 1
            for product in page["products"]:
                sizes = product.get("image", {}).get("sizes", {})
                url = sizes.get("Original", sizes.get("XLarge", {})).get("url")
                db.execute("INSERT OR REPLACE INTO products VALUES (?, ?, ?, ?, ?)",
                           (product["id"], product["name"], product.get("description"), leaf, url))
            db.commit()
            offset += PAGE
            if not page["products"] or offset >= min(page["metadata"]["total"], RESULT_CAP):
                break
    api_done = time.perf_counter()
    images = folder / "naive_images"
    images.mkdir()

    def fetch(row: tuple[int, str]) -> bool:
        product_id, url = row
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                (images / f"{product_id}.jpg").write_bytes(response.read())
            return True
        except urllib.error.HTTPError:
            return False

    rows = db.execute("SELECT id, image_url FROM products WHERE image_url IS NOT NULL").fetchall()
    with ThreadPoolExecutor(10) as pool:
        stored = sum(pool.map(fetch, rows))
    products = db.execute("SELECT count(*) FROM products").fetchone()[0]
    db.close()
    return {"products": products, "photos": stored, "api_requests": requests, "api_seconds": api_done - started,
            "seconds": time.perf_counter() - started}


def our_crawl(api_url: str, root: str, folder: Path, requests_per_minute: int, processes: int = 1,
              redis_url: str = "") -> dict[str, float]:
    """Our crawl, by one process alone, or by ``processes`` sharing one crawl through ``redis_url`` (one sqlite
    file, one image folder, as on one machine)."""
    folder = folder / (f"ours{processes}" if redis_url else "ours")
    db, images = folder / "crawl.db", folder / "images"
    spider_args = {"root": root, "max_per_category": 1_000_000}
    # INFO for the crawl's summary (its CPU line); Scrapy's per-minute stats lines are all else it adds
    settings = {"SHOPSTYLE_REQUESTS_PER_MINUTE": requests_per_minute, "LOG_LEVEL": "INFO"}
    if redis_url:
        settings["REDIS_URL"] = redis_url
    started, cpu_before = time.perf_counter(), _children_cpu()
    with ThreadPoolExecutor(processes) as pool:
        results = list(pool.map(lambda _: run_crawl(api_url, db, images, api_key=KEY, spider_args=spider_args,
                                                    settings=settings), range(processes)))
    seconds, cpu = time.perf_counter() - started, _children_cpu() - cpu_before
    for result in results:
        if result.returncode != 0:
            raise SystemExit(f"our crawl failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    summaries = [CPU_LINE.search(result.stderr) for result in results]
    if not all(summaries):
        raise SystemExit("our crawl's summary has no CPU line:\n" + results[0].stderr[-3000:])
    pages, photo_requests = (sum(int(m.group(i)) for m in summaries) for i in (3, 5))
    # each process's per-kind figures, weighted by what it did
    per_page = sum(float(m.group(2)) * int(m.group(3)) for m in summaries) / max(pages, 1)
    per_photo = sum(float(m.group(4)) * int(m.group(5)) for m in summaries) / max(photo_requests, 1)
    connection = sqlite3.connect(db)
    products, photos = connection.execute("SELECT count(*), sum(image_status = 'ok') FROM products").fetchone()
    connection.close()
    again = run_crawl(api_url, db, images, api_key=KEY, spider_args=spider_args, settings=settings)
    rewritten = int(again.stderr.split("this run: ")[1].split(" products written")[0]) if again.returncode == 0 else -1
    return {"products": products, "photos": photos, "seconds": seconds, "rerun_written": rewritten, "cpu": cpu,
            "api_requests": pages, "requests": pages + photo_requests, "ms_per_page": per_page,
            "ms_per_photo": per_photo, "budget_seconds": pages / (requests_per_minute / 60)}


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished children (the crawl processes, once waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--catalog", default=f"fashion:{config.fashion_dir()}", help="what the sandbox serves")
    parser.add_argument("--root", default="clothes-shoes-and-jewelry", help="category to crawl from")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the sandbox holds every answer")
    parser.add_argument("--requests-per-minute", type=int, default=60_000,
                        help="our crawler's API budget (the sandbox's limiter is off)")
    parser.add_argument("--no-naive", action="store_true",
                        help="skip the naive client (no ratio to it): for the budget's figure alone")
    parser.add_argument("--processes", type=int, default=2,
                        help="also crawl with this many processes sharing one crawl through a throwaway "
                             "redis-server (skipped where none is installed; 1: skip)")
    args = parser.parse_args(argv)
    if args.catalog.startswith("fashion:") and not Path(args.catalog.removeprefix("fashion:"), "styles.csv").is_file():
        print(f"bench/crawl.py: no catalog at {args.catalog} (set SHARED_DIR)", file=sys.stderr)
        return 2
    sandbox_args = ["--catalog", args.catalog, "--api-key", KEY, "--rate-limit", "0", "--latency", str(args.latency)]
    with tempfile.TemporaryDirectory() as tmp, SandboxProcess(*sandbox_args) as sandbox, ExitStack() as stack:
        folder = Path(tmp)
        runs = {} if args.no_naive else {"naive": naive_crawl(sandbox.url, args.root, folder)}
        runs["ours"] = our_crawl(sandbox.url, args.root, folder, args.requests_per_minute)
        if args.processes > 1:
            try:
                redis = stack.enter_context(RedisServerProcess())
                runs[f"ours x{args.processes}"] = our_crawl(sandbox.url, args.root, folder, args.requests_per_minute,
                                                            args.processes, redis.url)
            except FileNotFoundError as error:
                print(f"bench/crawl.py: {error}: no shared crawl", file=sys.stderr)
    print(f"crawl benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, {platform.processor() or 'cpu'}, "
          f"catalog {args.catalog}, sandbox latency {args.latency * 1000:.0f} ms, our budget "
          f"{args.requests_per_minute} requests/min, load average at the end {os.getloadavg()[0]:.2f}")
    print(f"{'client':<10} {'products':>9} {'photos':>7} {'seconds':>8} {'products/s':>11} {'photos/s':>9}"
          f" {'CPU s':>7} {'ms/request':>10} {'ms/page':>8} {'ms/photo':>8}")
    for name, r in runs.items():
        cpu = (f" {r['cpu']:>7.1f} {1000 * r['cpu'] / r['requests']:>10.2f} {r['ms_per_page']:>8.2f} "
               f"{r['ms_per_photo']:>8.2f}" if "cpu" in r else "")
        print(f"{name:<10} {r['products']:>9} {r['photos']:>7} {r['seconds']:>8.1f} "
              f"{r['products'] / r['seconds']:>11.1f} {r['photos'] / r['seconds']:>9.1f}{cpu}")
    ours = runs["ours"]
    print(f"ours against the budget's minimum ({ours['api_requests']} API requests at "
          f"{args.requests_per_minute / 60:.1f}/s = {ours['budget_seconds']:.1f}s): "
          f"{ours['seconds'] / ours['budget_seconds']:.2f}x")
    print(f"ours, run again: {ours['rerun_written']} products written (a complete crawl adds nothing)")
    if "naive" not in runs:
        return 0
    naive = runs["naive"]
    ratio = (ours["products"] / ours["seconds"]) / (naive["products"] / naive["seconds"])
    print(f"ours / naive, products per second: {ratio:.2f}x "
          f"(naive reached {naive['products']} products; ours {ours['products']})")
    for name, shared in runs.items():
        if name.startswith("ours x"):
            speed = shared["products"] / shared["seconds"]
            print(f"{name} / naive: {speed / (naive['products'] / naive['seconds']):.2f}x; {name} / ours: "
                  f"{speed / (ours['products'] / ours['seconds']):.2f}x (the processes share this machine's cores "
                  f"with the sandbox); run again: {shared['rerun_written']} products written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
