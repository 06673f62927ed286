"""The catalog over time: when each product arrived, left, was re-filed, and how its price and stock moved.

A catalog as loaded is every product the catalog ever held. ``Timeline`` gives each one a life drawn from ``seed``
alone (the same seed, the same lives, on every machine), and ``as_of(day)`` serves the catalog as it stood at the
end of that day, so that a crawl, a refresh a week later and a fresh crawl a month later can be compared with what
the catalog really did in between:

- products arrive over about a year (``SPAN_DAYS`` from ``EPOCH``), some weeks busier than others, and ``Recency``
  lists them newest first by that date;
- about ``REMOVED_PER_MONTH`` of the products on sale leave each month, for good;
- a small share arrives mis-filed, mostly in a sibling leaf (flats filed as heels, bootcut as flare: the pairs a
  feed confuses), the others anywhere, and is re-filed into its own leaf some weeks later, as a retailer fixing
  its feed would. The catalog as loaded holds each product's own leaf, so a re-filing corrects a label: the
  catalog's noise at any day is its own plus the mistakes not fixed yet (a re-filing that made a right label wrong
  would add noise that grows with every month, which no real catalog's fixes do);
- prices and stock move now and then, where the catalog has them;
- once in a while a new leaf appears in the tree, its products arriving from then on.

Photos do not change: a re-filed product keeps its photo, byte for byte.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from datetime import date

from .catalog import Catalog, Category

EPOCH = date(2025, 1, 1)  # the day the first product arrived
SPAN_DAYS = 365  # products arrive over this many days
REMOVED_PER_MONTH = 0.03  # share of the products on sale that leave in a month
MISFILED_SHARE = 0.03  # share of the products that arrive mis-filed and are re-filed into their own leaf later
MISFILED_IN_SIBLING = 0.85  # of those, the share filed in a sibling leaf of their own
FIXED_AFTER_DAYS = 30.0  # mean days a mis-filed product waits for its fix
PRICE_MOVE_DAYS = 150.0  # mean days between two moves of a product's price
STOCK_FLIP_DAYS = 120.0  # mean days between two changes of a product's stock
LEAVES_PER_NEW_LEAF = 25  # one leaf in this many is new: it appears in the tree on a day of the year
DAYS_PER_MONTH = 30.44


@dataclass(frozen=True, slots=True)
class Life:
    """One product's history, in days since ``EPOCH``."""

    added: float
    removed: float | None  # None: still on sale
    misfiled: tuple[float, str] | None  # (day it is re-filed into its own leaf, the leaf it is in until then)
    price_moves: tuple[tuple[float, float], ...]  # (day, factor the price is multiplied by)
    stock_flips: tuple[float, ...]  # days the product goes out of (or back into) stock


def day_of(when: date) -> float:
    """The end of ``when``, in days since ``EPOCH``: what was added during that day is there."""
    return float((when - EPOCH).days + 1)


class Timeline:
    """The lives of a catalog's products (``catalog``: every product it ever held), drawn from ``seed``."""

    def __init__(self, catalog: Catalog, seed: int = 0):
        self.catalog = catalog
        rng = random.Random(f"{seed}:timeline")
        leaves = sorted(leaf.id for leaf in catalog.leaves())
        siblings = {leaf: [other for other in leaves if other != leaf
                           and catalog.category(other).parent_id == catalog.category(leaf).parent_id]
                    for leaf in leaves}
        # a new leaf has siblings, so that its parent stays a parent before it appears
        candidates = [leaf for leaf in leaves if siblings[leaf]]
        count = min(len(candidates), max(1, round(len(leaves) / LEAVES_PER_NEW_LEAF)))
        self.new_leaves: dict[str, float] = {leaf: rng.uniform(90.0, SPAN_DAYS + 60.0)
                                             for leaf in sorted(rng.sample(candidates, count))}
        targets = {leaf: [other for other in others if other not in self.new_leaves]
                   for leaf, others in siblings.items()}
        settled = [leaf for leaf in leaves if leaf not in self.new_leaves]
        weeks = range(SPAN_DAYS // 7 + 1)
        busy, total = [], 0.0
        for _ in weeks:  # some weeks busier than others
            total += rng.lognormvariate(0.0, 0.6)
            busy.append(total)
        self.lives: dict[int, Life] = {}
        for product in catalog.products():
            leaf = product.category_id
            if leaf in self.new_leaves:
                appears = self.new_leaves[leaf]
                added = appears + rng.random() * max(30.0, SPAN_DAYS + 60.0 - appears)
            else:
                added = min(rng.choices(weeks, cum_weights=busy)[0] * 7 + rng.uniform(0.0, 7.0), SPAN_DAYS - 1e-6)
            removed = added + rng.expovariate(REMOVED_PER_MONTH / DAYS_PER_MONTH)
            misfiled = None
            if rng.random() < MISFILED_SHARE:
                near = targets.get(leaf) or []
                pool = near if near and rng.random() < MISFILED_IN_SIBLING else [o for o in settled if o != leaf]
                if pool:
                    misfiled = (added + rng.expovariate(1.0 / FIXED_AFTER_DAYS), rng.choice(pool))
            horizon = added + 2 * SPAN_DAYS
            price_moves = tuple((day, round(rng.uniform(0.7, 1.2), 2)) for day in _events(rng, added, horizon,
                                                                                             PRICE_MOVE_DAYS)) \
                if product.price is not None else ()
            stock_flips = tuple(_events(rng, added, horizon, STOCK_FLIP_DAYS)) if product.in_stock is not None else ()
            self.lives[product.id] = Life(added, removed if removed < horizon else None, misfiled, price_moves,
                                          stock_flips)

    def as_of(self, when: date) -> Catalog:
        """The catalog as it stood at the end of ``when``."""
        cutoff = day_of(when)
        gone_leaves = {leaf for leaf, appears in self.new_leaves.items() if appears >= cutoff}
        categories: list[Category] = [c for c in self.catalog.categories() if c.id not in gone_leaves]
        products = []
        for product in self.catalog.products():
            life = self.lives[product.id]
            if life.added >= cutoff or (life.removed is not None and life.removed < cutoff) \
                    or product.category_id in gone_leaves:
                continue
            changes: dict = {"added": life.added}
            if life.misfiled is not None and life.misfiled[0] >= cutoff and life.misfiled[1] not in gone_leaves:
                changes["category_id"] = life.misfiled[1]  # not fixed yet
            price = product.price
            for day, factor in life.price_moves:
                if day < cutoff:
                    price = round(price * factor, 2)
            if price is not None:
                changes["price"] = price
            if product.in_stock is not None:
                flips = sum(day < cutoff for day in life.stock_flips)
                changes["in_stock"] = product.in_stock != bool(flips % 2)
            products.append(dataclasses.replace(product, **changes))
        return Catalog(f"{self.catalog.name} (as of {when.isoformat()})", categories, products, self.catalog.images)


def _events(rng: random.Random, start: float, end: float, mean_gap: float) -> list[float]:
    """Days of events between ``start`` and ``end``, ``mean_gap`` apart on average (a Poisson process)."""
    days, day = [], start
    while (day := day + rng.expovariate(1.0 / mean_gap)) < end:
        days.append(day)
    return days
