"""``make demo``: the whole job end to end on the built-in synthetic catalog, with no API key or network needed."""

from __future__ import annotations

import argparse
import json
import urllib.request
from urllib.parse import urlencode

from .sandbox import SandboxProcess

DEMO_KEY = "sandbox-key"


def _get(url: str, **params) -> dict:
    with urllib.request.urlopen(f"{url}?{urlencode({'pid': DEMO_KEY, **params})}", timeout=30) as response:
        return json.load(response)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shopstyle_spider.demo", description=__doc__)
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic catalog (default: 0)")
    args = parser.parse_args(argv)
    with SandboxProcess("--seed", str(args.seed), "--api-key", DEMO_KEY) as sandbox:
        print(f"sandbox serving at {sandbox.url}")
        categories = _get(f"{sandbox.url}/categories", cat="women")["categories"]
        parents = {c["parentId"] for c in categories}
        print(f"{len(categories)} categories under 'women', {sum(c['id'] not in parents for c in categories)} leaves")
        page = _get(f"{sandbox.url}/products", cat="women", limit=3)
        print(f"{page['metadata']['total']} products; the first three:")
        for product in page["products"]:
            print(f"  {product['id']}  {product['categories'][0]['id']:<20} {product['name']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
