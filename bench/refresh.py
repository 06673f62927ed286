"""Refresh cost and exactness: a full crawl of the fashion catalog as of day D, a week later ``refresh=new``, a
month later ``refresh=all``, then a fresh crawl at D + 30 to compare with, all in one run.

    .venv/bin/python bench/refresh.py [--catalog fashion:PATH] [--as-of 2025-10-01] [--seed 0]

The sandbox serves the catalog as of each day (``--as-of``, the timeline drawn from ``--seed``); its timeline says
which products arrived, left and were re-filed in between, which the refreshes are scored against. Goals (issue
26): ``refresh=new`` finds every new product with at most 5% of the full crawl's API requests plus one page per
leaf; ``refresh=all`` finds every product gone and re-filed; the refreshed database equals the fresh crawl at
D + 30 (same products on sale, categories and photos; the gone products marked, not missing).
"""

from __future__ import annotations

import argparse
import platform
import re
import sqlite3
import sys
import tempfile
import time
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

from shopstyle_spider import config
from shopstyle_spider.runner import run_crawl
from shopstyle_spider.sandbox import SandboxProcess, load_catalog

KEY = "bench-key"
# every leaf read whole, however big: a leaf cut short by max_per_category says nothing of what left it
SPIDER_ARGS = {"max_per_category": 1_000_000}


def crawl(catalog: str, seed: int, day: date, db: Path, images: Path, root: str, **spider_args) -> dict:
    """One crawl of the catalog as of ``day``: seconds, API requests, the log."""
    with SandboxProcess("--catalog", catalog, "--seed", str(seed), "--rate-limit", "0", "--api-key", KEY,
                        as_of=day) as sandbox:
        started = time.perf_counter()
        result = run_crawl(sandbox.url, db, images, api_key=KEY, timeout=3600,
                           spider_args={**SPIDER_ARGS, "root": root, **spider_args})
        seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"crawl as of {day} failed:\n{result.stderr[-3000:]}")
    requests = int(re.search(r"'shopstyle/api_requests': (\d+)", result.stderr).group(1))
    summary = re.search(r"refresh \d+ \(\w+\) finished: .*", result.stderr)
    return {"seconds": seconds, "requests": requests, "summary": summary.group(0) if summary else ""}


def query(db: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(db)) as connection:
        return connection.execute(sql).fetchall()


def on_sale(db: Path) -> set[tuple]:
    """What a database says is on sale: id, leaf, photo checksum (URLs carry each sandbox's port: left out)."""
    return set(query(db, "SELECT id, category_id, image_status, image_checksum FROM products WHERE gone_at IS NULL"))


def share(found: set, wanted: set) -> str:
    return f"{len(found & wanted)}/{len(wanted)} ({100 * len(found & wanted) / max(1, len(wanted)):.1f}%)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--catalog", default=f"fashion:{config.fashion_dir()}", help="what the sandbox serves")
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2025, 10, 1),
                        help="day D of the full crawl; the refreshes follow at D + 7 and D + 30")
    parser.add_argument("--seed", type=int, default=0, help="seed of the catalog's timeline")
    parser.add_argument("--root", default="clothes-shoes-and-jewelry", help="category to crawl from")
    args = parser.parse_args(argv)
    kind, _, location = args.catalog.partition(":")
    if kind == "fashion" and not (Path(location) / "styles.csv").is_file():
        print(f"bench/refresh.py: no catalog at {location} (set SHARED_DIR)", file=sys.stderr)
        return 2
    day, week, month = args.as_of, args.as_of + timedelta(days=7), args.as_of + timedelta(days=30)
    catalogs = {when: {p.id: p.category_id for p in load_catalog(args.catalog, seed=args.seed,
                                                                   as_of=when).products()}
                for when in (day, week, month)}
    leaves = {when: len(load_catalog(args.catalog, seed=args.seed, as_of=when).leaves()) for when in (week,)}
    with tempfile.TemporaryDirectory(prefix="bench-refresh-") as tmp:
        folder = Path(tmp)
        db, images = folder / "crawl.db", folder / "images"
        full = crawl(args.catalog, args.seed, day, db, images, args.root)
        new = crawl(args.catalog, args.seed, week, db, images, args.root, refresh="new")
        stored_after_week = {r[0]: r[1] for r in query(db, "SELECT id, category_id FROM products")}
        added = {r[0] for r in query(db, "SELECT product_id FROM product_changes WHERE field = 'added'")}
        everything = crawl(args.catalog, args.seed, month, db, images, args.root, refresh="all")
        fresh = crawl(args.catalog, args.seed, month, folder / "fresh.db", folder / "fresh-images",
                      args.root)
        gone = {r[0] for r in query(db, "SELECT id FROM products WHERE gone_at IS NOT NULL")}
        refiled = {r[0] for r in query(db, "SELECT product_id FROM product_changes WHERE field = 'category_id' "
                                           "AND refresh_id = 2")}
        same_products = on_sale(db) == on_sale(folder / "fresh.db")
        tree_sql = "SELECT id, name, parent_id, is_leaf, path FROM categories WHERE gone_at IS NULL"
        same_tree = set(query(db, tree_sql)) == set(query(folder / "fresh.db", tree_sql))
        same_photos = all((images / "full" / p.name).read_bytes() == p.read_bytes()
                          for p in (folder / "fresh-images" / "full").iterdir())
    arrived = set(catalogs[week]) - set(catalogs[day])
    left = set(stored_after_week) - set(catalogs[month])
    moved = {i for i, leaf in stored_after_week.items() if i in catalogs[month] and catalogs[month][i] != leaf}
    budget = 0.05 * full["requests"] + leaves[week]
    print(f"refresh benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()}: {args.catalog} as of {day}, "
          f"{len(catalogs[day])} products in {leaves[week]} leaves (timeline seed {args.seed})")
    print(f"{'run':<26} {'as of':<11} {'API requests':>12} {'seconds':>8}")
    for name, when, run in (("full crawl", day, full), ("refresh=new", week, new), ("refresh=all", month, everything),
                            ("fresh crawl (reference)", month, fresh)):
        print(f"{name:<26} {when.isoformat():<11} {run['requests']:>12} {run['seconds']:>8.1f}")
    print(f"refresh=new: new products found {share(added, arrived)}; {new['requests']} API requests against a "
          f"budget of {budget:.0f} (5% of the full crawl's {full['requests']} + {leaves[week]} leaves): "
          f"{new['requests'] / full['requests']:.1%} of the full crawl")
    print(f"refresh=all: gone found {share(gone, left)} (none wrongly: {not gone - left}); re-filed found "
          f"{share(refiled, moved)} (none wrongly: {not refiled - moved})")
    print(f"refreshed database vs fresh crawl at {month}: products on sale equal {same_products}, categories equal "
          f"{same_tree}, every fresh photo stored with the same bytes {same_photos}")
    print(f"  {new['summary']}\n  {everything['summary']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
