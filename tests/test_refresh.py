"""Refreshing a crawled catalog that changes (the sandbox's ``--as-of``): crawl as of D, ``refresh=new`` a week
later, ``refresh=all`` a month later (killed mid-way and resumed; under transient faults), each compared with a
fresh crawl at D + 30 and with what the catalog's timeline says happened. Real sandboxes, real sqlite, real photos.

The dates are chosen for seed 5's small catalog (20 products a leaf): products arrive in the first week, a leaf
appears and a product is re-filed between D + 7 and D + 30, some products leave."""

from __future__ import annotations

import re
import shutil
from contextlib import closing
from datetime import date, timedelta

import pytest
from sqlalchemy import insert

from modeling import store, train
from shopstyle_spider import changes, refresh, schema
from shopstyle_spider.runner import crawl_command, run_crawl
from shopstyle_spider.sandbox import SandboxProcess, load_catalog

from .apiclient import KEY
from .test_crawl import kill_9_once, rows

SEED, PER_LEAF = 5, 20
D = date(2025, 5, 25)
WEEK, MONTH = D + timedelta(days=7), D + timedelta(days=30)
CATALOG = ("--seed", str(SEED), "--products-per-category", str(PER_LEAF), "--rate-limit", "0")
# small pages, so that leaves span pages; photos downloaded again by every refresh (to show none is rewritten)
SETTINGS = {"SHOPSTYLE_PAGE_SIZE": 5, "SHOPSTYLE_REFRESH_OVERLAP": 5, "IMAGES_EXPIRES": 0}


def catalog(day: date):
    return {p.id: p for p in load_catalog("synthetic", seed=SEED, products_per_category=PER_LEAF,
                                          as_of=day).products()}


def tree(day: date) -> set[str]:
    return {c.id for c in load_catalog("synthetic", seed=SEED, products_per_category=PER_LEAF,
                                       as_of=day).categories()}


def copy(source, target):
    shutil.copytree(source, target)
    return target / "crawl.db", target / "images"


def state(db, api_url: str):
    """What a crawl's database says of the catalog: the products on sale (every column but timestamps, sandbox
    URLs made relative), the products gone, the categories in the tree."""
    root = api_url.removesuffix("/api/v2")
    products = [tuple(v.replace(root, "<sandbox>") if isinstance(v, str) else v for v in row) for row in rows(
        db, "SELECT id, name, description, category_id, brand, retailer, price, currency, in_stock, click_url, "
            "image_url, image_path, image_checksum, image_status, image_error FROM products WHERE gone_at IS NULL "
            "ORDER BY id")]
    gone = {r[0] for r in rows(db, "SELECT id FROM products WHERE gone_at IS NOT NULL")}
    categories = rows(db, "SELECT id, name, parent_id, is_leaf, path FROM categories WHERE gone_at IS NULL "
                          "ORDER BY id")
    return products, gone, categories


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A crawl as of D refreshed with refresh=new as of D + 7 (kept, to be refreshed by each test), and a fresh
    crawl as of D + 30."""
    folder = tmp_path_factory.mktemp("history")
    db, images = folder / "week" / "crawl.db", folder / "week" / "images"
    with SandboxProcess(*CATALOG, as_of=D) as sandbox:
        first = run_crawl(sandbox.url, db, images, api_key=KEY, settings=SETTINGS, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    files = {p.name: p.stat().st_mtime_ns for p in (images / "full").iterdir()}
    with SandboxProcess(*CATALOG, as_of=WEEK) as sandbox:
        new = run_crawl(sandbox.url, db, images, api_key=KEY, spider_args={"refresh": "new"}, settings=SETTINGS,
                        timeout=300)
    assert new.returncode == 0, new.stderr[-3000:]
    with SandboxProcess(*CATALOG, as_of=MONTH) as sandbox:
        fresh = run_crawl(sandbox.url, folder / "fresh.db", folder / "fresh-images", api_key=KEY, settings=SETTINGS,
                          timeout=300)
        fresh_state = state(folder / "fresh.db", sandbox.url)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    return {"week": folder / "week", "first": first, "new": new, "files": files, "fresh": fresh_state,
            "fresh_images": folder / "fresh-images"}


def api_requests(log: str) -> int:
    return int(re.search(r"'shopstyle/api_requests': (\d+)", log).group(1))


def test_refresh_new_finds_every_new_product_reading_the_newest_pages_only(history):
    db = history["week"] / "crawl.db"
    then, now = catalog(D), catalog(WEEK)
    arrived = set(now) - set(then)
    assert arrived  # the week brought products
    added = {r[0] for r in rows(db, "SELECT product_id FROM product_changes WHERE field = 'added'")}
    assert added == arrived and arrived <= {r[0] for r in rows(db, "SELECT id FROM products")}
    # a leaf without news costs one page; each new product at most one more
    leaves = len({p.category_id for p in now.values()})
    assert api_requests(history["new"].stderr) <= 1 + leaves + len(arrived) < api_requests(history["first"].stderr)
    assert rows(db, "SELECT mode, finished_at IS NOT NULL FROM refreshes") == [("new", 1)]
    assert f"refresh 1 (new) finished: products {len(arrived)} new, 0 gone" in history["new"].stderr
    assert rows(db, "SELECT count(*) FROM products WHERE gone_at IS NOT NULL") == [(0,)]  # refresh=new marks none
    # photos downloaded again (IMAGES_EXPIRES=0) with the same bytes: not one file rewritten
    images = history["week"] / "images" / "full"
    assert {name: mtime for name, mtime in history["files"].items()} == {
        name: (images / name).stat().st_mtime_ns for name in history["files"]}
    assert "'file_status_count/downloaded'" in history["new"].stderr


def check_month(db, images, api_url: str, history, log: str) -> None:
    """The refreshed database equals the fresh crawl at D + 30, its gone products marked, nothing deleted."""
    products, gone, categories = state(db, api_url)
    fresh_products, _, fresh_categories = history["fresh"]
    assert products == fresh_products and categories == fresh_categories
    ever = set(catalog(D)) | set(catalog(WEEK))
    assert gone == ever - set(catalog(MONTH)) and gone  # marked, not missing
    fresh_files = history["fresh_images"] / "full"
    for photo in fresh_files.iterdir():
        assert (images / "full" / photo.name).read_bytes() == photo.read_bytes()
    assert {p.name for p in (images / "full").iterdir()} >= set(history["files"])  # no photo deleted
    week, month = catalog(WEEK), catalog(MONTH)
    refiled = {i for i in set(week) & set(month) if week[i].category_id != month[i].category_id}
    assert refiled and {r[0] for r in rows(db, "SELECT product_id FROM product_changes WHERE field = "
                                              "'category_id' AND refresh_id = 2")} == refiled
    appeared = tree(MONTH) - tree(WEEK)
    assert appeared and {r[0] for r in rows(db, "SELECT category_id FROM category_changes WHERE field = 'added'")} \
        == appeared
    assert re.search(rf"refresh 2 \(all\) finished: products \d+ new, {len(gone)} gone, 0 back, "
                     rf"{len(refiled)} re-filed", log)


def test_refresh_all_killed_mid_way_resumes_and_ends_as_a_fresh_crawl(history, tmp_path, capsys):
    db, images = copy(history["week"], tmp_path / "crawl")
    with SandboxProcess(*CATALOG, "--latency", "0.05", as_of=MONTH) as sandbox:
        kill_9_once(crawl_command(sandbox.url, db, images, {"refresh": "all"}, SETTINGS), db,
                    "leaves WHERE refresh_id = 2", 3)
        done = rows(db, "SELECT count(*) FROM leaves WHERE refresh_id = 2")[0][0]
        assert 3 <= done < rows(db, "SELECT count(*) FROM categories WHERE is_leaf = 1")[0][0]
        assert rows(db, "SELECT finished_at FROM refreshes WHERE id = 2") == [(None,)]
        assert rows(db, "SELECT count(*) FROM products WHERE gone_at IS NOT NULL") == [(0,)]
        resumed = run_crawl(sandbox.url, db, images, api_key=KEY, spider_args={"refresh": "all"},
                            settings=SETTINGS, timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert "resuming refresh 2 (all)" in resumed.stderr
        assert f"{done} skipped as already complete" in resumed.stderr
        check_month(db, images, sandbox.url, history, resumed.stderr)
    # where it changed, per leaf, since the refresh began
    (began,), = rows(db, "SELECT started_at FROM refreshes WHERE id = 2")
    assert changes.main(["--db", str(db), "--since", began]) == 0
    report = {line.split()[0]: [int(n) for n in line.split()[1:]] for line in capsys.readouterr().out.splitlines()
              if len(line.split()) == 5 and line.split()[1].isdigit()}
    week, month = catalog(WEEK), catalog(MONTH)
    stored_before = {**catalog(D), **week}  # refresh=new left the products that left in the first week
    for leaf in {p.category_id for p in stored_before.values()}:
        gone = sum(p.category_id == leaf for i, p in stored_before.items() if i not in month)
        out = sum(p.category_id == leaf != month[i].category_id for i, p in week.items() if i in month)
        into = sum(p.category_id == leaf != week[i].category_id for i, p in month.items() if i in week)
        assert report.get(leaf, [0] * 4)[1:] == [gone, out, into], leaf
    assert report["total"][0] == len(set(month) - set(week))  # first met by this refresh


def test_training_counts_the_products_new_since_the_previous_experiment(tmp_path):
    db = tmp_path / "crawl.db"
    with closing(store.connect(db)) as connection, connection.begin():
        for product_id, first_seen in ((1, "2026-11-01T10:00:00+00:00"), (2, "2026-11-20T10:00:00+00:00"),
                                       (3, "2026-11-21T10:00:00+00:00")):
            connection.execute(insert(schema.products).values(
                id=product_id, name="n", category_id="boots", image_status="none", first_seen=first_seen,
                last_seen=first_seen))
    assert train.new_since_last_experiment(db, [1, 2, 3]) is None  # no previous experiment
    with closing(store.connect(db)) as connection, connection.begin():
        connection.execute(insert(store.experiments).values(
            name="e", created_at="2026-11-10T00:00:00+00:00", parameters="{}", versions="{}", metrics="{}"))
    assert train.new_since_last_experiment(db, [1, 2, 3]) == 2
    assert train.new_since_last_experiment(db, [1, 2]) == 1  # of the experiment's own products only


def test_refresh_all_under_transient_faults_ends_as_a_fault_free_one(history, tmp_path):
    """Every transient fault at 10%: retries make the refresh exact. (``--faults all=0.1`` would add data faults,
    which drop or change products by design: no run under them can equal a fault-free one.)"""
    db, images = copy(history["week"], tmp_path / "crawl")
    faults = "500=0.1,429=0.1,reset=0.1,badjson=0.1,truncated-image=0.1"
    with SandboxProcess(*CATALOG, "--faults", faults, "--fault-seed", "2", as_of=MONTH) as sandbox:
        result = run_crawl(sandbox.url, db, images, api_key=KEY, spider_args={"refresh": "all"},
                           settings={**SETTINGS, "RETRY_TIMES": 8, "SHOPSTYLE_BACKOFF_BASE": 0.1}, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "retry/reason_count" in result.stderr
        check_month(db, images, sandbox.url, history, result.stderr)


def test_a_refresh_records_categories_moved_and_gone_and_keeps_a_photo_that_failed_to_download(tmp_path):
    """What the sandbox's timeline never does, on a real database: a category moved to another parent, a leaf gone
    from the tree (its products gone with it), a photo that failed this time (the stored one stays)."""
    db = tmp_path / "crawl.db"
    when = "2026-12-01T00:00:00+00:00"
    category = dict(first_seen=when, last_seen=when, refresh_id=None)
    product = dict(name="n", image_url="http://x/1.jpg", image_path="full/1.jpg", image_checksum="abc",
                   image_status="ok", first_seen=when, last_seen=when)
    with closing(schema.connect(db)) as connection:
        with connection.begin():
            connection.execute(insert(schema.categories), [
                dict(id="women", name="W", parent_id=None, is_leaf=0, path="women", **category),
                dict(id="boots", name="B", parent_id="women", is_leaf=1, path="women/boots", **category),
                dict(id="clogs", name="C", parent_id="women", is_leaf=1, path="women/clogs", **category),
                dict(id="men", name="M", parent_id=None, is_leaf=1, path="men", **category)])
            connection.execute(insert(schema.products), [dict(id=1, category_id="boots", **product),
                                                         dict(id=2, category_id="clogs", **product)])
        refresh_id, resumed = refresh.begin(db, "all")
        assert not resumed and refresh.begin(db, "all") == (refresh_id, True)
        seen = [dict(id="women", parent_id=None), dict(id="boots", parent_id="shoes")]
        with connection.begin():
            moved = refresh.category_changes(connection, seen, refresh_id, when)
            row = {"id": 1, "category_id": "boots", "price": None, "in_stock": None, "image_url": "http://x/1.jpg",
                   "image_path": None, "image_checksum": None, "image_status": "failed", "image_error": "timeout"}
            assert refresh.product_changes(connection, [row], refresh_id, when) == []
            connection.execute(schema.categories.update().where(schema.categories.c.id.in_(["women", "boots"]))
                               .values(refresh_id=refresh_id))
            connection.execute(schema.products.update().where(schema.products.c.id == 1)
                               .values(refresh_id=refresh_id))  # met again, as the store does
            connection.execute(insert(schema.leaves).values(category_id="boots", total=1, reached=1, unreachable=0,
                                                            completed_at=when, refresh_id=refresh_id))
        assert [(c["category_id"], c["field"], c["old"], c["new"]) for c in moved] == [
            ("boots", "parent_id", "women", "shoes")]
        assert row["image_status"] == "ok" and row["image_checksum"] == "abc"  # the stored photo stays
        assert refresh.finish(connection, refresh_id, "all", "women", {"boots", "clogs"}) is None  # clogs not done
        summary = refresh.finish(connection, refresh_id, "all", "women", {"boots"})
    assert summary == {"categories_gone_at": 1, "gone_at": 1}  # clogs and its product; not men, another root
    assert rows(db, "SELECT id FROM products WHERE gone_at IS NOT NULL") == [(2,)]
    assert rows(db, "SELECT id FROM categories WHERE gone_at IS NOT NULL") == [("clogs",)]
    assert rows(db, "SELECT finished_at IS NOT NULL FROM refreshes") == [(1,)]
