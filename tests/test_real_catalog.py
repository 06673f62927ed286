"""The whole path on real data, as a new user runs it: a crawl of a few leaves of the shared fashion catalog through
the sandbox (three products in four have no photo there), training with the shared MobileNetV2, ``modeling.predict``
over the crawl database and over the same products as JSONL, and ``modeling.analyze`` on the experiment."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from modeling import analyze, predict, train
from modeling.data import split_of
from shopstyle_spider import config
from shopstyle_spider.runner import run_crawl

from .apiclient import KEY

# flats and heels are the pair the catalog itself confuses; watches are far from both. 3,728 products, 865 photos.
LEAVES = ("flats", "heels", "watches")


@pytest.fixture(scope="module")
def fashion_crawl(fashion_sandbox, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fashion")
    db, images = folder / "crawl.db", folder / "images"
    result = run_crawl(fashion_sandbox.url, db, images, api_key=KEY,
                       spider_args={"root": "clothes-shoes-and-jewelry", "categories": ",".join(LEAVES),
                                    "max_per_category": 100_000},
                       settings={"SHOPSTYLE_REQUESTS_PER_MINUTE": 60_000, "LOG_LEVEL": "WARNING"}, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    with sqlite3.connect(db) as connection:
        products = pd.read_sql_query("SELECT id, name, description, category_id, image_path, image_status "
                                     "FROM products ORDER BY id", connection)
    return db, images, products


@pytest.fixture(scope="module")
def fashion_model(fashion_crawl, tmp_path_factory):
    """Text and the shared MobileNetV2, stacked (kept even where it does not beat text, so photos are used)."""
    db, images, _ = fashion_crawl
    backbone = config.mobilenet_v2_backbone()
    if not backbone.is_file():
        pytest.fail(f"the shared MobileNetV2 is missing at {backbone} (set SHARED_DIR)")
    out = tmp_path_factory.mktemp("fashion-models")
    assert train.main(["--db", str(db), "--images", str(images), "--image-backbone", str(backbone), "--out", str(out),
                       "--cache-dir", str(tmp_path_factory.getbasetemp() / "embeddings"), "--keep", "stacked",
                       "--no-progress"]) == 0
    return next(out.glob("*.joblib"))


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_most_crawled_products_have_no_photo_and_every_one_is_kept(fashion_crawl):
    _, _, products = fashion_crawl
    assert set(products["category_id"]) == set(LEAVES) and len(products) == 3728
    with_photo = products["image_status"] == "ok"
    assert with_photo.sum() == 865 and products.loc[~with_photo, "image_path"].isna().all()


def test_every_crawled_product_is_predicted_from_the_database_and_from_jsonl_alike(fashion_crawl, fashion_model,
                                                                                   tmp_path, capsys):
    db, images, products = fashion_crawl
    from_db = tmp_path / "db.jsonl"
    assert predict.main(["--model", str(fashion_model), "--db", str(db), "--images", str(images),
                         "--output", str(from_db), "--no-progress"]) == 0
    assert f"{len(products)} products predicted, 0 records with errors" in capsys.readouterr().err
    lines = _lines(from_db)
    assert [line["id"] for line in lines] == products["id"].tolist()
    assert not [line for line in lines if "error" in line]
    has_photo = dict(zip(products["id"], products["image_status"] == "ok", strict=True))
    assert all(line["photo_used"] == has_photo[line["id"]] for line in lines)
    truth = dict(zip(products["id"], products["category_id"], strict=True))
    assert sum(line["category"] == truth[line["id"]] for line in lines) > 0.9 * len(lines)

    # The same products as a file a shop would send: photo paths relative to --images, absent where there is none.
    source = tmp_path / "products.jsonl"
    with source.open("w", encoding="utf-8") as f:
        for row in products.itertuples(index=False):
            record = {"id": row.id, "name": row.name, "description": row.description}
            if row.image_status == "ok":
                record["image_path"] = row.image_path
            f.write(json.dumps(record) + "\n")
    from_file = tmp_path / "file.jsonl"
    assert predict.main(["--model", str(fashion_model), "--input", str(source), "--images", str(images),
                         "--output", str(from_file), "--no-progress"]) == 0
    for expected, got in zip(lines, _lines(from_file), strict=True):
        assert (got["id"], got["category"], got["photo_used"]) == (expected["id"], expected["category"],
                                                                   expected["photo_used"])
        assert got["score"] == pytest.approx(expected["score"], abs=1e-6)


def test_the_experiment_is_analysed(fashion_crawl, fashion_model, capsys):
    db, images, products = fashion_crawl
    experiment = int(fashion_model.stem)
    capsys.readouterr()
    assert analyze.main(["--db", str(db), "--images", str(images), "--experiment", str(experiment), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    figures = next(e for e in report["experiments"] if e["id"] == experiment)["figures"]
    test_products = products[products["id"].map(split_of) == "test"]
    assert figures["stacked"]["n"] == figures["text"]["n"] == len(test_products)
    assert figures["image"]["n"] == (test_products["image_status"] == "ok").sum()
    assert figures["text"]["accuracy"] > 0.9
    assert {row["category"] for row in report["experiment"]["categories"]} == set(LEAVES)
