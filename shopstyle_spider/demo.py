"""``make demo``: the whole job end to end on the built-in synthetic catalog, with no API key or network needed.

It starts the sandbox, crawls it into ``data/demo/`` (database and photos) and shows what was stored. The model
stages join here as they land.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import closing
from pathlib import Path

from . import config, schema
from .runner import run_crawl
from .sandbox import SandboxProcess

DEMO_KEY = "sandbox-key"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shopstyle_spider.demo", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic catalog")
    parser.add_argument("--products-per-category", type=int, default=60, help="products in each of the 27 leaves")
    parser.add_argument("--out", default=str(config.data_dir() / "demo"),
                        help="folder for the demo's database (crawl.db) and photos (images/)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    db, images = out / "crawl.db", out / "images"

    with SandboxProcess("--seed", str(args.seed), "--products-per-category", str(args.products_per_category),
                        "--api-key", DEMO_KEY) as sandbox:
        print(f"1/2 sandbox serving the synthetic catalog at {sandbox.url}", flush=True)
        print(f"2/2 crawling it into {db} and {images} (the crawl's log follows)", flush=True)
        result = run_crawl(sandbox.url, db, images, api_key=DEMO_KEY, capture=False)
    if result.returncode != 0:
        print(f"the crawl failed (exit {result.returncode})", file=sys.stderr)
        return result.returncode

    with closing(schema.connect(db, readonly=True)) as connection:
        leaves = connection.execute(
            "SELECT category_id, count(*), sum(image_status = 'ok') FROM products GROUP BY 1 ORDER BY 1").fetchall()
        sample = connection.execute(
            "SELECT id, category_id, name, image_path FROM products ORDER BY id LIMIT 5").fetchall()
    print(f"\nstored {sum(n for _, n, _ in leaves)} products in {len(leaves)} leaf categories, "
          f"{sum(ok for *_, ok in leaves)} with their photo; for example:")
    for product_id, category, name, image_path in sample:
        print(f"  {product_id}  {category:<20} {name:<45} {image_path}")
    print(f"\nrun it again and the crawl finds everything complete: {sys.executable} -m shopstyle_spider.demo")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
