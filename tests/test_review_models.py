"""The review app and the model in service (``modeling.review.serving``): it names the model it serves, follows a
promotion made mid-session without a restart (the open card's decision still lands, the next card is scored by the
new model), stays on a model pinned by ``--model``, and shows the served model's drift.

Two real text-only fits of the review fixtures' crawl: the session's model 1 (in service), and a model 2 trained
here so differently (a heavy penalty) that its scores differ, and not promoted by training. The apps run through
FastAPI's TestClient, looking for a promotion at every request (``check_every_s=0``) so no test waits.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading

import pytest
from fastapi.testclient import TestClient

from modeling import models, predict, registry, train
from modeling.filing import DEFAULT_TARGET, load_thresholds
from modeling.persistence import load_model
from modeling.review import create_app, serving

from .review_fixtures import copy_db

TEXT_ONLY = ["--image-backbone", "none", "--min-products", "5", "--no-progress", "--cv", "0.2"]
OTHER = ["--text-classifier", "logistic", "--text-C", "0.01"]  # a heavy penalty: other scores than model 1's
TOKEN = "s3cret-review-token"
LATER = "2099-01-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def two_models(review_setup, tmp_path_factory):
    """(database, model 1 in service, model 2 registered but not promoted)."""
    folder = tmp_path_factory.mktemp("served")
    db = copy_db(review_setup.db, folder / "crawl.db")
    assert train.main(["--db", str(db), "--images", str(review_setup.images), "--out", str(folder / "models"),
                       "--promote", "never", *TEXT_ONLY, *OTHER]) == 0
    second = folder / "models" / "2.joblib"
    assert [(e.experiment_id, e.in_service) for e in registry.entries(db)] == [(1, True), (2, False)]
    return db, review_setup.model, second


def browser(app, token: str | None = None) -> TestClient:
    """A browser of ``app`` signed in as ana (with the app's ``token``, if it has one)."""
    client = TestClient(app, base_url="http://localhost", follow_redirects=False)
    client.__enter__()
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    signed = client.post("/login", data={"name": "ana", "csrf": csrf, **({"token": token} if token else {})})
    assert signed.status_code == 303
    return client


def card_of(html: str) -> dict:
    fields = dict(re.findall(r'<input type="hidden" name="(item|seen|csrf)" value="([^"]*)"', html))
    fields["choices"] = re.findall(r'name="choice" value="([^"]+)"', html)
    return fields


def queued(db, queue_id: int) -> tuple[dict, dict, str]:
    with sqlite3.connect(db) as connection:
        payload, prediction, model_path = connection.execute(
            "SELECT payload, prediction, model_path FROM filing_queue WHERE id = ?", (queue_id,)).fetchone()
    return json.loads(payload), json.loads(prediction), model_path


def test_a_promotion_mid_session_is_served_and_the_open_card_still_decided(review_setup, two_models, tmp_path):
    source, first, second = two_models
    db = copy_db(source, tmp_path / "crawl.db")
    client = browser(create_app(db, first, review_setup.images, follow=True, check_every_s=0))
    try:
        served = client.get("/api/model").json()
        assert served["experiment_id"] == 1 and served["path"] == str(first) and not served["pinned"]
        assert served["promoted_at"] and served["promoted_by"]
        page = client.get("/queue/file")
        card = card_of(page.text)
        assert card["item"] == "queue:1" and "Suggestions scored by model 1 (1.joblib)" in page.text
        assert "serving model 1 (1.joblib), promoted" in page.text
        _, before, _ = queued(db, 2)

        assert models.main(["--db", str(db), "promote", "2", "--by", "bo"]) == 0  # as another process would

        decided = client.post("/queue/file/decide", data={**card, "choice": card["choices"][0]})
        assert decided.status_code == 303  # the card shown before the switch: nothing about it changed
        with sqlite3.connect(db) as connection:
            assert connection.execute("SELECT queue_id, decision, reviewer FROM reviews").fetchall() == [
                (1, card["choices"][0], "ana")]
        following = client.get(decided.headers["location"])
        assert card_of(following.text)["item"] == "queue:2"
        assert "Suggestions scored by model 2 (2.joblib)" in following.text and "promoted" in following.text
        payload, after, model_path = queued(db, 2)
        assert model_path == str(second)
        row, _ = predict.check_record({"id": before["id"], **payload}, None)
        expected = next(predict.prediction_lines(load_model(second), [row]))
        assert after["category"] == expected["category"] and after["score"] == pytest.approx(expected["score"])
        assert after["score"] != pytest.approx(before["score"])  # model 1 scored it otherwise
        assert str(round(100 * after["score"], 1)) + "%" in following.text

        served = client.get("/api/model").json()
        assert served["experiment_id"] == 2 and served["promoted_by"] == "bo" and served["path"] == str(second)
        assert served["thresholds"] == load_thresholds(second, DEFAULT_TARGET)
        product = {"id": "p", "name": "Chunky knit cardigan", "description": "wool"}
        lines = client.post("/api/predict", json=[product]).json()
        assert lines == list(predict.prediction_lines(load_model(second), [predict.check_record(product, None)[0]],
                                                      load_thresholds(second, DEFAULT_TARGET)))
        listed = client.get("/api/queue", params={"limit": 3}).json()["cards"]
        assert listed and all(c["scored_by"] == str(second) for c in listed)
        assert "This app serves model 2 (2.joblib): experiment 2 below." in client.get("/report").text
        assert "/api/model" in client.get("/api/openapi.json").json()["paths"]
    finally:
        client.__exit__(None, None, None)


def test_a_model_given_by_model_is_pinned(review_setup, two_models, tmp_path):
    source, first, _ = two_models
    db = copy_db(source, tmp_path / "crawl.db")
    client = browser(create_app(db, first, review_setup.images, follow=False, check_every_s=0, token=TOKEN), TOKEN)
    try:
        assert models.main(["--db", str(db), "promote", "2", "--by", "bo"]) == 0
        assert client.get("/api/model").status_code == 401  # behind the token like every API route
        served = client.get("/api/model", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert served["experiment_id"] == 1 and served["pinned"]
        page = client.get("/queue/file")
        assert "Suggestions scored by model 1 (1.joblib)" in page.text and "(pinned by --model)" in page.text
        assert queued(db, 1)[2] == str(first)
    finally:
        client.__exit__(None, None, None)


def test_the_drift_page_shows_the_served_models_drift(review_setup, two_models, tmp_path):
    source, first, _ = two_models
    db = copy_db(source, tmp_path / "crawl.db")
    with sqlite3.connect(db) as connection:  # a week of arrivals after the models were trained
        connection.execute("UPDATE products SET first_seen = ? WHERE id % 10 = 0", (LATER,))
    client = browser(create_app(db, first, review_setup.images, follow=True, check_every_s=0))
    try:
        assert 'href="/drift"' in client.get("/report").text
        page = client.get("/drift")
        assert page.status_code == 200
        assert "Drift of model 1 (1.joblib) since" in page.text
        assert "products first seen since" in page.text and "Filed automatically" in page.text
    finally:
        client.__exit__(None, None, None)


def test_requests_meanwhile_keep_the_old_model_and_a_broken_one_is_not_served(two_models, tmp_path, caplog):
    """The request that notices a promotion loads the new model; one arriving meanwhile is answered at once with the
    old model, whole; a promoted file that changed since it was registered is never served. The loader is the
    app's own (``serving.serve``), held mid-load by an event so the overlap is certain, not timed."""
    source, first, second = two_models
    db = copy_db(source, tmp_path / "crawl.db")
    loading, release = threading.Event(), threading.Event()

    def held(path):
        loading.set()
        assert release.wait(60)
        return serving.serve(db, path, DEFAULT_TARGET, pinned=False)

    following = serving.Serving(db, serving.serve(db, first, DEFAULT_TARGET, pinned=False), follow=True, load=held,
                                check_every_s=0)
    assert models.main(["--db", str(db), "promote", "2", "--by", "bo"]) == 0
    seen = {}
    noticing = threading.Thread(target=lambda: seen.update(noticing=following.current()))
    noticing.start()
    assert loading.wait(60)
    meanwhile = following.current()  # answered while the other request loads
    release.set()
    noticing.join(60)
    assert meanwhile.experiment_id == 1 and meanwhile.path == first
    assert seen["noticing"].experiment_id == 2 and following.current().path == second
    original = first.read_bytes()
    try:  # model 1 promoted again, but its file changed since it was registered: model 2 stays
        assert models.main(["--db", str(db), "promote", "1"]) == 0
        first.write_bytes(original + b"\0")
        with caplog.at_level(logging.WARNING):
            assert following.current().experiment_id == 2
        assert "is not the file that was registered" in caplog.text
    finally:
        first.write_bytes(original)
