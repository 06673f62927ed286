"""The sandbox's in-memory catalog: a category tree, products, and the queries the API answers.

Every catalog kind (synthetic, fashion, jsonl) is loaded into this one shape, so the server and its paging rules
are written once. Queries are precomputed per category and sort on first use, which keeps a page of a
40k-product catalog well under a millisecond to select.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

ROOT_ID = "clothes-shoes-and-jewelry"
ROOT_NAME = "Clothes, Shoes & Jewelry"
DEFAULT_SORT = "Popular"
SORTS = (DEFAULT_SORT, "Recency", "PriceLoHi", "PriceHiLo")


def slug(text: str) -> str:
    """ShopStyle-style id: lower case, every run outside [a-z0-9] one '-', no leading or trailing '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def name_from_id(category_id: str) -> str:
    """A readable name for a category known only by its id (``bootcut-jeans`` -> ``Bootcut Jeans``)."""
    return " ".join(word.capitalize() for word in category_id.split("-"))


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    name: str
    parent_id: str | None


@dataclass(frozen=True, slots=True)
class Product:
    """One product; an optional field left as None is a field the catalog does not have, and the API omits it."""

    id: int
    name: str
    category_id: str
    description: str | None = None
    branded_name: str | None = None
    unbranded_name: str | None = None
    brand: str | None = None
    retailer: str | None = None
    price: float | None = None
    currency: str | None = None
    in_stock: bool | None = None
    has_image: bool = True  # False: the catalog offers no photo at all, and the API leaves ``image`` out


class ImageSource(Protocol):
    """Where a catalog's photos come from; None means the product has no photo (its URLs answer 404)."""

    def original(self, product_id: int) -> bytes | None: ...

    def dimensions(self, product_id: int) -> tuple[int, int] | None: ...


class NoImages:
    """A catalog whose photos are gone (dead CDN links): image URLs exist, every one answers 404."""

    def original(self, product_id: int) -> bytes | None:
        return None

    def dimensions(self, product_id: int) -> tuple[int, int] | None:
        return None


class CatalogError(ValueError):
    """A catalog that cannot be served as loaded (unknown parent, duplicate id, ...)."""


class Catalog:
    def __init__(self, name: str, categories: Sequence[Category], products: Sequence[Product],
                 images: ImageSource):
        self.name = name
        self.images = images
        self._categories: dict[str, Category] = {}
        for category in categories:
            if category.id in self._categories:
                raise CatalogError(f"{name}: category id {category.id!r} appears twice")
            self._categories[category.id] = category
        if ROOT_ID not in self._categories:
            raise CatalogError(f"{name}: the root category {ROOT_ID!r} is missing")
        self._children: dict[str, list[str]] = {cid: [] for cid in self._categories}
        for category in self._categories.values():
            if category.parent_id is None:
                continue
            if category.parent_id not in self._categories:
                raise CatalogError(f"{name}: category {category.id!r} has unknown parent {category.parent_id!r}")
            self._children[category.parent_id].append(category.id)

        self._products = sorted(products, key=lambda p: p.id)
        self._by_id: dict[int, Product] = {}
        members: dict[str, list[Product]] = {cid: [] for cid in self._categories}
        for product in self._products:
            if product.id in self._by_id:
                raise CatalogError(f"{name}: product id {product.id} appears twice")
            if product.category_id not in self._categories:
                raise CatalogError(f"{name}: product {product.id} has unknown category {product.category_id!r}")
            self._by_id[product.id] = product
            for category_id in self.path(product.category_id):
                members[category_id].append(product)
        self._members = members
        self.has_prices = any(p.price is not None for p in self._products)
        self._sorted: dict[tuple[str, str], Sequence[Product]] = {}

    def __len__(self) -> int:
        return len(self._products)

    def category(self, category_id: str) -> Category | None:
        return self._categories.get(category_id)

    def children(self, category_id: str) -> list[Category]:
        return [self._categories[c] for c in self._children[category_id]]

    def leaves(self) -> list[Category]:
        return [c for c in self._categories.values() if not self._children[c.id]]

    def descendants(self, category_id: str, depth: int | None = None) -> list[Category]:
        """Categories below ``category_id``, breadth first, at most ``depth`` levels down (None: all)."""
        found, level, frontier = [], 0, [category_id]
        while frontier and (depth is None or level < depth):
            frontier = [child for parent in frontier for child in self._children[parent]]
            found.extend(self._categories[c] for c in frontier)
            level += 1
        return found

    def path(self, category_id: str) -> list[str]:
        """Category ids from the root down to ``category_id``."""
        path = []
        current: str | None = category_id
        while current is not None:
            path.append(current)
            current = self._categories[current].parent_id
        return path[::-1]

    def product(self, product_id: int) -> Product | None:
        return self._by_id.get(product_id)

    def products(self) -> Sequence[Product]:
        return self._products

    def query(self, category_id: str, sort: str = DEFAULT_SORT) -> Sequence[Product]:
        """Products of a category and all its descendants in the order ``sort`` gives.

        The default order is ascending id, so ``Recency`` (newest first) is its exact reverse: a client can
        reach up to twice the per-query result cap by reading a big category from both ends.
        """
        key = (category_id, sort)
        if key not in self._sorted:
            products = self._members[category_id]
            if sort == DEFAULT_SORT:
                ordered = tuple(products)
            elif sort == "Recency":
                ordered = tuple(reversed(products))
            elif sort in ("PriceLoHi", "PriceHiLo"):
                ordered = tuple(sorted(products, key=lambda p: (p.price or 0.0, p.id), reverse=sort == "PriceHiLo"))
            else:
                raise ValueError(f"unknown sort {sort!r}")
            self._sorted[key] = ordered
        return self._sorted[key]
