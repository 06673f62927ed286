"""Soak: a long crawl of a large synthetic catalog under every fault kind, then a consistency check.

The sandbox serves ``--per-leaf`` products in each of its 27 leaves with transient faults at ``--transient`` each
and data faults at ``--data`` each. The crawl must finish; afterwards every product is stored exactly once except
those served without a name, every leaf is complete, the products with a bad photo are kept with the photo
refused, and the database passes sqlite's integrity check. Prints products/s against a fault-free crawl of the
same catalog in the same run (the ratio is what the faults cost) and what the crawl met, by kind. The catalog's
own gaps (products offering no photo, photos whose URL answers 404) are checked as such: kept, photo marked.

    .venv/bin/python bench/soak.py [--per-leaf 400] [--transient 0.05] [--data 0.01]
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from shopstyle_spider.runner import run_crawl
from shopstyle_spider.sandbox import SandboxProcess, load_catalog
from shopstyle_spider.sandbox.faults import DATA_KINDS, Faults

KEY = "soak-key"
SEED = 21


def crawl(per_leaf: int, faults: str, folder: Path) -> tuple[float, str, Path]:
    args = ["--catalog", "synthetic", "--seed", str(SEED), "--products-per-category", str(per_leaf),
            "--api-key", KEY, "--rate-limit", "0", "--faults", faults, "--fault-seed", "4", "--slow-seconds", "6"]
    db = folder / "crawl.db"
    with SandboxProcess(*args) as sandbox:
        started = time.perf_counter()
        result = run_crawl(sandbox.url, db, folder / "images", api_key=KEY, timeout=3600,
                           settings={"DOWNLOAD_TIMEOUT": 3, "RETRY_TIMES": 10, "SHOPSTYLE_BACKOFF_BASE": 0.2,
                                     "SHOPSTYLE_REQUESTS_PER_MINUTE": 60_000})
        seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"the crawl failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return seconds, result.stderr, db


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--per-leaf", type=int, default=400, help="products in each of the 27 leaves")
    parser.add_argument("--transient", type=float, default=0.05, help="rate of each transient fault kind")
    parser.add_argument("--data", type=float, default=0.01, help="rate of each data fault kind")
    args = parser.parse_args(argv)
    transient = f"500={args.transient},429={args.transient},reset={args.transient},badjson={args.transient}," \
                f"truncated-image={args.transient},slow={args.transient / 10}"
    data = ",".join(f"{kind}={args.data}" for kind in DATA_KINDS)
    catalog = load_catalog("synthetic", seed=SEED, products_per_category=args.per_leaf)
    ids = {p.id for p in catalog.products()}
    faults = Faults({kind: args.data for kind in DATA_KINDS}, 4)
    nameless = {i for i in ids if faults.sticks("missing-field", i)}
    # the synthetic catalog's own gaps: some products offer no photo, some list one whose URL answers 404
    offered = {p.id for p in catalog.products() if p.has_image}
    served = set(catalog.images.leaves)
    bad_photo = {i for i in offered if faults.sticks("not-image", i) or faults.sticks("bomb", i)} - nameless

    with tempfile.TemporaryDirectory() as tmp:
        clean_seconds, _, _ = crawl(args.per_leaf, "", Path(tmp, "clean").resolve())
        seconds, log, db = crawl(args.per_leaf, f"{transient},{data}", Path(tmp, "faults").resolve())
        connection = sqlite3.connect(db)
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
        stored = dict(connection.execute("SELECT id, image_status FROM products"))
        leaves = connection.execute("SELECT count(*) FROM leaves").fetchone()[0]
        connection.close()

    checks = {
        "integrity_check ok": integrity == "ok",
        "every product with a name stored once": set(stored) == ids - nameless,
        "every leaf complete": leaves == len(catalog.leaves()),
        "bad photos refused, products kept": all(stored[i] == "invalid" for i in bad_photo),
        "every other photo stored": all(s == "ok" for i, s in stored.items() if i in served and i not in bad_photo),
        "a product without a photo kept as one": all(s == ("missing" if i in offered else "none")
                                                     for i, s in stored.items() if i not in served | bad_photo),
    }
    print(f"soak benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()}: synthetic catalog, {len(ids)} products in "
          f"{len(catalog.leaves())} leaves; transient faults {args.transient:.0%} each "
          f"(slow {args.transient / 10:.1%}), data faults {args.data:.0%} each")
    print(f"fault-free: {len(ids) / clean_seconds:.1f} products/s ({clean_seconds:.0f} s); under faults: "
          f"{len(ids) / seconds:.1f} products/s ({seconds:.0f} s); ratio {clean_seconds / seconds:.2f}x")
    summary = False  # the crawl's own summary: its "crawl finished" line and the indented lines under it
    for line in log.splitlines():
        if "crawl finished" in line:
            summary = True
            print(line.split("] INFO: ")[-1])
        elif summary and line.startswith("  "):
            print(line)
        else:
            summary = False
    retries = sorted((line.split("'retry/reason_count/")[1].split("'")[0], line.rsplit(": ", 1)[1].rstrip(","))
                     for line in log.splitlines() if "'retry/reason_count/" in line)
    print("retries by reason: " + ", ".join(f"{reason} {count}" for reason, count in retries))
    for check, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {check}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
