"""The sandbox serving the shared real catalogs: the fashion mapping of its README, and the ShopStyle sample."""

from __future__ import annotations

import io

from PIL import Image

from shopstyle_spider.sandbox import SandboxProcess, slug

from .apiclient import KEY, api, get, get_json


def _styles(fashion_dir) -> dict[int, dict[str, str]]:
    """styles.csv read independently of the sandbox's loader: the name is everything after the 9th comma."""
    rows = {}
    with (fashion_dir / "styles.csv").open(encoding="utf-8") as f:
        header = f.readline().strip().split(",")
        for line in f:
            fields = line.rstrip("\n").split(",", 9)
            rows[int(fields[0])] = dict(zip(header, fields, strict=True))
    return rows


def test_fashion_tree_follows_the_readme_mapping(fashion_sandbox, fashion_dir):
    categories = {c["id"]: c for c in api(fashion_sandbox, "categories")["categories"]}
    parents = {c["parentId"] for c in categories.values()}
    leaves = {c for c in categories if c not in parents}
    styles = _styles(fashion_dir)
    assert leaves == {slug(row["articleType"]) for row in styles.values()}
    assert len(leaves) == 142
    assert categories["watches"]["parentId"] == "accessories-watches"
    assert categories["accessories-watches"]["parentId"] == "accessories"
    assert categories["accessories"]["parentId"] == "clothes-shoes-and-jewelry"
    assert categories["tshirts"]["parentId"] == "apparel-topwear"
    assert api(fashion_sandbox, "products", limit=0)["metadata"]["total"] == len(styles) == 37822


def test_fashion_names_with_commas_and_descriptions(fashion_sandbox, fashion_dir):
    raw_lines = (fashion_dir / "styles.csv").read_text(encoding="utf-8").splitlines()[1:]
    comma_lines = [line for line in raw_lines if line.count(",") > 9]
    # the README's "22" counts the commas inside names: they sit on 20 lines (two lines hold two each)
    assert len(comma_lines) == 20 and sum(line.count(",") - 9 for line in comma_lines) == 22
    for line in comma_lines:
        fields = line.split(",", 9)
        product = api(fashion_sandbox, f"products/{fields[0]}")
        assert product["name"] == product["brandedName"] == fields[9]
        assert "," in product["name"]
        assert product["categories"][0]["id"] == slug(fields[4])
    styles = _styles(fashion_dir)
    product = api(fashion_sandbox, "products/15970")
    assert product["description"] == "Colour: Navy Blue. Season: Fall. Usage: Casual. Gender: Men. Year: 2011."
    no_season = next(pid for pid, row in styles.items() if not row["season"] and row["usage"])
    description = api(fashion_sandbox, f"products/{no_season}")["description"]
    assert "Season" not in description and "Usage:" in description
    # a catalog without these fields leaves them out instead of inventing them
    assert not {"price", "brand", "retailer", "clickUrl", "inStock"} & set(product)


def test_fashion_photos_and_missing_photos(fashion_sandbox, fashion_dir):
    with_photo = 15970 if (fashion_dir / "images" / "15970.jpg").exists() else int(
        next((fashion_dir / "images").glob("*.jpg")).stem)
    product = api(fashion_sandbox, f"products/{with_photo}")
    original = product["image"]["sizes"]["Original"]
    status, headers, data = get(original["url"])
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert data == (fashion_dir / "images" / f"{with_photo}.jpg").read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (original["width"], original["height"])
    without_photo = next(pid for pid in _styles(fashion_dir) if not (fashion_dir / "images" / f"{pid}.jpg").exists())
    sizes = api(fashion_sandbox, f"products/{without_photo}")["image"]["sizes"]
    assert "width" not in sizes["Original"]
    assert get(sizes["Original"]["url"])[0] == 404


def test_the_five_thousand_result_cap(fashion_sandbox):
    page = api(fashion_sandbox, "products", cat="tshirts", offset=4950, limit=50)
    assert page["metadata"]["total"] == 6017 and len(page["products"]) == 50
    assert len(api(fashion_sandbox, "products", cat="tshirts", offset=4990, limit=50)["products"]) == 10
    past = api(fashion_sandbox, "products", cat="tshirts", offset=5000, limit=50)
    assert past["products"] == [] and past["metadata"]["total"] == 6017


def test_a_big_leaf_read_in_colour_slices_reaches_every_product(fashion_sandbox, fashion_dir):
    """Both ends of tshirts (6,017) do not reach all of it (Recency is date-added order, not the reverse); its
    colour histogram cuts it into slices under the cap that together hold every product once."""
    def ids(**params) -> set[int]:
        found = set()
        for offset in range(0, 5000, 50):
            page = api(fashion_sandbox, "products", cat="tshirts", offset=offset, limit=50, **params)["products"]
            if not page:
                break
            found |= {p["id"] for p in page}
        return found

    expected = {pid for pid, row in _styles(fashion_dir).items() if row["articleType"] == "Tshirts"}
    assert ids() | ids(sort="Recency") < expected
    histogram = api(fashion_sandbox, "products/histogram", cat="tshirts", filters="Color")["colorHistogram"]
    assert sum(e["count"] for e in histogram) == len(expected) and max(e["count"] for e in histogram) < 5000
    assert set().union(*(ids(fl=f"c{e['id']}") for e in histogram)) == expected


def test_jsonl_catalog_serves_the_shopstyle_sample(sample_dir):
    with SandboxProcess("--catalog", f"jsonl:{sample_dir / 'products.jsonl'}") as sandbox:
        assert api(sandbox, "products", limit=0)["metadata"]["total"] == 846
        assert api(sandbox, "products", cat="women", limit=0)["metadata"]["total"] == 846
        categories = {c["id"]: c for c in api(sandbox, "categories", cat="women")["categories"]}
        assert categories["bootcut-jeans"]["parentId"] == "jeans"
        assert categories["womens-clothes"]["parentId"] == "women"
        product = api(sandbox, "products/5407064")
        assert product["name"] == "Borghese Perfetta Lip Pencil"
        assert product["categories"][0]["id"] == "lip-pencils"
        assert "Acqua di Vita®" in product["description"]
        assert get(product["image"]["sizes"]["Original"]["url"])[0] == 404
        code, body = get_json(f"{sandbox.url}/products", {"pid": KEY, "sort": "PriceLoHi"})
        assert code == 400 and "no prices" in body["errorMessage"]
