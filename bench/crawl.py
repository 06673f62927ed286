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
"""

from __future__ import annotations

import argparse
import json
import platform
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
    settings = {"SHOPSTYLE_REQUESTS_PER_MINUTE": requests_per_minute, "LOG_LEVEL": "WARNING"}
    if redis_url:
        settings["REDIS_URL"] = redis_url
    started = time.perf_counter()
    with ThreadPoolExecutor(processes) as pool:
        results = list(pool.map(lambda _: run_crawl(api_url, db, images, api_key=KEY, spider_args=spider_args,
                                                    settings=settings), range(processes)))
    seconds = time.perf_counter() - started
    for result in results:
        if result.returncode != 0:
            raise SystemExit(f"our crawl failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    connection = sqlite3.connect(db)
    products, photos = connection.execute("SELECT count(*), sum(image_status = 'ok') FROM products").fetchone()
    connection.close()
    again = run_crawl(api_url, db, images, api_key=KEY, spider_args=spider_args,
                      settings={**settings, "LOG_LEVEL": "INFO"})
    rewritten = int(again.stderr.split("this run: ")[1].split(" products written")[0]) if again.returncode == 0 else -1
    return {"products": products, "photos": photos, "seconds": seconds, "rerun_written": rewritten}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--catalog", default=f"fashion:{config.fashion_dir()}", help="what the sandbox serves")
    parser.add_argument("--root", default="clothes-shoes-and-jewelry", help="category to crawl from")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the sandbox holds every answer")
    parser.add_argument("--requests-per-minute", type=int, default=60_000,
                        help="our crawler's API budget (the sandbox's limiter is off)")
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
        runs = {"naive": naive_crawl(sandbox.url, args.root, folder),
                "ours": our_crawl(sandbox.url, args.root, folder, args.requests_per_minute)}
        if args.processes > 1:
            try:
                redis = stack.enter_context(RedisServerProcess())
                runs[f"ours x{args.processes}"] = our_crawl(sandbox.url, args.root, folder, args.requests_per_minute,
                                                            args.processes, redis.url)
            except FileNotFoundError as error:
                print(f"bench/crawl.py: {error}: no shared crawl", file=sys.stderr)
    print(f"crawl benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()}, {platform.processor() or 'cpu'}, "
          f"catalog {args.catalog}, sandbox latency {args.latency * 1000:.0f} ms")
    print(f"{'client':<10} {'products':>9} {'photos':>7} {'seconds':>8} {'products/s':>11} {'photos/s':>9}")
    for name, r in runs.items():
        print(f"{name:<10} {r['products']:>9} {r['photos']:>7} {r['seconds']:>8.1f} "
              f"{r['products'] / r['seconds']:>11.1f} {r['photos'] / r['seconds']:>9.1f}")
    naive, ours = runs["naive"], runs["ours"]
    ratio = (ours["products"] / ours["seconds"]) / (naive["products"] / naive["seconds"])
    print(f"ours / naive, products per second: {ratio:.2f}x "
          f"(naive reached {naive['products']} products; ours {ours['products']})")
    print(f"ours, run again: {ours['rerun_written']} products written (a complete crawl adds nothing)")
    for name, shared in runs.items():
        if name.startswith("ours x"):
            speed = shared["products"] / shared["seconds"]
            print(f"{name} / naive: {speed / (naive['products'] / naive['seconds']):.2f}x; {name} / ours: "
                  f"{speed / (ours['products'] / ours['seconds']):.2f}x (the processes share this machine's cores "
                  f"with the sandbox); run again: {shared['rerun_written']} products written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
