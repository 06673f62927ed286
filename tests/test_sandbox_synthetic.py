"""The sandbox serving its synthetic catalog: API shape, paging, sorting, errors and images over real HTTP."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys

import pytest
from PIL import Image

from shopstyle_spider.sandbox import SandboxProcess, load_catalog
from shopstyle_spider.sandbox.catalog import ROOT_ID, date_added

from .apiclient import KEY, api, get, get_json


def test_category_tree_is_a_womens_tree_under_the_root(synthetic_sandbox):
    body = api(synthetic_sandbox, "categories")
    assert body["metadata"]["root"]["id"] == ROOT_ID
    categories = {c["id"]: c for c in body["categories"]}
    assert categories["women"]["parentId"] == ROOT_ID
    parents = {c["parentId"] for c in categories.values()}
    leaves = [c for c in categories if c not in parents]
    assert 20 <= len(leaves) <= 30
    assert {"bootcut-jeans", "flare-jeans"} <= set(leaves)
    for category in categories.values():
        assert set(category) == {"id", "name", "shortName", "localizedId", "parentId"}
        assert category["parentId"] in categories or category["parentId"] == ROOT_ID


def test_depth_and_cat_select_part_of_the_tree(synthetic_sandbox):
    body = api(synthetic_sandbox, "categories", cat="women", depth=1)
    assert body["metadata"]["root"]["id"] == "women"
    assert {c["parentId"] for c in body["categories"]} == {"women"}
    assert {c["id"] for c in body["categories"]} == {"womens-clothes", "womens-shoes", "handbags"}


def test_product_json_has_the_real_api_fields(synthetic_sandbox):
    body = api(synthetic_sandbox, "products", cat="bootcut-jeans", limit=3)
    assert set(body["metadata"]) >= {"offset", "limit", "total"}
    product = body["products"][0]
    assert set(product) - {"colors"} == {"id", "name", "brandedName", "unbrandedName", "description", "categories",
                                         "brand", "retailer", "price", "priceLabel", "currency", "inStock",
                                         "clickUrl", "image"}
    assert product["categories"][0]["id"] == "bootcut-jeans"
    assert product["priceLabel"].startswith("$")
    sizes = product["image"]["sizes"]
    assert list(sizes) == ["Small", "Medium", "Large", "XLarge", "Original"]
    assert sizes["Original"]["width"] == 240 and sizes["Original"]["height"] == 300
    assert sizes["Small"]["width"] <= 32 and sizes["Small"]["height"] <= 40


def test_paging_a_leaf_of_exactly_fifty_products(synthetic_sandbox):
    first = api(synthetic_sandbox, "products", cat="flare-jeans", offset=0, limit=50)
    assert first["metadata"]["total"] == 50 and len(first["products"]) == 50
    after = api(synthetic_sandbox, "products", cat="flare-jeans", offset=50, limit=50)
    assert after["metadata"]["total"] == 50 and after["products"] == []
    ids = [p["id"] for p in first["products"]]
    assert len(set(ids)) == 50


def test_limit_is_capped_at_fifty_and_defaults_like_the_api(synthetic_sandbox):
    body = api(synthetic_sandbox, "products", cat="women", limit=500)
    assert body["metadata"]["limit"] == 50 and len(body["products"]) == 50
    assert len(api(synthetic_sandbox, "products", cat="women")["products"]) == 10


def test_a_category_serves_its_descendants(synthetic_sandbox):
    tree = api(synthetic_sandbox, "categories", cat="jeans")["categories"]
    leaf_totals = sum(api(synthetic_sandbox, "products", cat=c["id"], limit=0)["metadata"]["total"] for c in tree)
    assert api(synthetic_sandbox, "products", cat="jeans", limit=0)["metadata"]["total"] == leaf_totals == 200
    everything = api(synthetic_sandbox, "products", limit=0)["metadata"]["total"]
    assert everything == api(synthetic_sandbox, "products", cat="women", limit=0)["metadata"]["total"]


def _all_ids(sandbox, **params) -> list[int]:
    ids, offset = [], 0
    while True:
        page = api(sandbox, "products", offset=offset, limit=50, **params)["products"]
        if not page:
            return ids
        ids += [p["id"] for p in page]
        offset += 50


def test_sorts(synthetic_sandbox):
    default = _all_ids(synthetic_sandbox, cat="jeans")
    assert default == sorted(default)
    recency = _all_ids(synthetic_sandbox, cat="jeans", sort="Recency")
    assert sorted(recency) == default and recency != default[::-1]  # date-added order, not the default reversed
    catalog = load_catalog("synthetic", seed=7, products_per_category=50)
    assert recency == [p.id for p in sorted(catalog.query("jeans"), key=date_added, reverse=True)]
    assert _all_ids(synthetic_sandbox, cat="jeans", sort="Popular") == default
    products = []
    offset = 0
    while page := api(synthetic_sandbox, "products", cat="jeans", sort="PriceLoHi", offset=offset,
                      limit=50)["products"]:
        products += page
        offset += 50
    prices = [p["price"] for p in products]
    assert prices == sorted(prices)
    assert _all_ids(synthetic_sandbox, cat="jeans", sort="PriceHiLo") == [p["id"] for p in products][::-1]


def test_unused_parameters_that_clients_send_are_accepted(synthetic_sandbox):
    body = api(synthetic_sandbox, "products/", cat="pumps", fts="", fl="", pdd="", floor=0, userId="", limit=5)
    assert len(body["products"]) == 5
    assert api(synthetic_sandbox, "categories/", depth=1)["categories"]


def test_full_text_search_narrows_the_results(synthetic_sandbox):
    body = api(synthetic_sandbox, "products", fts="jeans", limit=50)
    assert 0 < body["metadata"]["total"] < api(synthetic_sandbox, "products", limit=0)["metadata"]["total"]
    assert all("jeans" in (p["name"] + p.get("description", "")).lower() for p in body["products"])


@pytest.mark.parametrize(("params", "status", "name"), [
    ({"cat": "no-such-category"}, 400, "InvalidCategory"),
    ({"sort": "Cheapest"}, 400, "InvalidSort"),
    ({"offset": "-1"}, 400, "InvalidParameter"),
    ({"limit": "ten"}, 400, "InvalidParameter"),
    ({"fl": "brand123"}, 400, "InvalidParameter"),
])
def test_bad_parameters_get_the_api_error_body(synthetic_sandbox, params, status, name):
    code, body = get_json(f"{synthetic_sandbox.url}/products", {"pid": KEY, **params})
    assert code == status
    assert body["errorCode"] == status and body["errorName"] == name and body["errorMessage"]


def test_missing_and_wrong_keys(synthetic_sandbox):
    code, body = get_json(f"{synthetic_sandbox.url}/categories")
    assert (code, body["errorCode"], body["errorName"]) == (401, 401, "MissingPartnerId")
    code, body = get_json(f"{synthetic_sandbox.url}/products", {"pid": "stolen-key"})
    assert (code, body["errorCode"], body["errorName"]) == (403, 403, "InvalidPartnerId")


def test_one_product_by_id(synthetic_sandbox):
    listed = api(synthetic_sandbox, "products", cat="boots", limit=1)["products"][0]
    assert api(synthetic_sandbox, f"products/{listed['id']}") == listed
    assert api(synthetic_sandbox, f"products/{listed['id']}/") == listed
    for unknown in ("1", "not-a-number"):
        code, body = get_json(f"{synthetic_sandbox.url}/products/{unknown}", {"pid": KEY})
        assert (code, body["errorName"]) == (404, "InvalidProductId")


def test_images_decode_and_scale(synthetic_sandbox):
    product = api(synthetic_sandbox, "products", cat="tote-bags", limit=1)["products"][0]
    for size_name, size in product["image"]["sizes"].items():
        status, headers, data = get(size["url"])
        assert status == 200 and headers["Content-Type"] == "image/jpeg", size_name
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            assert image.size == (size["width"], size["height"]), size_name


def test_a_missing_photo_is_404(synthetic_sandbox):
    status, _, _ = get(f"{synthetic_sandbox.root_url}/images/1/Original.jpg")
    assert status == 404
    status, _, _ = get(f"{synthetic_sandbox.root_url}/images/whatever")
    assert status == 404


def test_the_synthetic_catalog_is_deterministic_for_a_seed():
    first, again, other = (load_catalog("synthetic", seed=s, products_per_category=5) for s in (3, 3, 4))
    assert list(first.products()) == list(again.products())
    assert list(first.products()) != list(other.products())
    product_id = first.products()[0].id
    assert first.images.original(product_id) == again.images.original(product_id)


def test_siblings_share_vocabulary_so_text_is_imperfect():
    catalog = load_catalog("synthetic", seed=0, products_per_category=200)
    bootcut = [p for p in catalog.products() if p.category_id == "bootcut-jeans"]
    says_own = sum("bootcut" in p.name.lower() or "boot-cut" in p.name.lower() for p in bootcut)
    assert 0.6 * len(bootcut) < says_own < len(bootcut)


def test_rate_limit_answers_429_with_retry_after():
    product_id = load_catalog("synthetic", seed=0, products_per_category=2).products()[0].id
    with SandboxProcess("--products-per-category", "2", "--rate-limit", "60", "--rate-burst", "3") as sandbox:
        codes = [get_json(f"{sandbox.url}/categories", {"pid": KEY})[0] for _ in range(3)]
        assert codes == [200, 200, 200]
        status, headers, body = get(f"{sandbox.url}/products", {"pid": KEY})
        assert status == 429
        assert 1 <= int(headers["Retry-After"]) <= 2
        assert json.loads(body)["errorName"] == "RateLimitExceeded"
        # images come from a CDN in the real world: never limited
        assert get(f"{sandbox.root_url}/images/{product_id}/Original.jpg")[0] == 200


def test_empty_leaves_and_clean_shutdown():
    sandbox = SandboxProcess("--products-per-category", "0").start()
    body = api(sandbox, "products", cat="pumps", limit=50)
    assert body["metadata"]["total"] == 0 and body["products"] == []
    assert sandbox.stop() == 0  # SIGTERM
    sandbox = SandboxProcess("--products-per-category", "0").start()
    sandbox.process.send_signal(signal.SIGINT)
    assert sandbox.process.wait(timeout=15) == 0
    assert sandbox.process.stdout.read() == ""  # exactly one line on stdout
    sandbox.stop()


def test_bad_catalog_spec_fails_with_a_clear_message():
    result = subprocess.run([sys.executable, "-m", "shopstyle_spider.sandbox", "--catalog", "fashion:/no/such/dir"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "/no/such/dir/styles.csv not found" in result.stderr


def test_a_photo_does_not_depend_on_which_photos_were_drawn_before():
    from shopstyle_spider.sandbox.synthetic import _draw

    catalog = load_catalog("synthetic", seed=3, products_per_category=3)
    ids = sorted(p.id for p in catalog.products())
    forwards = [catalog.images.original(i) for i in ids]
    _draw.cache_clear()
    backwards = [catalog.images.original(i) for i in reversed(ids)][::-1]
    assert forwards == backwards


def test_histogram_counts_and_fl_filters_as_the_api_documents_them(synthetic_sandbox):
    """/products/histogram counts a query's products by brand, retailer, price range and colour; fl narrows a query
    by those ids (values of one kind ORed, kinds ANDed); a malformed fl or filters is a 400."""
    histogram = api(synthetic_sandbox, "products/histogram", cat="jeans", filters="Price,Brand,Retailer,Color")
    total = histogram["metadata"]["total"]
    assert total == 200
    colours = histogram["colorHistogram"]
    coloured = set().union(*(_all_ids(synthetic_sandbox, cat="jeans", fl=f"c{e['id']}") for e in colours))
    # a product of two colours counts under both, and either fl value lists it; some products have no colour
    assert len(coloured) < total < sum(e["count"] for e in colours)
    assert len(_all_ids(synthetic_sandbox, cat="jeans", fl=[f"c{e['id']}" for e in colours])) == len(coloured)
    several = next(p for p in api(synthetic_sandbox, "products", cat="jeans", limit=50)["products"]
                   if len(p.get("colors", [])) > 1)
    ids = {e["name"]: e["id"] for e in colours}
    for colour in several["colors"]:
        assert several["id"] in _all_ids(synthetic_sandbox, cat="jeans", fl=f"c{ids[colour['name']]}")
    for key, prefix in (("priceHistogram", "p"), ("brandHistogram", "b"), ("retailerHistogram", "r")):
        entries = histogram[key]
        assert sum(e["count"] for e in entries) == total  # every product has a price, a brand and a retailer
        for entry in entries[:3]:
            listed = _all_ids(synthetic_sandbox, cat="jeans", fl=f"{prefix}{entry['id']}")
            assert len(listed) == entry["count"]
    brand = histogram["brandHistogram"][0]
    product = api(synthetic_sandbox, "products", cat="jeans", fl=f"b{brand['id']}", limit=1)["products"][0]
    assert product["brand"] == {"id": brand["id"], "name": brand["name"]}
    price, other, retailer = *histogram["priceHistogram"][1:3], histogram["retailerHistogram"][0]
    both = api(synthetic_sandbox, "products", cat="jeans", fl=[f"p{price['id']}", f"r{retailer['id']}"],
               limit=0)["metadata"]["total"]
    either = api(synthetic_sandbox, "products", cat="jeans", fl=[f"p{price['id']}", f"p{other['id']}"],
                 limit=0)["metadata"]["total"]
    assert 0 < both < min(price["count"], retailer["count"])
    assert either == price["count"] + other["count"]
    narrowed = api(synthetic_sandbox, "products/histogram", cat="jeans", filters="Brand", fl=f"p{price['id']}")
    assert sum(e["count"] for e in narrowed["brandHistogram"]) == narrowed["metadata"]["total"] == price["count"]
    for params in ({"fl": "x1"}, {"fl": "b"}, {"filters": "Size"}):
        endpoint = "products/histogram" if "filters" in params else "products"
        code, body = get_json(f"{synthetic_sandbox.url}/{endpoint}", {"pid": KEY, "cat": "jeans", **params})
        assert code == 400 and body["errorName"] == "InvalidParameter"


def test_the_result_cap_can_be_made_small():
    with SandboxProcess("--products-per-category", "50", "--rate-limit", "0", "--result-cap", "20") as sandbox:
        page = api(sandbox, "products", cat="boots", offset=0, limit=50)
        assert page["metadata"]["total"] == 50 and len(page["products"]) == 20
        assert api(sandbox, "products", cat="boots", offset=20, limit=50)["products"] == []
