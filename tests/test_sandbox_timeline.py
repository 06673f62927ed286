"""The sandbox's catalog over time (``--as-of``): arrivals, departures, re-filings, moving prices, a new leaf."""

from __future__ import annotations

from datetime import date, timedelta

from shopstyle_spider.sandbox import SandboxProcess, load_catalog
from shopstyle_spider.sandbox.timeline import EPOCH, SPAN_DAYS, Timeline, day_of

from .apiclient import api

DAY = date(2025, 9, 1)


def test_the_catalog_changes_over_time_as_drawn_from_its_seed():
    full = load_catalog("synthetic", seed=3, products_per_category=60)
    timeline = Timeline(full, seed=3)
    assert Timeline(full, seed=3).lives == timeline.lives and Timeline(full, seed=4).lives != timeline.lives
    before, after = timeline.as_of(DAY), timeline.as_of(DAY + timedelta(days=30))
    was, now = {p.id: p for p in before.products()}, {p.id: p for p in after.products()}
    assert all(p.added < day_of(DAY) for p in was.values())
    # arrivals over about a year, some weeks busier than others
    weeks = [sum(int(life.added // 7) == week for life in timeline.lives.values()) for week in range(52)]
    assert max(weeks) > 2 * min(weeks) > 0
    assert max(life.added for i, life in timeline.lives.items()
               if full.product(i).category_id not in timeline.new_leaves) < SPAN_DAYS
    # about 3% of the products on sale leave in a month, never to come back
    gone = set(was) - set(now)
    assert 0.015 * len(was) < len(gone) < 0.05 * len(was)
    assert not gone & {p.id for p in timeline.as_of(DAY + timedelta(days=200)).products()}
    # a few arrive mis-filed, mostly in a sibling leaf, and are re-filed into their own leaf later; their photo
    # stays the same
    misfiled = [(full.product(i).category_id, life.misfiled[1]) for i, life in timeline.lives.items()
                if life.misfiled]
    assert 0.01 * len(full) < len(misfiled) < 0.06 * len(full)
    parent = {c.id: c.parent_id for c in full.categories()}
    assert sum(parent[own] == parent[wrong] for own, wrong in misfiled) > 0.7 * len(misfiled)
    later = {p.id: p for p in timeline.as_of(DAY + timedelta(days=120)).products()}
    moved = [i for i in set(was) & set(later) if was[i].category_id != later[i].category_id]
    assert moved and all(was[i].category_id == timeline.lives[i].misfiled[1] for i in moved)
    assert all(later[i].category_id == full.product(i).category_id for i in moved)  # fixed: its own leaf
    assert after.images.original(moved[0]) == full.images.original(moved[0])
    # the mistakes not fixed yet are few on any day: the catalog's labels do not drift away from its own
    for day in (DAY, DAY + timedelta(days=120)):
        shown = list(timeline.as_of(day).products())
        assert sum(p.category_id != full.product(p.id).category_id for p in shown) < 0.02 * len(shown)
    # prices and stock move
    assert any(was[i].price != now[i].price for i in set(was) & set(now))
    assert any(was[i].in_stock != now[i].in_stock for i in set(was) & set(now))
    # a leaf appears on its day, its products from then on
    (leaf, appears), = timeline.new_leaves.items()
    on = EPOCH + timedelta(days=int(appears))
    assert before.category(leaf) is None or on < DAY
    assert timeline.as_of(on - timedelta(days=1)).category(leaf) is None
    assert timeline.as_of(on + timedelta(days=60)).query(leaf)


def test_recency_lists_the_newest_first_as_of_the_day_served():
    with SandboxProcess("--products-per-category", "20", "--rate-limit", "0", "--seed", "3", as_of=DAY) as sandbox:
        listed = [p["id"] for p in api(sandbox, "products", cat="jeans", sort="Recency", limit=50)["products"]]
        total = api(sandbox, "products", cat="jeans", limit=0)["metadata"]["total"]
    catalog = load_catalog("synthetic", seed=3, products_per_category=20, as_of=DAY)
    jeans = catalog.query("jeans")
    assert total == len(jeans) < 80  # some have not arrived yet, some have left
    assert listed == [p.id for p in sorted(jeans, key=lambda p: p.added, reverse=True)][:50]
