"""``scrapy crawl shopstyle`` in a subprocess against sandboxes in subprocesses, into real sqlite files and images."""

from __future__ import annotations

import ast
import hashlib
import io
import math
import os
import re
import signal
import sqlite3
import subprocess
import time
from contextlib import closing

import pytest
from PIL import Image
from sqlalchemy import text

from shopstyle_spider import schema
from shopstyle_spider.config import PROJECT_ROOT
from shopstyle_spider.runner import crawl_command, crawl_env, run_crawl
from shopstyle_spider.sandbox import SandboxProcess, load_catalog
from shopstyle_spider.spiders.shopstyle import _best_cut

from .apiclient import KEY

SEED, PER_LEAF = 7, 50  # the synthetic_sandbox fixture's catalog


def rows(db, sql):
    """The rows of a query, from a sqlite file or (a postgresql:// URL) through the project's own connection."""
    if schema.is_url(db):
        with closing(schema.connect(db, readonly=True)) as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    connection = sqlite3.connect(db)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def stored(db, table: str) -> int:
    """Rows in a table of a crawl that may not have created its database yet."""
    try:
        return rows(db, f"SELECT count(*) FROM {table}")[0][0] if db.exists() else 0
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


def snapshot(db, images, sandbox_url: str | None = None):
    """Every stored column but the crawl timestamps, and every image file's bytes; URLs on ``sandbox_url`` are
    written relative to it, so that crawls of two sandboxes (two ports) serving one catalog compare equal."""
    products = rows(db, "SELECT id, name, description, category_id, brand, retailer, price, currency, in_stock, "
                        "click_url, image_url, image_path, image_checksum, image_status, image_error "
                        "FROM products ORDER BY id")
    if sandbox_url:
        root = sandbox_url.removesuffix("/api/v2")
        products = [tuple(v.replace(root, "<sandbox>") if isinstance(v, str) else v for v in row) for row in products]
    categories = rows(db, "SELECT id, name, parent_id, is_leaf, path FROM categories ORDER BY id")
    files = {p.relative_to(images).as_posix(): p.read_bytes() for p in sorted(images.rglob("*")) if p.is_file()}
    return products, categories, files


def test_a_crawl_stores_the_whole_catalog(synthetic_crawl):
    db, images, result = synthetic_crawl
    catalog = load_catalog("synthetic", seed=SEED, products_per_category=PER_LEAF)
    stored = dict(rows(db, "SELECT id, category_id FROM products"))
    assert stored == {p.id: p.category_id for p in catalog.products()}
    leaves = {c.id for c in catalog.leaves()}
    assert {r[0] for r in rows(db, "SELECT id FROM categories WHERE is_leaf = 1")} == leaves
    assert rows(db, "SELECT path FROM categories WHERE id = 'bootcut-jeans'") == [
        ("women/womens-clothes/jeans/bootcut-jeans",)]
    assert {r[0] for r in rows(db, "SELECT category_id FROM leaves")} == leaves
    assert "crawl finished (finished)" in result.stderr
    with_photo = sum(catalog.images.dimensions(p.id) is not None for p in catalog.products())
    assert 0.7 * len(catalog) < with_photo < 0.9 * len(catalog)  # the catalog's gaps: a fifth without a photo
    assert f"{len(catalog)} products, {with_photo} images stored" in result.stderr
    # the CPU it took, per request of each kind: every product's photo URL is one request, every page of 50 another
    pages = len(leaves) * math.ceil(PER_LEAF / 50) + 1
    cpu = re.search(r"CPU: ([\d.]+)s, ([\d.]+) ms per request: ([\d.]+) ms per API page \((\d+)\), "
                    r"([\d.]+) ms per photo \((\d+)\)", result.stderr)
    (photos,), = rows(db, "SELECT count(*) FROM products WHERE image_url IS NOT NULL")
    assert cpu is not None and (int(cpu[4]), int(cpu[6])) == (pages, photos)
    seconds, per_page, per_photo = float(cpu[1]), float(cpu[3]), float(cpu[5])
    assert seconds > 0 and per_page > 0 and per_photo > 0
    assert per_page * pages + per_photo * photos == pytest.approx(1000 * seconds, rel=0.02)
    # and where it stored the photos, for modeling to find them from anywhere
    assert schema.recorded_image_store(db) == str(images.resolve())


def test_images_are_stored_decodable_with_path_and_checksum(synthetic_crawl):
    db, images, _ = synthetic_crawl
    catalog = load_catalog("synthetic", seed=SEED, products_per_category=PER_LEAF)
    expected = {p.id: "none" if not p.has_image else "ok" if catalog.images.dimensions(p.id) else "missing"
                for p in catalog.products()}
    stored = rows(db, "SELECT id, image_path, image_checksum, image_status FROM products")
    assert {product_id: status for product_id, *_, status in stored} == expected
    assert all(path is None and checksum is None for _, path, checksum, status in stored if status != "ok")
    # a dead link is recorded with its reason (the pipeline returns it as the photo's result rather than raising it)
    assert set(rows(db, "SELECT image_error FROM products WHERE image_status = 'missing'")) == {("missing (HTTP 404)",)}
    for product_id, path, checksum, _ in [row for row in stored if row[3] == "ok"][:40]:
        assert path == f"full/{product_id}.jpg"
        data = (images / path).read_bytes()
        assert hashlib.md5(data).hexdigest() == checksum
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            assert image.size == (240, 300)


def test_a_second_run_adds_nothing(synthetic_sandbox, synthetic_crawl):
    db, images, _ = synthetic_crawl
    before = snapshot(db, images)
    again = run_crawl(synthetic_sandbox.url, db, images, api_key=KEY, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert snapshot(db, images) == before
    assert "0 products written" in again.stderr and "27 skipped as already complete" in again.stderr


def test_a_larger_cap_reads_what_a_smaller_one_left(synthetic_sandbox, tmp_path):
    """A leaf crawled with max_per_category=20 is complete for that cap only: a rerun with a larger cap reads the
    rest of it (a rerun with the same cap skips it)."""
    db, images = tmp_path / "crawl.db", tmp_path / "images"
    args = {"categories": "boots,pumps", "max_per_category": 20}
    first = run_crawl(synthetic_sandbox.url, db, images, api_key=KEY, spider_args=args, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert rows(db, "SELECT category_id, total, reached FROM leaves ORDER BY 1") == [("boots", 50, 20),
                                                                                       ("pumps", 50, 20)]
    same = run_crawl(synthetic_sandbox.url, db, images, api_key=KEY, spider_args=args, timeout=300)
    assert "2 skipped as already complete" in same.stderr and "0 products written" in same.stderr
    larger = run_crawl(synthetic_sandbox.url, db, images, api_key=KEY,
                       spider_args={**args, "max_per_category": 1000}, timeout=300)
    assert larger.returncode == 0, larger.stderr[-3000:]
    assert "0 skipped as already complete" in larger.stderr
    assert rows(db, "SELECT category_id, count(*) FROM products GROUP BY 1 ORDER BY 1") == [("boots", 50),
                                                                                              ("pumps", 50)]
    assert rows(db, "SELECT category_id, total, reached FROM leaves ORDER BY 1") == [("boots", 50, 50),
                                                                                       ("pumps", 50, 50)]


def test_a_leaf_over_the_cap_is_read_in_slices_cut_again_where_still_over(tmp_path):
    """With the API's cap at 20, leaves of 200 are cut by the filter that leaves fewest parts over the cap; a part
    still over it is cut again by another filter: every product is reached once, none is out of reach."""
    with SandboxProcess("--products-per-category", "200", "--rate-limit", "0", "--seed", "7",
                        "--result-cap", "20") as sandbox:
        db = tmp_path / "crawl.db"
        result = run_crawl(sandbox.url, db, tmp_path / "images", api_key=KEY,
                           spider_args={"categories": "boots,long-skirts", "max_per_category": 1000},
                           settings={"SHOPSTYLE_RESULT_CAP": 20, "SHOPSTYLE_PAGE_SIZE": 10}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    catalog = load_catalog("synthetic", seed=7, products_per_category=200)
    leaves = ("boots", "long-skirts")
    assert set(dict(rows(db, "SELECT id, category_id FROM products"))) == {
        p.id for leaf in leaves for p in catalog.query(leaf)}
    assert rows(db, "SELECT category_id, total, reached, unreachable FROM leaves ORDER BY 1") == [
        (leaf, 200, 200, 0) for leaf in leaves]
    splits = int(re.search(r"'shopstyle/slices/split': (\d+)", result.stderr).group(1))
    assert splits > len(leaves)  # each leaf, and at least one of its parts again
    assert "out of the API's reach" not in result.stderr and "in no slice" not in result.stderr


def test_slices_reach_only_what_the_filters_cover(tmp_path):
    """Without slicing a leaf over the cap reaches the cap and reports the rest. Colours overlap (a product of two
    colours is in two slices) and some products have none: cut by colour alone, one page of the colours' union
    says how many they reach; short of the leaf, the leaf's own pages are read too, each product is stored once,
    and only uncoloured products past the cap stay out of reach. With prices to cut by, whose counts are exact,
    every product is read (summed, colour counts covered more than the leaf, so the colour cut won, the
    uncoloured products were never read and the leaf was recorded complete without them)."""
    catalog = load_catalog("synthetic", seed=0, products_per_category=50)
    boots = catalog.query("boots")
    reachable = {p.id for p in boots if p.colors} | {p.id for p in boots[:20]}
    assert len(reachable) < 50
    with SandboxProcess("--products-per-category", "50", "--rate-limit", "0", "--result-cap", "20") as sandbox:
        for filters, reached in (([], 20), (["Color"], len(reachable)), (["Color", "Price"], 50)):
            db = tmp_path / f"crawl{len(filters)}.db"
            result = run_crawl(sandbox.url, db, tmp_path / "images", api_key=KEY,
                               spider_args={"categories": "boots"},
                               settings={"SHOPSTYLE_RESULT_CAP": 20, "SHOPSTYLE_PAGE_SIZE": 10,
                                         "SHOPSTYLE_SLICE_FILTERS": ",".join(filters)}, timeout=300)
            assert result.returncode == 0, result.stderr[-3000:]
            assert rows(db, "SELECT total, reached, unreachable FROM leaves") == [(50, reached, 50 - reached)]
            assert f"'shopstyle/products_written': {reached}," in result.stderr  # stored once, not per slice
            if filters == ["Color"]:  # the colours' union counted exactly what they reach, the rest was read
                uncoloured = sum(not p.colors for p in boots)
                assert f"boots: {uncoloured} of its 50 products are in no slice the API can filter" in result.stderr
                assert {r[0] for r in rows(db, "SELECT id FROM products")} == reachable
                assert int(re.search(r"'shopstyle/slices/overlap': (\d+)", result.stderr).group(1)) > 0
            if reached < 50:
                assert f"leaf boots: {50 - reached} of its 50 products stayed out of the API's reach" in result.stderr
            else:
                assert "out of the API's reach" not in result.stderr


def test_overlapping_colour_counts_never_pass_for_the_whole_leaf():
    """The issue's leaf: 6,000 products, colour counts summing to 7,000, 500 products without a colour. The price
    cut, whose counts are exact, wins; cut by colour alone, only the largest colour is sure."""
    body = {"metadata": {"total": 6000},
            "colorHistogram": [{"id": "1", "count": 3000}, {"id": "2", "count": 2500}, {"id": "3", "count": 1500}],
            "priceHistogram": [{"id": "1", "count": 2000}, {"id": "2", "count": 4000}]}
    assert _best_cut(body, ["Color", "Price"], 5000) == ("Price", [("p1", 2000), ("p2", 4000)], 6000)
    assert _best_cut(body, ["Color"], 5000)[2] == 3000


def test_the_key_never_reaches_logs_database_or_file_names(synthetic_sandbox, tmp_path):
    secret = "k3y-that-must-not-leak"
    with SandboxProcess("--products-per-category", "3", "--api-key", secret, "--rate-limit", "0") as sandbox:
        result = run_crawl(sandbox.url, tmp_path / "crawl.db", tmp_path / "images", api_key=secret,
                           settings={"LOG_LEVEL": "DEBUG"}, timeout=300)
    assert result.returncode == 0
    assert "Crawled (200)" in result.stderr and "pid=REDACTED" in result.stderr  # URLs are logged, redacted
    assert secret not in result.stderr + result.stdout
    assert rows(tmp_path / "crawl.db", "SELECT count(*) FROM products")[0][0] == 81
    assert secret.encode() not in (tmp_path / "crawl.db").read_bytes()
    for wal in tmp_path.glob("crawl.db*"):
        assert secret.encode() not in wal.read_bytes()
    assert all(secret not in str(p) for p in tmp_path.rglob("*"))
    click_urls = rows(tmp_path / "crawl.db", "SELECT click_url FROM products")
    assert all("pid" not in url for (url,) in click_urls)


# `scrapy crawl`, counting every log record made in the process (levels by name) and printing the counts last
COUNTING_RECORDS = """
import collections, logging, sys
from scrapy.cmdline import execute
made = collections.Counter()
make = logging.getLogRecordFactory()
def counting(*args, **kwargs):
    record = make(*args, **kwargs)
    made[record.levelname] += 1
    return record
logging.setLogRecordFactory(counting)
try:
    execute(["scrapy", *sys.argv[1:]])
finally:
    print("records made:", dict(made), file=sys.stderr)
"""


def test_a_crawl_at_info_makes_no_debug_records(synthetic_sandbox, tmp_path):
    """Scrapy sets its own logger to DEBUG and filters in its handler: each request and item made a DEBUG record
    (and the key redaction looked at each) that nobody emitted, 3% of a large crawl's CPU. At INFO a crawl of 100
    products now makes only the two DEBUG records of the process's start-up, made before the crawl command runs."""
    command = crawl_command(synthetic_sandbox.url, tmp_path / "crawl.db", tmp_path / "images",
                            {"categories": "boots,pumps"}, {"LOG_LEVEL": "INFO"})
    assert command[1:3] == ["-m", "scrapy"]
    result = subprocess.run([command[0], "-c", COUNTING_RECORDS, *command[3:]], cwd=PROJECT_ROOT,
                            env=crawl_env(KEY), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert rows(tmp_path / "crawl.db", "SELECT count(*) FROM products") == [(100,)]
    made = ast.literal_eval(result.stderr.rsplit("records made: ", 1)[1])
    assert made["INFO"] > 5  # the crawl's own lines were made
    assert made.get("DEBUG", 0) <= 2, made


def test_no_key_refuses_to_start(synthetic_sandbox, tmp_path):
    result = run_crawl(synthetic_sandbox.url, tmp_path / "crawl.db", tmp_path / "images", api_key=None, timeout=120)
    assert "no API key: pass -a api_key=KEY or set SHOPSTYLE_API_KEY" in result.stderr
    assert "Crawled (" not in result.stderr  # not one request was sent
    assert "crawl finished (missing_api_key)" in result.stderr
    assert result.returncode == 1  # a script can tell a refused crawl from one that ran


def test_a_wrong_key_stops_the_crawl_at_once_with_the_apis_error(synthetic_sandbox, tmp_path):
    result = run_crawl(synthetic_sandbox.url, tmp_path / "crawl.db", tmp_path / "images", api_key="wrong",
                       timeout=120)
    assert "the API rejected the key: 403 InvalidPartnerId" in result.stderr
    assert "crawl finished (api_key_rejected)" in result.stderr
    assert "Retrying" not in result.stderr
    assert result.returncode == 1


def test_the_default_budget_never_draws_a_429(tmp_path):
    """The sandbox paces like the real API (750/min) but allows almost no burst: only a paced client gets no 429.

    A burst of 5 rather than 2: on a loaded machine two paced requests can reach the sandbox closer together than
    they were sent (one waited in the sandbox's queue); an unpaced client still meets a 429 within its first page."""
    with SandboxProcess("--products-per-category", "60", "--rate-burst", "5") as sandbox:
        result = run_crawl(sandbox.url, tmp_path / "crawl.db", tmp_path / "images", api_key=KEY,
                           spider_args={"categories": "boots,pumps,sandals", "max_per_category": 60},
                           settings={"SHOPSTYLE_PAGE_SIZE": 10}, timeout=300)
    assert result.returncode == 0
    assert "0 answered 429" in result.stderr
    assert rows(tmp_path / "crawl.db", "SELECT count(*) FROM products") == [(180,)]


def test_photos_keep_their_concurrency_and_reuse_connections(tmp_path):
    """The sandbox counts what reached it: never more at once than the API and photo slots allow (Scrapy's own
    downloader started every queued photo at once), and no connection opened beyond those (Scrapy's keep-alive pool
    of 8 per host made most photos open a new one)."""
    sandbox_log = tmp_path / "sandbox.log"
    with sandbox_log.open("w") as log, SandboxProcess("--products-per-category", "40", "--rate-limit", "0",
                                                      "--latency", "0.02", stderr=log) as sandbox:
        result = run_crawl(sandbox.url, tmp_path / "crawl.db", tmp_path / "images", api_key=KEY,
                           spider_args={"categories": "boots,pumps,sandals,sneakers,flats"},
                           settings={"SHOPSTYLE_REQUESTS_PER_MINUTE": 60_000, "SHOPSTYLE_API_CONCURRENCY": 2,
                                     "SHOPSTYLE_IMAGE_CONCURRENCY": 6}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    served = re.search(r"served (\d+) requests on (\d+) connections, at most (\d+) at once", sandbox_log.read_text())
    requests, connections, at_once = map(int, served.groups())
    api_requests = int(re.search(r"requests: \d+ \((\d+) to the API", result.stderr).group(1))
    photos_offered = rows(tmp_path / "crawl.db", "SELECT count(*) FROM products WHERE image_status != 'none'")[0][0]
    assert requests == api_requests + photos_offered > 100  # a photo request per product offering one
    assert 2 < at_once <= 2 + 6
    assert connections <= 2 + 6


def test_a_429_is_honoured_and_the_crawl_completes(tmp_path):
    """A client over budget is told to wait; it waits, retries and still stores everything."""
    with SandboxProcess("--products-per-category", "20", "--rate-limit", "60", "--rate-burst", "3") as sandbox:
        result = run_crawl(sandbox.url, tmp_path / "crawl.db", tmp_path / "images", api_key=KEY,
                           spider_args={"categories": "boots,pumps"},
                           settings={"SHOPSTYLE_REQUESTS_PER_MINUTE": 6000, "SHOPSTYLE_PAGE_SIZE": 10}, timeout=300)
    assert result.returncode == 0
    assert "'shopstyle/backoff/429'" in result.stderr
    assert rows(tmp_path / "crawl.db", "SELECT count(*) FROM products") == [(40,)]
    assert "2 leaves completed" in result.stderr


def test_categories_argument_and_unknown_leaves(synthetic_sandbox, tmp_path):
    result = run_crawl(synthetic_sandbox.url, tmp_path / "crawl.db", tmp_path / "images", api_key=KEY,
                       spider_args={"categories": "boots,no-such-leaf", "max_per_category": 7}, timeout=120)
    assert result.returncode == 0
    assert "['no-such-leaf'] not leaves under 'women'" in result.stderr
    assert rows(tmp_path / "crawl.db", "SELECT category_id, count(*) FROM products GROUP BY 1") == [("boots", 7)]


def test_fashion_catalog_big_leaf_in_slices_and_missing_photos(fashion_sandbox, fashion_dir, tmp_path):
    """tshirts holds 6,017 products, over the API's 5,000 cap: read in colour slices (the fashion catalog has no
    price, brand or retailer), it is reached whole."""
    db = tmp_path / "crawl.db"
    result = run_crawl(fashion_sandbox.url, db, tmp_path / "images", api_key=KEY,
                       spider_args={"root": "clothes-shoes-and-jewelry", "categories": "tshirts,watches",
                                    "max_per_category": 100000},
                       settings={"SHOPSTYLE_REQUESTS_PER_MINUTE": 60000}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (fashion_dir / "styles.csv").read_text(encoding="utf-8").splitlines()[1:]
    expected = {int(f[0]): f[4] for f in (line.split(",", 9) for line in lines) if f[4] in ("Tshirts", "Watches")}
    stored = dict(rows(db, "SELECT id, category_id FROM products"))
    assert set(stored) == set(expected)
    assert rows(db, "SELECT category_id, total, reached, unreachable FROM leaves ORDER BY 1") == [
        ("tshirts", 6017, 6017, 0), ("watches", len([c for c in expected.values() if c == "Watches"]),
                                     len([c for c in expected.values() if c == "Watches"]), 0)]
    with_photo = {pid for pid in expected if (fashion_dir / "images" / f"{pid}.jpg").exists()}
    statuses = dict(rows(db, "SELECT id, image_status FROM products"))
    assert {pid for pid, status in statuses.items() if status == "ok"} == with_photo
    assert {status for pid, status in statuses.items() if pid not in with_photo} == {"missing"}
    assert f"images this run: missing {len(expected) - len(with_photo)}, ok {len(with_photo)}" in result.stderr
    assert "'shopstyle/slices/split': 1" in result.stderr  # tshirts only; watches is under the cap
    sample = min(with_photo)
    assert (tmp_path / "images" / "full" / f"{sample}.jpg").read_bytes() == (
        fashion_dir / "images" / f"{sample}.jpg").read_bytes()
    leaves = {r[0] for r in rows(db, "SELECT id FROM categories WHERE is_leaf = 1")}
    assert len(leaves) == 142 and {"tshirts", "casual-shoes", "watches"} <= leaves
    assert rows(db, "SELECT parent_id, path FROM categories WHERE id = 'watches'") == [
        ("accessories-watches", "clothes-shoes-and-jewelry/accessories/accessories-watches/watches")]


def kill_9_once(command: list[str], db, table: str, rows_wanted: int) -> None:
    """Run a crawl command and ``kill -9`` it once ``table`` (a table, or a table and a WHERE clause) holds
    ``rows_wanted`` rows; fails when the crawl ended on its own first (it was not killed mid-way)."""
    crawl = subprocess.Popen(command, cwd=PROJECT_ROOT, env=crawl_env(KEY), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and crawl.poll() is None:
        if stored(db, table) >= rows_wanted:
            break
        time.sleep(0.02)
    crawl.send_signal(signal.SIGKILL)
    assert crawl.wait() == -signal.SIGKILL  # killed mid-crawl, not after it ended on its own


def test_kill_9_and_resume_ends_as_an_uninterrupted_crawl(synthetic_sandbox, synthetic_crawl, tmp_path):
    db, images = tmp_path / "crawl.db", tmp_path / "images"
    kill_9_once(crawl_command(synthetic_sandbox.url, db, images), db, "leaves", 3)
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    complete = rows(db, "SELECT count(*) FROM leaves")[0][0]
    assert 3 <= complete < 27  # some leaves were done, others not
    resumed = run_crawl(synthetic_sandbox.url, db, images, api_key=KEY, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{27 - complete} leaves completed, {complete} skipped as already complete" in resumed.stderr
    assert snapshot(db, images) == snapshot(*synthetic_crawl[:2])


def test_jobdir_pauses_mid_leaf_and_resumes_where_it_stopped(synthetic_sandbox, synthetic_crawl, tmp_path):
    """Ctrl-C with -s JOBDIR keeps the pending pages and the leaves' progress; the resumed crawl reads only what
    was left and ends equal to an uninterrupted crawl. Small pages and a slow budget make every leaf span pages."""
    db, images, jobdir = tmp_path / "crawl.db", tmp_path / "images", tmp_path / "job"
    settings = {"JOBDIR": jobdir, "SHOPSTYLE_PAGE_SIZE": 10, "SHOPSTYLE_REQUESTS_PER_MINUTE": 1200}
    env = {k: v for k, v in os.environ.items() if k != "SHOPSTYLE_API_KEY"} | {"SHOPSTYLE_API_KEY": KEY}
    crawl = subprocess.Popen(crawl_command(synthetic_sandbox.url, db, images, settings=settings), cwd=PROJECT_ROOT,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and crawl.poll() is None:
        if stored(db, "products") >= 5 * 10:
            break
        time.sleep(0.05)
    assert crawl.poll() is None, "the crawl ended before it could be paused"
    crawl.send_signal(signal.SIGINT)  # Scrapy's graceful stop: finish what is in flight, save the queue and state
    _, paused_log = crawl.communicate(timeout=120)
    assert crawl.returncode == 0, paused_log[-3000:]
    assert "crawl finished (shutdown)" in paused_log
    paused_products = rows(db, "SELECT count(*) FROM products")[0][0]
    assert 0 < paused_products < 27 * PER_LEAF and rows(db, "SELECT count(*) FROM leaves")[0][0] < 27
    assert (jobdir / "spider.state").is_file()
    saved = [path for path in jobdir.rglob("*") if path.is_file()]
    assert any("requests.queue" in path.parts for path in saved)  # pending requests were saved...
    assert not [path for path in saved if KEY.encode() in path.read_bytes()]  # ...without the key

    resumed = run_crawl(synthetic_sandbox.url, db, images, api_key=KEY, settings=settings, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming crawl" in resumed.stderr and "leaves in progress from JOBDIR" in resumed.stderr
    assert "category tree of" not in resumed.stderr  # the tree request was done before the pause: not read again
    assert snapshot(db, images) == snapshot(*synthetic_crawl[:2])
    assert rows(db, "SELECT count(*) FROM leaves")[0][0] == 27
