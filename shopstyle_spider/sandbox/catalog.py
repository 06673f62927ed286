"""The sandbox's in-memory catalog: a category tree, products, and the queries the API answers.

Every catalog kind (synthetic, fashion, jsonl) is loaded into this one shape, so the server and its paging rules
are written once. Queries are precomputed per category and sort on first use, which keeps a page of a
40k-product catalog well under a millisecond to select.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

ROOT_ID = "clothes-shoes-and-jewelry"
ROOT_NAME = "Clothes, Shoes & Jewelry"
DEFAULT_SORT = "Popular"
SORTS = (DEFAULT_SORT, "Recency", "PriceLoHi", "PriceHiLo")
# What a product query can be filtered by (``fl=<prefix><id>``) and counted by (``/products/histogram``), as on the
# real API: the filter's name in ``filters=``, its prefix in ``fl`` and its histogram's key.
FILTERS = {"Brand": ("b", "brandHistogram"), "Retailer": ("r", "retailerHistogram"),
           "Price": ("p", "priceHistogram"), "Color": ("c", "colorHistogram")}
# The API's price ranges: id, label, lower bound (included), upper bound (excluded).
PRICE_RANGES = ((1, "Under $25", 0.0, 25.0), (2, "$25 - $50", 25.0, 50.0), (3, "$50 - $100", 50.0, 100.0),
                (4, "$100 - $150", 100.0, 150.0), (5, "$150 - $250", 150.0, 250.0), (6, "$250 - $500", 250.0, 500.0),
                (7, "$500 - $1,000", 500.0, 1000.0), (8, "$1,000 & above", 1000.0, math.inf))


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
    colors: tuple[str, ...] = ()  # as on the real API, a product may carry several (or none)
    has_image: bool = True  # False: the catalog offers no photo at all, and the API leaves ``image`` out
    added: float | None = None  # days since the timeline's start (sandbox.timeline); None: a catalog without dates


def date_added(product: Product) -> tuple[float, int]:
    """When the catalog got the product, as an order: its ``added`` day where the catalog has a timeline (a hash of
    the id breaks ties), else the hash alone. Unrelated to the default order (ascending id), like the real API's
    dates."""
    tie = int.from_bytes(hashlib.sha256(f"added:{product.id}".encode()).digest()[:8], "big")
    return (product.added or 0.0, tie)


def _price_range(price: float | None) -> int | None:
    if price is None:
        return None
    return next(range_id for range_id, _, low, high in PRICE_RANGES if low <= price < high)


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
        # filter ids: price ranges have theirs; brands, retailers and colours are numbered in name order
        self._labels: dict[str, dict[str, str]] = {"Price": {str(i): label for i, label, _, _ in PRICE_RANGES}}
        self._ids: dict[str, dict[str, str]] = {}
        named = {"Brand": {p.brand for p in self._products}, "Retailer": {p.retailer for p in self._products},
                 "Color": {color for p in self._products for color in p.colors}}
        for name, found in named.items():
            values = sorted(found - {None})
            self._ids[name] = {value: str(number) for number, value in enumerate(values, 1)}
            self._labels[name] = {number: value for value, number in self._ids[name].items()}

    def facets(self, product: Product, name: str) -> set[str]:
        """The ids the product has under filter ``name`` (``Brand``, ``Retailer``, ``Price``, ``Color``): one at
        most, but for colours, of which a product may carry several."""
        if name == "Price":
            range_id = _price_range(product.price)
            return set() if range_id is None else {str(range_id)}
        values = product.colors if name == "Color" else (getattr(product, name.lower()),)
        return {self._ids[name][value] for value in values if value in self._ids[name]}

    def brand_id(self, name: str) -> str | None:
        return self._ids["Brand"].get(name)

    def retailer_id(self, name: str) -> str | None:
        return self._ids["Retailer"].get(name)

    def matching(self, products: Sequence[Product], filters: dict[str, set[str]]) -> list[Product]:
        """The products that have, under every filter named, one of its ids (``fl`` values of one kind are ORed,
        kinds ANDed, as on the API): a product of two colours matches either."""
        return [p for p in products if all(self.facets(p, name) & ids for name, ids in filters.items())]

    def histogram(self, products: Sequence[Product], name: str) -> list[dict]:
        """How many of ``products`` have each id under filter ``name``: ``{"id", "name", "count"}``, by id. A
        product of two colours counts under both, as on the real API: colour counts overlap."""
        counts: dict[str, int] = {}
        for product in products:
            for facet in self.facets(product, name):
                counts[facet] = counts.get(facet, 0) + 1
        return [{"id": facet, "name": self._labels[name][facet], "count": count}
                for facet, count in sorted(counts.items(), key=lambda item: int(item[0]))]

    def __len__(self) -> int:
        return len(self._products)

    def categories(self) -> list[Category]:
        return list(self._categories.values())

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
        """Products of a category and all its descendants in the order ``sort`` gives: the default order is
        ascending id, ``Recency`` newest first by ``date_added`` (not the default order reversed: reading a big
        category from both ends does not reach the whole of it, as on the real API)."""
        key = (category_id, sort)
        if key not in self._sorted:
            products = self._members[category_id]
            if sort == DEFAULT_SORT:
                ordered = tuple(products)
            elif sort == "Recency":
                ordered = tuple(sorted(products, key=date_added, reverse=True))
            elif sort in ("PriceLoHi", "PriceHiLo"):
                ordered = tuple(sorted(products, key=lambda p: (p.price or 0.0, p.id), reverse=sort == "PriceHiLo"))
            else:
                raise ValueError(f"unknown sort {sort!r}")
            self._sorted[key] = ordered
        return self._sorted[key]
