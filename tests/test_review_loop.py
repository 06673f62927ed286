"""The whole review loop for products from a file, on the review tests' crawl, model and queue: filed in the app
(decisions through the real app), learned by ``train --labels reviewed``, exported and restored into a fresh copy
of the crawl; and the JSON API's queue (identity, photo, open cards left out, ``POST /api/queue``)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

from modeling import identity, reviews, store, train
from modeling.data import file_product_id, load_products, with_reviewed_labels
from modeling.review import cards

from .review_fixtures import copy_db
from .test_audit import reviews_cli
from .test_review import app_client  # noqa: F401 (a fixture; db and model are conftest.py's)


def _file_card(client, record_id: str) -> dict:
    listed = client.get("/api/queue", params={"limit": 1000}).json()["cards"]
    return next(c for c in listed if c["record_id"] == record_id)


def test_products_filed_from_a_file_train_the_next_model_and_survive_a_restore(
        review_setup, app_client, db, tmp_path, capsys):  # noqa: F811 (the imported fixtures)
    source = review_setup.new_products.name
    plain, hostile = _file_card(app_client, "new-plain"), _file_card(app_client, "new-hostile")
    assert (plain["product_id"], plain["record_source"]) == (None, source)
    for card, leaf in ((plain, "cardigan-sweaters"), (hostile, "button-front-tops")):
        answer = app_client.post("/api/reviews", json={"queue": "file", "item": card["item"], "decision": leaf,
                                                       "reviewer": "ana", "seen": card["seen"]})
        assert answer.status_code == 200, answer.text
    filed = {identity.filed(source, "new-plain"): "cardigan-sweaters",
             identity.filed(source, "new-hostile"): "button-front-tops"}

    frame = with_reviewed_labels(load_products(db, review_setup.images, progress=False), db, review_setup.images)
    learned = frame.set_index("id").loc[[file_product_id(s) for s in filed]]
    assert learned["category"].tolist() == list(filed.values()) and learned["reviewed"].all()
    assert learned["crawled_category"].isna().all() and learned["path"].str.endswith("/cardigan-sweaters").any()

    out = tmp_path / "models"
    assert train.main(["--db", str(db), "--images", str(review_setup.images), "--image-backbone", "none", "--out",
                       str(out), "--min-products", "5", "--no-progress", "--labels", "reviewed"]) == 0
    printed = capsys.readouterr().out
    assert "2 of them from files" in printed
    parameters = json.loads(next(out.glob("*.json")).read_text())["parameters"]
    in_training = sum(split == "train" for split in learned["split"])
    assert parameters["file_products"] == 2 and parameters["file_products_train"] == in_training

    backup = tmp_path / "backup.csv"
    assert reviews_cli("export", backup, "--db", db).returncode == 0
    fresh = copy_db(review_setup.db, tmp_path / "fresh.db")
    with closing(sqlite3.connect(fresh)) as connection, connection:
        connection.execute("DELETE FROM filing_queue")  # a fresh copy of the crawl: no queue, no reviews
    result = reviews_cli("import", backup, "--db", fresh)
    assert result.returncode == 0, result.stderr
    with closing(store.connect(db)) as original, closing(store.connect(fresh)) as restored:
        assert {s: v.decision for s, v in reviews.in_force(restored).items()} == filed == {
            s: v.decision for s, v in reviews.in_force(original).items()}
        payload, = restored.execute(store.filing_queue.select().where(
            store.filing_queue.c.subject == identity.filed(source, "new-plain"))).all()
        assert json.loads(payload.payload)["name"] == "Chunky cable-knit cardigan"


def test_the_api_queue_names_each_product_leaves_out_open_cards_and_queues_new_ones(
        review_setup, app_client, db):  # noqa: F811 (the imported fixtures)
    listed = app_client.get("/api/queue", params={"limit": 1000}).json()["cards"]
    crawled = next(c for c in listed if c["record_id"].startswith("crawled-"))
    assert crawled["photo_url"] == f"/photos/queue/{crawled['item'].removeprefix('queue:')}"
    assert app_client.get(crawled["photo_url"]).headers["content-type"] == "image/jpeg"
    opened = app_client.get("/queue/file")  # ana opens the first card: a lease
    first = listed[0]["item"]
    assert f'data-item="{first}"' in opened.text
    assert first not in [c["item"] for c in app_client.get("/api/queue", params={"reviewer": "bob"}).json()["cards"]]
    assert first in [c["item"] for c in app_client.get("/api/queue", params={"reviewer": "ana"}).json()["cards"]]

    with closing(sqlite3.connect(db)) as connection:
        product_id, = connection.execute("SELECT id FROM products ORDER BY id LIMIT 1").fetchone()
    answer = app_client.post("/api/queue", params={"source": "feed"},
                             json=[{"id": str(product_id), "name": "Linen shirt"}, {"id": "b"}])
    assert answer.status_code == 200, answer.text
    added, refused = answer.json()
    assert refused["error"].startswith("no name") and added["item"].startswith("queue:")
    again = app_client.post("/api/queue", params={"source": "feed"}, json=[{"id": str(product_id), "name": "x"}])
    assert again.json()[0]["item"] == added["item"]  # queued once
    card = _file_card(app_client, str(product_id))
    assert (card["product_id"], card["record_source"]) == (None, "feed")  # not crawled product {product_id}
    with closing(store.connect(db)) as connection:
        found, = cards.cards(connection, "file", cards.Catalogue.load(connection), added["item"])
        assert found.subject == identity.filed("feed", str(product_id)) and found.name == "Linen shirt"
