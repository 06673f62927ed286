"""Injected faults: each kind as the sandbox serves it, and a crawl through all of them that loses nothing."""

from __future__ import annotations

import http.client
import io
import json
import re
import subprocess
import sys
import time
import urllib.error
from contextlib import closing

import pytest
from PIL import Image

from shopstyle_spider.runner import run_crawl
from shopstyle_spider.sandbox import SandboxProcess, load_catalog

from .apiclient import KEY, get
from .test_crawl import snapshot

CATALOG = ("--catalog", "synthetic", "--seed", "7", "--products-per-category", "50", "--rate-limit", "0")


@pytest.mark.parametrize("kind", ["500", "429", "badjson", "reset", "slow"])
def test_each_api_fault_as_served(kind):
    with SandboxProcess(*CATALOG, "--faults", f"{kind}=1", "--slow-seconds", "1.5") as sandbox:
        url, params = f"{sandbox.url}/products", {"pid": KEY, "cat": "bootcut-jeans", "limit": 5}
        started = time.monotonic()
        if kind == "reset":
            with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
                get(url, params)
            return
        status, headers, body = get(url, params)
        if kind == "500":
            assert status == 500 and json.loads(body)["errorName"] == "InternalError"
        elif kind == "429":
            assert status == 429 and headers["Retry-After"] == "1"
        elif kind == "badjson":
            assert status == 200
            with pytest.raises(json.JSONDecodeError):
                json.loads(body)
        else:
            assert status == 200 and len(json.loads(body)["products"]) == 5
            assert time.monotonic() - started >= 1.5


def test_a_truncated_photo_is_cut_off_mid_transfer():
    with SandboxProcess(*CATALOG) as clean:
        product = json.loads(get(f"{clean.url}/products", {"pid": KEY, "limit": 1})[2])["products"][0]
        status, _, whole = get(product["image"]["sizes"]["Original"]["url"])
        assert status == 200
        Image.open(io.BytesIO(whole)).load()
        path = product["image"]["sizes"]["Original"]["url"].split("/images/")[1]
    with SandboxProcess(*CATALOG, "--faults", "truncated-image=1") as sandbox:
        with pytest.raises(http.client.IncompleteRead) as caught:
            get(f"{sandbox.root_url}/images/{path}")
        assert len(caught.value.partial) == len(whole) // 2


def test_a_bad_fault_spec_is_refused_naming_the_part():
    for spec, message in (("teapot=0.1", "unknown kind 'teapot'"), ("500", "'500' is not kind=rate"),
                          ("500=lots", "not a number"), ("all=1.5", "not between 0 and 1")):
        result = subprocess.run([sys.executable, "-m", "shopstyle_spider.sandbox", "--faults", spec],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and message in result.stderr


def test_a_crawl_under_transient_faults_ends_equal_to_a_fault_free_one(synthetic_sandbox, synthetic_crawl, tmp_path):
    """Every transient kind at 10% (slow at 2%, each costing a timeout): retries make the result exact.

    Pages of 10 products make about 200 API requests: with the catalog's 28 pages of 50, a crawl served no
    malformed page about one time in twenty (badjson is drawn last, at about 7% a request), and the check that
    every kind was retried failed by chance."""
    faults = "500=0.1,429=0.1,reset=0.1,badjson=0.1,truncated-image=0.1,slow=0.02"
    with SandboxProcess(*CATALOG, "--faults", faults, "--fault-seed", "3", "--slow-seconds", "5") as sandbox:
        db, images = tmp_path / "crawl.db", tmp_path / "images"
        result = run_crawl(sandbox.url, db, images, api_key=KEY, timeout=900,
                           settings={"DOWNLOAD_TIMEOUT": 2, "RETRY_TIMES": 8, "SHOPSTYLE_BACKOFF_BASE": 0.1,
                                     "SHOPSTYLE_PAGE_SIZE": 10})
    assert result.returncode == 0, result.stderr[-3000:]
    clean_db, clean_images, _ = synthetic_crawl
    assert snapshot(db, images, sandbox.url) == snapshot(clean_db, clean_images, synthetic_sandbox.url)
    log = result.stderr
    for reason in ("malformed_json", "500 Internal Server Error", "429 Unknown Status"):
        assert f"retry/reason_count/{reason}" in log or reason in log, reason
    assert "'shopstyle/malformed_pages'" not in log  # every malformed page was read again, none given up


def test_a_page_still_malformed_after_retries_is_logged_and_counted_and_the_crawl_goes_on(tmp_path):
    """Half of the API's answers malformed and no retries: pages are given up one by one, the crawl finishes.
    (Fault seed 0 lets the first request, the category tree, through.)"""
    with SandboxProcess(*CATALOG, "--faults", "badjson=0.5", "--fault-seed", "0") as sandbox:
        result = run_crawl(sandbox.url, tmp_path / "crawl.db", tmp_path / "images", api_key=KEY, timeout=300,
                           settings={"RETRY_TIMES": 0})
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stderr
    assert "crawl finished (finished)" in log and "malformed JSON from" in log
    malformed = int(log.split("malformed pages ")[1].split(",")[0])
    incomplete = int(log.split(" skipped as already complete, ")[1].split(" incomplete")[0])
    assert malformed > 0 and incomplete == malformed  # one page a leaf: each malformed page leaves its leaf open
    assert f"'shopstyle/malformed_pages': {malformed}" in log


def struck(kind: str, rate: float, seed: int, ids) -> set[int]:
    """The products a data fault sticks to, as the sandbox decides it."""
    from shopstyle_spider.sandbox.faults import Faults

    faults = Faults({kind: rate}, seed)
    return {i for i in ids if faults.sticks(kind, i)}


@pytest.fixture(scope="module")
def data_fault_crawl(tmp_path_factory):
    """One crawl of the synthetic catalog with every data fault at 5%, and what the sandbox spoiled."""
    from shopstyle_spider.sandbox import load_catalog

    folder = tmp_path_factory.mktemp("data-faults")
    spec = "not-image=0.05,bomb=0.05,duplicate=0.05,missing-field=0.05,huge-text=0.05,bad-chars=0.05"
    with SandboxProcess(*CATALOG, "--faults", spec, "--fault-seed", "11") as sandbox:
        result = run_crawl(sandbox.url, folder / "crawl.db", folder / "images", api_key=KEY, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ids = [p.id for p in load_catalog("synthetic", seed=7, products_per_category=50).products()]
    spoiled = {kind: struck(kind, 0.05, 11, ids) for kind in spec.replace("=0.05", "").split(",")}
    return folder / "crawl.db", folder / "images", result.stderr, spoiled, ids


def test_data_faults_are_dropped_cleaned_or_rejected_by_kind(data_fault_crawl):
    db, images, log, spoiled, ids = data_fault_crawl
    import sqlite3

    connection = sqlite3.connect(db)
    stored = {row[0]: row[1:] for row in connection.execute(
        "SELECT id, name, description, image_status, image_error FROM products")}
    connection.close()
    assert set(stored) == set(ids) - spoiled["missing-field"]  # dropped with a reason, everything else kept once
    assert f"'shopstyle/dropped/missing_name': {len(spoiled['missing-field'])}" in log
    from shopstyle_spider.sandbox import load_catalog

    offered = {p.id for p in load_catalog("synthetic", seed=7, products_per_category=50).products() if p.has_image}
    for product in (spoiled["not-image"] | spoiled["bomb"]) & offered:  # a product offering no photo fetches none
        if product in stored:
            status, error = stored[product][2:]
            assert status == "invalid", (product, status, error)
    bomb = next(p for p in (spoiled["bomb"] - spoiled["not-image"] - spoiled["missing-field"]) & offered)
    assert "decompression bomb" in stored[bomb][3]
    assert not any((images / "full" / f"{p}.jpg").exists() for p in spoiled["not-image"] | spoiled["bomb"])
    for product in spoiled["bad-chars"] - spoiled["missing-field"]:
        name, description = stored[product][:2]
        assert name.endswith("[31m\ufffd end") and "\x00" not in name and "\x07" not in name
    for product in spoiled["huge-text"] - spoiled["missing-field"]:
        assert len(stored[product][1]) == 20_000
    assert f"description_truncated {len(spoiled['huge-text'])}" in log  # counted before a missing name drops one
    assert "duplicate listings skipped" in log and "'shopstyle/duplicates'" in log
    assert "crawl finished (finished)" in log and "Traceback" not in log


def test_killed_three_times_under_faults_and_resumed_it_ends_as_a_fault_free_crawl(synthetic_sandbox, synthetic_crawl,
                                                                                  tmp_path):
    """kill -9 at three moments (after a seeded random share of the products is stored), restart each time; the
    last run goes to the end. Transient faults strike throughout; the integrity check holds after every kill."""
    import os
    import random
    import signal
    import sqlite3

    from shopstyle_spider.config import PROJECT_ROOT
    from shopstyle_spider.runner import crawl_command

    from .test_crawl import stored

    db, images = tmp_path / "crawl.db", tmp_path / "images"
    settings = {"RETRY_TIMES": 8, "SHOPSTYLE_BACKOFF_BASE": 0.1}
    env = {k: v for k, v in os.environ.items() if k != "SHOPSTYLE_API_KEY"} | {"SHOPSTYLE_API_KEY": KEY}
    moments = sorted(random.Random(5).sample(range(100, 1000), 3))  # of 1,350: each kill lands mid-crawl
    faults = "500=0.05,429=0.05,reset=0.05,badjson=0.05,truncated-image=0.05"
    with SandboxProcess(*CATALOG, "--faults", faults, "--fault-seed", "8") as sandbox:
        for moment in moments:
            crawl = subprocess.Popen(crawl_command(sandbox.url, db, images, settings=settings), cwd=PROJECT_ROOT,
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and crawl.poll() is None and stored(db, "products") < moment:
                time.sleep(0.02)
            crawl.send_signal(signal.SIGKILL)
            assert crawl.wait() == -signal.SIGKILL  # killed mid-crawl, not after it ended on its own
            with sqlite3.connect(db) as connection:
                assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
                assert connection.execute("SELECT count(*) FROM leaves").fetchone()[0] < 27
        result = run_crawl(sandbox.url, db, images, api_key=KEY, settings=settings, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stderr.split(" products written")[0].rsplit(" ", 1)[1]) > 0  # the last run had work left
    clean_db, clean_images, _ = synthetic_crawl
    assert snapshot(db, images, sandbox.url) == snapshot(clean_db, clean_images, synthetic_sandbox.url)


def test_an_unwritable_image_store_stops_the_crawl_clearly_and_loses_nothing(synthetic_sandbox, synthetic_crawl,
                                                                            tmp_path):
    import sqlite3

    db, images = tmp_path / "crawl.db", tmp_path / "images"
    images.mkdir()
    (images / "full").write_text("a file where the photos' folder should be")
    stopped = run_crawl(synthetic_sandbox.url, db, images, api_key=KEY, timeout=300)
    assert stopped.returncode == 1
    assert "cannot write photos to IMAGES_STORE" in stopped.stderr and "stopping the crawl" in stopped.stderr
    assert "crawl finished (image_store_unwritable)" in stopped.stderr
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("SELECT count(*) FROM leaves").fetchone()[0] == 0  # no photo, no complete leaf
    (images / "full").unlink()
    resumed = run_crawl(synthetic_sandbox.url, db, images, api_key=KEY, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert snapshot(db, images) == snapshot(*synthetic_crawl[:2])


def test_a_full_disk_stops_the_crawl_clearly_with_a_consistent_database(synthetic_sandbox, synthetic_crawl,
                                                                        tmp_path):
    """RLIMIT_FSIZE stands in for a full disk (mounting a small filesystem needs privileges): past 150 kB a file
    cannot grow, and the database's write-ahead log soon needs to."""
    import os
    import resource
    import signal
    import sqlite3

    from shopstyle_spider.config import PROJECT_ROOT
    from shopstyle_spider.runner import crawl_command

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))

    db, images = tmp_path / "crawl.db", tmp_path / "images"
    env = {k: v for k, v in os.environ.items() if k != "SHOPSTYLE_API_KEY"} | {"SHOPSTYLE_API_KEY": KEY}
    full = subprocess.run(crawl_command(synthetic_sandbox.url, db, images), cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=small_disk)
    assert full.returncode == 1, full.stderr[-3000:]
    assert f"cannot write the crawl database {db}" in full.stderr and "crawl finished (database_unwritable)" in \
        full.stderr
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        leaves = dict(connection.execute("SELECT category_id, reached FROM leaves"))
        per_leaf = dict(connection.execute("SELECT category_id, count(*) FROM products GROUP BY 1"))
    assert len(leaves) < 27 and all(per_leaf[leaf] == reached for leaf, reached in leaves.items())
    resumed = run_crawl(synthetic_sandbox.url, db, images, api_key=KEY, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert snapshot(db, images) == snapshot(*synthetic_crawl[:2])


@pytest.mark.parametrize("kind", ["not-image", "bomb", "duplicate", "missing-field", "huge-text", "bad-chars"])
def test_each_data_fault_as_served(kind):
    """Every product struck (rate 1), so the first product of a leaf shows the kind."""
    with SandboxProcess(*CATALOG, "--faults", f"{kind}=1") as sandbox:
        status, _, raw = get(f"{sandbox.url}/products", {"pid": KEY, "cat": "boots", "limit": 50})
        assert status == 200
        products = json.loads(raw)["products"]
        first = products[0]
        if kind in ("not-image", "bomb"):
            status, headers, photo = get(first["image"]["sizes"]["Original"]["url"])
            assert status == 200
            with pytest.raises((OSError, Image.DecompressionBombError)):  # refused from the header alone
                Image.open(io.BytesIO(photo))
            assert headers["Content-Type"] == ("image/jpeg" if kind == "not-image" else "image/png")
            assert len(photo) < 1000
        elif kind == "duplicate":
            ids = [p["id"] for p in products]
            total = json.loads(raw)["metadata"]["total"]
            assert total == 50 + 50 + 50  # its own 50 again, and the next leaf's 50 (every product struck)
            assert len(ids) == 50 and len(set(ids)) == 50  # the repeats come on later pages
        elif kind == "missing-field":
            assert "name" not in first and first["id"] and first["categories"]
        elif kind == "huge-text":
            assert len(first["description"]) == 1_000_000
        else:
            assert first["name"].endswith("\x00\x07\x1b[31m\ud800 end")
            assert "\\ud800" in raw.decode("ascii")  # served as a valid JSON escape


def test_retries_stay_within_the_request_budget(tmp_path):
    """The sandbox paces like the real API (750/min, a burst of 2) and fails a fifth of the answers. What the crawler
    promises, whatever the machine's load: every 429 is honoured (its wait kept, the request retried), nothing is
    lost, and over the run the API got no more than its budget. (Whether a 429 is drawn at all is timing: a paced
    request can reach a busy sandbox right behind the one before it, so the count of 429s is not asserted.)"""
    with SandboxProcess("--products-per-category", "60", "--rate-burst", "2", "--faults", "500=0.2,badjson=0.2",
                        "--fault-seed", "2") as sandbox:
        result = run_crawl(sandbox.url, tmp_path / "crawl.db", tmp_path / "images", api_key=KEY,
                           spider_args={"categories": "boots,pumps,sandals", "max_per_category": 60},
                           settings={"SHOPSTYLE_PAGE_SIZE": 10, "RETRY_TIMES": 10}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stderr
    assert "'retry/reason_count/malformed_json'" in log
    assert "'retry/reason_count/500 Internal Server Error'" in log
    answered_429 = int(log.split(" answered 429")[0].rsplit("retries, ", 1)[1])
    backed_off = re.search(r"'shopstyle/backoff/429': (\d+)", log)
    assert answered_429 == (int(backed_off.group(1)) if backed_off else 0)  # each 429 made the API wait
    assert "Gave up retrying" not in log and "'shopstyle/malformed_pages'" not in log
    import sqlite3

    with sqlite3.connect(tmp_path / "crawl.db") as connection:
        assert connection.execute("SELECT count(*) FROM products").fetchone() == (180,)
        assert connection.execute("SELECT count(*) FROM leaves").fetchone() == (3,)
    sent, seconds = re.search(r"\((\d+) to the API in ([\d.]+)s", log).groups()
    # the budget, kept over the run: one request every 60/750 s at most, from the first sent to the last (the
    # summary rounds to 10 ms); retries are in the count
    malformed_retries = int(re.search(r"'retry/reason_count/malformed_json': (\d+)", log).group(1))
    assert int(sent) >= 1 + 18 + malformed_retries  # the tree, 18 pages, and at least the retries of bad JSON
    assert (int(sent) - 1) * 60 / 750 <= float(seconds) + 0.01


def test_a_row_the_database_refuses_is_dropped_alone_and_its_leaf_completes(synthetic_sandbox, tmp_path):
    """A constraint of the database (a trigger here, standing in for any constraint or PostgreSQL DataError) refuses
    two products: they are dropped and counted by reason, the other 98 of the batch are stored, both leaves complete."""
    import sqlite3

    from shopstyle_spider import schema
    from shopstyle_spider.sandbox import load_catalog

    from .test_crawl import rows

    db = tmp_path / "crawl.db"
    schema.connect(db).close()
    catalog = load_catalog("synthetic", seed=7, products_per_category=50)
    refused = [catalog.query("boots")[3].id, catalog.query("pumps")[17].id]
    with sqlite3.connect(db) as connection:
        connection.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON products WHEN NEW.id IN ({refused[0]}, "
                           f"{refused[1]}) BEGIN SELECT RAISE(ABORT, 'refused by a constraint'); END")
    result = run_crawl(synthetic_sandbox.url, db, tmp_path / "images", api_key=KEY,
                       spider_args={"categories": "boots,pumps"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    stored = {row[0] for row in rows(db, "SELECT id FROM products")}
    assert stored == {p.id for leaf in ("boots", "pumps") for p in catalog.query(leaf)} - set(refused)
    assert rows(db, "SELECT category_id, total, reached FROM leaves ORDER BY 1") == [("boots", 50, 50),
                                                                                       ("pumps", 50, 50)]
    assert "'shopstyle/dropped/store_IntegrityError': 2" in result.stderr
    assert f"the database refused product {refused[0]} from leaf 'boots'" in result.stderr
    assert "98 products written" in result.stderr and "Traceback" not in result.stderr


def test_a_crawl_through_bodies_of_the_wrong_shape_counts_every_fault_and_crashes_no_callback(tmp_path):
    """--faults schema: answers with a mistyped key (retried), products in wrong shapes, a tree with entries that
    are not categories, an orphan and a cycle. Nothing crashes; each wrong shape ends as it should: a product that
    is not an object leaves its leaf incomplete, one without a usable id or category is dropped by reason, mistyped
    fields are emptied, URLs with lone surrogates are cleaned (a click URL still loses the key) and such a photo is
    not fetched."""
    import sqlite3

    from shopstyle_spider.sandbox import load_catalog
    from shopstyle_spider.sandbox.faults import Faults

    per_leaf, seed, rate = 20, 5, 0.15
    with SandboxProcess("--products-per-category", str(per_leaf), "--rate-limit", "0", "--seed", "7",
                        "--faults", f"schema={rate}", "--fault-seed", str(seed)) as sandbox:
        db = tmp_path / "crawl.db"
        result = run_crawl(sandbox.url, db, tmp_path / "images", api_key=KEY, timeout=300,
                           settings={"SHOPSTYLE_PAGE_SIZE": 10, "RETRY_TIMES": 10})
    log = result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "Traceback" not in log and "Spider error" not in log
    catalog = load_catalog("synthetic", seed=7, products_per_category=per_leaf)
    faults = Faults({"schema": rate}, seed)
    variant = {p.id: faults.schema_variant(p.id) for p in catalog.products()}
    by_variant = {v: {i for i, w in variant.items() if w == v} for v in set(variant.values())}
    assert all(by_variant.get(v) for v in ("not-an-object", "id-as-text", "id-past-64-bits",
                                           "categories-not-a-list", "mistyped-fields", "surrogate-urls"))
    with sqlite3.connect(db) as connection:
        stored = {row[0]: row[1:] for row in connection.execute(
            "SELECT id, brand, price, in_stock, currency, description, click_url, image_status, image_error "
            "FROM products")}
        complete = {row[0] for row in connection.execute("SELECT category_id FROM leaves")}
        categories = {row[0] for row in connection.execute("SELECT id FROM categories")}
    lost = by_variant["not-an-object"] | by_variant["id-as-text"] | by_variant["id-past-64-bits"] | \
        by_variant["categories-not-a-list"]
    assert set(stored) == set(variant) - lost
    spoiled_leaves = {catalog.product(i).category_id for i in by_variant["not-an-object"]}
    assert complete == {leaf.id for leaf in catalog.leaves()} - spoiled_leaves
    assert f"{len(spoiled_leaves)} incomplete" in log
    assert f"'shopstyle/faults/product_not_an_object': {len(by_variant['not-an-object'])}" in log
    assert f"'shopstyle/dropped/bad_id': {len(by_variant['id-as-text']) + len(by_variant['id-past-64-bits'])}" in log
    assert f"'shopstyle/dropped/missing_category_id': {len(by_variant['categories-not-a-list'])}" in log
    for product in by_variant["mistyped-fields"]:
        assert stored[product][:5] == (None, None, None, None, None)
    for product in by_variant["surrogate-urls"] - lost:
        brand, price, in_stock, currency, description, click_url, status, error = stored[product]
        assert "\ufffd" in click_url and "pid" not in click_url
        if catalog.product(product).has_image:  # the catalog's gaps: some offer no photo URL to spoil
            assert status == "invalid" and "cannot be requested" in error
        else:
            assert status == "none"
    assert not {"schema-orphan", "schema-cycle-a", "schema-cycle-b"} & categories
    for fault, count in (("bad_category", 2), ("orphan_category", 1), ("cyclic_category", 2)):
        assert f"'shopstyle/faults/{fault}': {count}" in log
    assert "'retry/reason_count/unexpected_schema'" in log  # answers with a mistyped key were read again
    assert "answers of the wrong shape: bad_category 2, cyclic_category 2, orphan_category 1, " in log


def test_a_category_tree_that_cannot_be_read_exits_1():
    """Every answer of the wrong shape, one retry: the tree is never read, the crawl says so and exits 1."""
    import tempfile
    from pathlib import Path

    with SandboxProcess("--products-per-category", "2", "--rate-limit", "0", "--faults", "schema=1") as sandbox, \
            tempfile.TemporaryDirectory() as folder:
        result = run_crawl(sandbox.url, Path(folder) / "crawl.db", Path(folder) / "images", api_key=KEY,
                           settings={"RETRY_TIMES": 1}, timeout=120)
    assert result.returncode == 1
    assert "an answer of another shape from" in result.stderr and "no categories list" in result.stderr
    assert "crawl finished (category_tree_unavailable)" in result.stderr and "Traceback" not in result.stderr


def test_a_photo_over_modelings_pixel_limit_is_refused_from_its_header():
    """The crawler refuses what modeling would (40 MP), not only what Pillow does (179 MP): 7,000 x 6,000 pixels
    (42 MP, well under Pillow's limit) is refused from the header of a real PNG, 6,000 x 6,000 (36 MP) passes, and
    the settings' limit is modeling's."""
    from scrapy.pipelines.media import FileException
    from scrapy.settings import Settings

    from modeling.image import MAX_PIXELS
    from shopstyle_spider import settings as crawl_settings
    from shopstyle_spider.pipelines import check_photo_header
    from shopstyle_spider.sandbox.faults import decompression_bomb

    project_settings = Settings()
    project_settings.setmodule(crawl_settings)
    limit = project_settings.getint("SHOPSTYLE_MAX_IMAGE_PIXELS")
    assert limit == MAX_PIXELS
    big = io.BytesIO()
    Image.new("L", (7000, 6000)).save(big, "PNG")
    with pytest.raises(FileException, match="7000x6000 pixels is over the 40,000,000 allowed"):
        check_photo_header(big.getvalue(), limit)
    check_photo_header(decompression_bomb(6000), limit)
    with pytest.raises(FileException, match="decompression bomb"):
        check_photo_header(decompression_bomb(40_000), limit)
    with pytest.raises(FileException, match="cannot identify image"):
        check_photo_header(b"<html>not a photo</html>", limit)


def test_the_schema_fault_as_served():
    """schema=1: every answer has a key of the wrong type, every product one of the wrong shapes (which one is the
    sandbox's seeded choice), and the tree its entries that are not categories, orphan and cycle."""
    from shopstyle_spider.sandbox.faults import SCHEMA_TREE, SCHEMA_VARIANTS, Faults

    with SandboxProcess(*CATALOG, "--faults", "schema=1", "--fault-seed", "3") as sandbox:
        status, _, raw = get(f"{sandbox.url}/categories", {"pid": KEY})
        tree = json.loads(raw)
        assert status == 200 and isinstance(tree["categories"], dict)
        assert list(tree["categories"].values())[-len(SCHEMA_TREE):] == list(SCHEMA_TREE)
        status, _, raw = get(f"{sandbox.url}/products", {"pid": KEY, "cat": "boots", "limit": 50})
        page = json.loads(raw)
    assert status == 200 and page["metadata"]["total"] == "50"
    faults = Faults({"schema": 1.0}, 3)
    ids = [p.id for p in load_catalog("synthetic", seed=7, products_per_category=50).query("boots")]
    seen = set()
    for product_id, served in zip(ids, page["products"], strict=True):
        variant = faults.schema_variant(product_id)
        seen.add(variant)
        if variant == "not-an-object":
            assert isinstance(served, str)
        elif variant == "id-as-text":
            assert served["id"] == str(product_id)
        elif variant == "id-past-64-bits":
            assert served["id"] == 2**63 + product_id
        elif variant == "categories-not-a-list":
            assert isinstance(served["categories"], str)
        elif variant == "mistyped-fields":
            assert served["price"] == "12.50" and served["brand"] == "Acme" and served["image"] == ["not", "an",
                                                                                                     "object"]
        else:
            assert "\ud800" in served["clickUrl"] and "\ud800" in served["image"]["sizes"]["Original"]["url"]
    assert seen == set(SCHEMA_VARIANTS)


def test_validation_leaves_every_stored_field_storable(tmp_path):
    """A product with a lone surrogate in every text field, a price past a float's range, a mistyped stock flag and
    the largest id the table holds is cleaned into a row sqlite stores as it is; an id one past is dropped."""
    from datetime import UTC, datetime

    from scrapy.exceptions import DropItem
    from scrapy.utils.test import get_crawler

    from shopstyle_spider import schema
    from shopstyle_spider.items import ProductItem
    from shopstyle_spider.pipelines import ValidationPipeline

    crawler = get_crawler()
    pipeline = ValidationPipeline(crawler.stats, 20_000)
    bad = "x\ud800\x00y"
    item = pipeline.process_item(ProductItem(
        id=2**63 - 1, name=bad, category_id=bad, crawl_leaf="boots", description=bad, brand=bad, retailer=bad,
        price=10**400, currency=bad, in_stock="yes", click_url=f"https://shop.example/{bad}", image_url=bad,
        image_urls=[bad]))
    assert item.name == item.brand == item.currency == "x\ufffdy" and item.price is None and item.in_stock is None
    assert item.image_urls == [] and item.image_status == "invalid" and "cannot be requested" in item.image_error
    row = {column: getattr(item, column) for column in schema.PRODUCT_COLUMNS}
    with closing(schema.connect(tmp_path / "crawl.db")) as connection, connection.begin():
        connection.execute(schema.upsert_sql("products", schema.PRODUCT_COLUMNS),
                           [{**row, "now": datetime.now(UTC).isoformat()}])
    assert crawler.stats.get_value("shopstyle/cleaned/bad_price") == 1
    with pytest.raises(DropItem, match="not a positive 64-bit integer"):
        pipeline.process_item(ProductItem(id=2**63, name="n", category_id="c", crawl_leaf="boots"))


def test_a_jpeg_checked_at_an_eighth_of_its_size_gives_what_scrapys_whole_decode_gave_and_a_cut_one_still_fails(
        fashion_dir, tmp_path):
    """``ProductImagesPipeline.get_images`` decodes an RGB JPEG in JPEG's draft mode: against Scrapy's own
    ``ImagesPipeline.get_images`` (which decoded it whole), the same path, the same bytes to store and the same size
    (turned by its EXIF orientation, as Scrapy turns it), a photo cut short (served whole, its last bytes missing)
    refused as Scrapy refused it, and a PNG still converted by Scrapy."""
    import scrapy
    from scrapy.http import Response
    from scrapy.pipelines.images import ImagesPipeline
    from scrapy.utils.test import get_crawler

    from shopstyle_spider.items import ProductItem
    from shopstyle_spider.pipelines import ProductImagesPipeline

    crawler = get_crawler(scrapy.Spider, {"IMAGES_STORE": str(tmp_path)})
    pipeline = ProductImagesPipeline.from_crawler(crawler)
    item = ProductItem(id=42, name="a photo", category_id="tshirts", crawl_leaf="tshirts")
    turned = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turned 90 degrees
    Image.new("RGB", (40, 24), "red").save(turned, "JPEG", exif=exif)
    png = io.BytesIO()
    Image.new("RGBA", (16, 16)).save(png, "PNG")
    photo = (fashion_dir / "images" / "10000.jpg").read_bytes()

    def images(get_images, body: bytes) -> list[tuple[str, tuple[int, int], bytes]]:
        request = scrapy.Request("http://cdn.invalid/42.jpg")
        response = Response(request.url, body=body, request=request)
        return [(path, image.size, buf.getvalue()) for path, image, buf in get_images(
            pipeline, response, request, None, item=item)]

    for body in (photo, turned.getvalue(), png.getvalue()):
        assert images(ProductImagesPipeline.get_images, body) == images(ImagesPipeline.get_images, body)
    assert images(ProductImagesPipeline.get_images, turned.getvalue())[0][1] == (24, 40)
    assert images(ProductImagesPipeline.get_images, photo)[0][2] == photo
    for cut in (len(photo) // 2, len(photo) - 10):
        with pytest.raises(OSError, match="image file is truncated"):
            images(ImagesPipeline.get_images, photo[:cut])
        with pytest.raises(OSError, match="image file is truncated"):
            images(ProductImagesPipeline.get_images, photo[:cut])
