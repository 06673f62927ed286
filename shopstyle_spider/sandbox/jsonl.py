"""Real ShopStyle products saved as JSON lines (``shared/datasets/shopstyle-sample``), served under ``women``.

The tree comes from a file of leaf paths (``womens-clothes/jeans/bootcut-jeans``); category names are not in
that file, so they are spelled from the ids. The photos' CDN links are dead: image URLs answer 404.
"""

from __future__ import annotations

import json
from pathlib import Path

from .catalog import ROOT_ID, ROOT_NAME, Catalog, CatalogError, Category, NoImages, Product, name_from_id

WOMEN_ID = "women"


def read_tree(paths_file: Path) -> list[Category]:
    categories = {ROOT_ID: Category(ROOT_ID, ROOT_NAME, None), WOMEN_ID: Category(WOMEN_ID, "Women", ROOT_ID)}
    for line_number, line in enumerate(paths_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parent = WOMEN_ID
        for category_id in line.strip().strip("/").split("/"):
            known = categories.get(category_id)
            if known is not None and known.parent_id != parent:
                raise CatalogError(f"{paths_file}:{line_number}: {category_id!r} is under {known.parent_id!r} "
                                   f"elsewhere, not {parent!r}")
            categories.setdefault(category_id, Category(category_id, name_from_id(category_id), parent))
            parent = category_id
    return list(categories.values())


def read_products(jsonl_path: Path) -> list[Product]:
    products = []
    with jsonl_path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                products.append(Product(id=int(record["id"]), name=record["name"], branded_name=record["name"],
                                        description=record.get("description"), category_id=record["category"]))
            except (ValueError, KeyError, TypeError) as error:
                raise CatalogError(f"{jsonl_path}:{line_number}: not a product record ({error!r})") from error
    return products


def load_jsonl(jsonl_path: Path, categories_file: Path | None = None) -> Catalog:
    jsonl_path = Path(jsonl_path)
    categories_file = Path(categories_file) if categories_file else jsonl_path.with_name("categories.txt")
    for path in (jsonl_path, categories_file):
        if not path.is_file():
            raise CatalogError(f"jsonl catalog: {path} not found")
    return Catalog("jsonl", read_tree(categories_file), read_products(jsonl_path), NoImages())
