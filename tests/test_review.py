"""The review app through FastAPI's TestClient on a real crawl database and a real trained model: the filing queue
written by ``modeling.predict --queue``, the JSON API, decisions, leases, undo, the token and CSRF."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import pytest
from fastapi.testclient import TestClient

from modeling import predict, store
from modeling.filing import DECISIONS, DEFAULT_TARGET, load_thresholds
from modeling.review import cards, create_app, decisions, leases
from modeling.review.__main__ import main as review_main

from .review_fixtures import HOSTILE_NAME, copy_db

TOKEN = "s3cret-review-token"


def client_for(review_setup, db, model, name: str | None = "ana", sign_in_token: str | None = None,
               **options) -> TestClient:
    """A browser of the app (at http://localhost, a name the app answers), signed in as ``name`` with
    ``sign_in_token`` (by default the app's shared token, if it has one)."""
    token = sign_in_token or options.get("token")
    client = TestClient(create_app(db, review_setup.model, review_setup.images, model=model, **options),
                        base_url="http://localhost", follow_redirects=False)
    client.__enter__()
    if name:
        signed = client.post("/login", data={"name": name, "csrf": csrf_of(client),
                                             **({"token": token} if token else {})})
        assert signed.status_code == 303, signed.text
    return client


@pytest.fixture
def app_client(review_setup, db, model):
    client = client_for(review_setup, db, model)
    yield client
    client.__exit__(None, None, None)


def csrf_of(client: TestClient, html: str | None = None) -> str:
    html = html if html is not None else client.get("/login").text
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def card_of(html: str) -> dict:
    fields = dict(re.findall(r'<input type="hidden" name="(item|seen|csrf)" value="([^"]*)"', html))
    fields["choices"] = re.findall(r'name="choice" value="([^"]+)"', html)
    return fields


def rows(db, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, args).fetchall()


def test_predict_queue_writes_each_product_needing_review_once(review_setup, db, model, tmp_path):
    queued = rows(db, "SELECT record_id, product_id, payload, prediction, model_path FROM filing_queue ORDER BY id")
    lines = [json.loads(line) for line in (review_setup.new_products.parent / "out.jsonl").read_text().splitlines()]
    predicted = [line for line in lines if "error" not in line]
    assert [r[0] for r in queued] == [str(line["id"]) for line in predicted]  # no thresholds yet: all need review
    assert all(r[1] is None and r[4] == str(review_setup.model) for r in queued)
    assert json.loads(queued[0][2])["name"] == HOSTILE_NAME and json.loads(queued[0][3]) == predicted[0]
    # again from the same file, then a whole crawl database into itself: nothing twice
    assert predict.main(["--model", str(review_setup.model), "--input", str(review_setup.new_products), "--output",
                         str(tmp_path / "again.jsonl"), "--queue", str(db), "--no-progress"]) == 0
    assert predict.main(["--model", str(review_setup.model), "--db", str(db), "--output", str(tmp_path / "db.jsonl"),
                         "--queue", "--no-progress"]) == 0
    (products,), = rows(db, "SELECT count(*) FROM products")
    assert rows(db, "SELECT count(*), count(product_id) FROM filing_queue") == [(len(queued) + products, products)]
    with pytest.raises(SystemExit):  # --queue without a value needs --db
        predict.main(["--model", str(review_setup.model), "--input", str(review_setup.new_products), "--queue"])


def test_api_predict_answers_the_lines_predict_writes_with_an_error_at_each_bad_index(review_setup, app_client,
                                                                                      model):
    good = {"id": "a", "name": "Flare jeans in washed denim", "description": "<p>Stretch</p>"}
    items = [good, {"id": "b", "description": "no name"}, {"name": "no id"},
             {"id": "c", "name": "Maxi dress", "image_path": "../../etc/passwd"}, {**good, "id": "d"}]
    answer = app_client.post("/api/predict", json=items)
    assert answer.status_code == 200
    lines = answer.json()
    thresholds = load_thresholds(review_setup.model, DEFAULT_TARGET)  # the app decides at its default target
    expected = list(predict.prediction_lines(model, [predict.check_record(good, None)[0],
                                                     predict.check_record({**good, "id": "d"}, None)[0]], thresholds))
    assert lines[0] == expected[0] and lines[4] == expected[1] and expected[0]["decision"] in DECISIONS
    assert lines[1] == {"index": 1, "id": "b", "error": "no name (a non-empty string is required)"}
    assert lines[2] == {"index": 2, "id": None, "error": "no id"}
    assert lines[3] == {"index": 3, "id": "c", "error": "image_path leads outside the image store"}
    assert app_client.post("/api/predict", json={"not": "a list"}).status_code == 422
    refused = app_client.post("/api/predict", json=[good, "not an object"])  # the request model says where
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", 1]


class HeldModel:
    """The session's real model, whose predictions wait until the test releases them (and say when one started)."""

    def __init__(self, model):
        self.model, self.started, self.release = model, threading.Event(), threading.Event()

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def predict_branches(self, frame):
        self.started.set()
        if not self.release.wait(60):
            raise TimeoutError("the test never released the prediction")
        return self.model.predict_branches(frame)


def test_a_batch_being_predicted_holds_up_no_other_request(review_setup, db, model):
    """/api/predict predicts in a worker thread: while a batch is being predicted the app answers other requests (a
    prediction on the event loop would leave them waiting until it ended)."""
    held = HeldModel(model)
    client = client_for(review_setup, db, held, name=None)
    try:
        with ThreadPoolExecutor(2) as pool:
            batch = pool.submit(client.post, "/api/predict", json=[{"id": "a", "name": "Flare jeans in washed denim"}])
            assert held.started.wait(60)
            other = pool.submit(client.get, "/api/model")
            try:
                assert other.result(timeout=30).status_code == 200 and not batch.done()
            finally:
                held.release.set()
            answer = batch.result(timeout=60)
        assert answer.status_code == 200 and answer.json()[0]["id"] == "a"
    finally:
        held.release.set()
        client.__exit__(None, None, None)


def test_the_api_has_an_openapi_schema_and_no_cdn_docs_pages(app_client):
    schema = app_client.get("/api/openapi.json").json()
    assert {"/api/predict", "/api/queue", "/api/reviews"} <= set(schema["paths"])
    assert app_client.get("/docs").status_code == 404 and app_client.get("/redoc").status_code == 404


def test_filing_a_product_is_committed_and_undone_with_the_keys_forms(app_client, db):
    page = app_client.get("/queue/file")
    assert page.status_code == 200
    card = card_of(page.text)
    assert card["item"] == "queue:1" and card["seen"] == "0"
    assert len(card["choices"]) == 3 + 2  # three suggestions, exclude, another category (a new product: no keep)
    chosen = card["choices"][1]
    answer = app_client.post("/queue/file/decide", data={**card, "choice": chosen})
    assert answer.status_code == 303 and "filed+as" in answer.headers["location"]
    assert rows(db, "SELECT queue_id, product_id, decision, source, reviewer FROM reviews") == [
        (1, None, chosen, "unsure", "ana")]
    following = app_client.get(answer.headers["location"])
    assert card_of(following.text)["item"] == "queue:2" and "Done 1 / left" in following.text
    undone = app_client.post("/queue/file/undo", data={"csrf": card["csrf"]})
    assert undone.status_code == 303
    assert rows(db, "SELECT queue_id, decision FROM reviews ORDER BY id") == [(1, chosen), (1, None)]
    back = app_client.get(undone.headers["location"])
    assert card_of(back.text)["item"] == "queue:1" and "Done 0 / left" in back.text
    # another category from the picker, then exclude
    other = card_of(back.text)
    assert app_client.post("/queue/file/decide", data={**other, "choice": "other", "other": "flare-jeans"}
                           ).status_code == 303
    nxt = card_of(app_client.get("/queue/file").text)
    assert app_client.post("/queue/file/decide", data={**nxt, "choice": "exclude"}).status_code == 303
    assert rows(db, "SELECT queue_id, decision FROM reviews ORDER BY id")[2:] == [(1, "flare-jeans"), (2, "exclude")]
    shown = card_of(app_client.get("/queue/file").text)
    refused = app_client.post("/queue/file/decide", data={**shown, "choice": "other", "other": "no-such-leaf"})
    assert refused.status_code == 303 and refused.headers["location"].startswith("/queue/file?")  # PRG: a GET
    again = app_client.get(refused.headers["location"])
    assert card_of(again.text)["item"] == shown["item"]
    assert "&#39;no-such-leaf&#39; is not a leaf category" in again.text
    assert rows(db, "SELECT count(*) FROM reviews") == [(4,)]


def test_a_group_decision_settles_every_product_of_the_group(review_setup, app_client, db):
    shown = app_client.get("/queue/suspect").text
    first = card_of(shown)
    assert first["item"] == "audit:1:first" and "keep" in first["choices"]
    # the current label's own score, and where each score comes from
    assert re.search(r'id="current-score">10.0%</span> <span class="source">audit \(out-of-fold\)', shown)
    assert shown.count('class="source">audit (out-of-fold)') == 2 and 'class="source">model' in shown
    assert first["choices"][0] == "bootcut-jeans"  # the audit's suggestion first, then the model's
    assert app_client.post("/queue/suspect/decide", data={**first, "choice": "keep"}).status_code == 303
    page = app_client.get("/queue/suspect").text
    group = card_of(page)
    assert group["item"] == "audit:1:copies" and "This decision settles 3 products" in page
    answer = app_client.post("/queue/suspect/decide", data={**group, "choice": "exclude"})
    assert "3+products+excluded" in answer.headers["location"]
    copies = review_setup.groups["copies"]
    decided = rows(db, "SELECT product_id, decision, replaces, source FROM reviews ORDER BY id")
    given = dict(rows(db, "SELECT id, category_id FROM products"))
    assert decided[0] == (review_setup.groups["first"][0], given[review_setup.groups["first"][0]],
                          given[review_setup.groups["first"][0]], "audit")
    assert decided[1:] == [(pid, "exclude", given[pid], "audit") for pid in copies]
    # undo takes back the whole group; each row says what it replaced
    app_client.post("/queue/suspect/undo", data={"csrf": group["csrf"]})
    assert rows(db, "SELECT product_id, decision, replaces FROM reviews ORDER BY id")[4:] == [
        (pid, None, "exclude") for pid in copies]
    assert app_client.get("/api/queue", params={"queue": "suspect"}).json()["progress"]["done"] == 1


def test_two_reviewers_never_hold_one_card_and_a_stale_decision_is_refused(review_setup, db, model, app_client):
    other = client_for(review_setup, db, model, name="ben")
    try:
        mine = card_of(app_client.get("/queue/file").text)
        theirs = card_of(other.get("/queue/file").text)
        assert mine["item"] != theirs["item"]
        grabbed = other.post("/queue/file/decide", data={**theirs, "item": mine["item"], "seen": mine["seen"],
                                                         "choice": "exclude"})
        assert grabbed.status_code == 303  # back to the card ana holds, as it is, with the reason
        refusal = other.get(grabbed.headers["location"]).text
        assert card_of(refusal)["item"] == mine["item"] and "ana has this card open; nothing was changed" in refusal
        assert rows(db, "SELECT count(*) FROM reviews") == [(0,)]
        assert app_client.post("/queue/file/decide", data={**mine, "choice": "exclude"}).status_code == 303
        # ben decides the same card from the version he saw: refused with who and when
        late = other.post("/api/reviews", json={"queue": "file", "item": mine["item"], "decision": "flare-jeans",
                                                "reviewer": "ben", "seen": 0})
        assert late.status_code == 409 and late.json()["detail"].startswith("this card was decided (exclude) by ana")
        assert rows(db, "SELECT reviewer, decision FROM reviews") == [("ana", "exclude")]
    finally:
        other.__exit__(None, None, None)


def test_a_lease_expires_and_the_card_goes_to_the_next_reviewer(review_setup, db, model):
    from modeling import store

    with store.connect(db) as connection:
        catalogue = cards.Catalogue.load(connection)
        first = cards.next_card(connection, "file", catalogue, "ana", now=1000.0)
        assert cards.next_card(connection, "file", catalogue, "ben", now=1000.0).item != first.item
        later = 1000.0 + leases.LEASE_SECONDS + 1
        assert cards.next_card(connection, "file", catalogue, "ben", now=later).item == first.item
        with pytest.raises(decisions.Stale, match="ben has this card open"):
            decisions.decide(connection, "file", catalogue, first.item, "exclude", "ana", 0, later)


def test_the_api_lists_the_queue_and_records_decisions(app_client, db):
    listed = app_client.get("/api/queue", params={"queue": "file"}).json()
    assert listed["progress"] == {"done": 0, "left": len(listed["cards"]), "per_minute": 0.0}
    card = listed["cards"][0]
    assert card["suggestions"][0]["path"].startswith("women/") and card["products"] == 1
    answer = app_client.post("/api/reviews", json={"queue": "file", "item": card["item"], "decision": "exclude",
                                                   "reviewer": "api", "seen": card["seen"]})
    assert answer.json() == {"item": card["item"], "decision": "exclude", "settled": 1}
    again = app_client.get("/api/queue").json()
    assert again["progress"]["done"] == 1 and again["progress"]["per_minute"] == 1.0
    undo = app_client.post("/api/reviews", json={"queue": "file", "item": card["item"], "decision": None,
                                                 "reviewer": "api", "seen": again["progress"]["done"]})
    assert undo.status_code == 200 and undo.json()["settled"] == 1
    assert app_client.post("/api/reviews", json={"queue": "file", "item": "queue:999", "decision": "exclude",
                                                 "reviewer": "api", "seen": 0}).status_code == 404


def test_product_text_is_escaped_once_and_photos_come_only_from_the_store(review_setup, app_client, db):
    page = app_client.get("/queue/file").text
    assert "<script>" not in page and "<img src=x" not in page and "<b onmouseover" not in page  # no markup of theirs
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page  # the entities' markup, shown as text
    assert "&lt;img src=x onerror=&#34;window.pwned=2&#34;&gt;" in page
    assert "&amp;lt;" not in page and "soft &amp; light" in page  # never double-escaped
    assert "Content-Security-Policy" in app_client.get("/").headers
    assert app_client.get("/photos/queue/4").headers["content-type"] == "image/jpeg"  # a crawled photo
    # predict --queue copied the file's photo (outside the store) into the store's queued/ folder, by its content
    (payload,), = rows(db, "SELECT payload FROM filing_queue WHERE id = 3")
    assert json.loads(payload)["image_path"].startswith("queued/")
    assert app_client.get("/photos/queue/3").headers["content-type"] == "image/jpeg"
    with sqlite3.connect(db) as connection:  # a payload naming a real file outside the store is never served
        connection.execute("UPDATE filing_queue SET payload = ? WHERE id = 3",
                           (json.dumps({"name": "x", "image_path": str(review_setup.db.parent / "outside.jpg")}),))
    assert app_client.get("/photos/queue/3").status_code == 404
    assert app_client.get("/photos/queue/1").status_code == 404  # no photo


def test_a_token_guards_every_page_write_and_api_call(review_setup, db, model):
    client = client_for(review_setup, db, model, name=None, token=TOKEN)
    try:
        assert client.get("/").headers["location"] == "/login"
        assert client.get("/queue/file").headers["location"] == "/login"
        assert client.get("/api/queue").status_code == 401
        assert client.post("/api/predict", json=[]).status_code == 401
        assert client.post("/api/predict", json=[], headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        csrf = csrf_of(client)
        assert client.post("/login", data={"name": "ana", "token": "wrong", "csrf": csrf}).status_code == 403
        refused = client.post("/login", data={"name": "ana", "token": TOKEN, "csrf": "forged"})
        assert refused.status_code == 403 and "this form has expired or did not come from this app" in refused.text
        signed = client.post("/login", data={"name": "ana", "token": TOKEN, "csrf": csrf})
        assert signed.status_code == 303 and TOKEN not in signed.headers["set-cookie"]
        assert "Signed in as <strong>ana</strong>" in client.get("/").text
        card = card_of(client.get("/queue/file").text)
        forged = {**card, "csrf": "forged", "choice": "exclude"}
        assert client.post("/queue/file/decide", data=forged).status_code == 403
        assert client.post("/queue/file/undo", data={"csrf": "forged"}).status_code == 403
        assert rows(db, "SELECT count(*) FROM reviews") == [(0,)]
    finally:
        client.__exit__(None, None, None)
    with pytest.raises(SystemExit) as refused:
        review_main(["--model", str(review_setup.model), "--host", "0.0.0.0"])
    assert refused.value.code == 2


def test_request_bodies_are_capped(review_setup, db, model):
    client = client_for(review_setup, db, model, name=None, max_body=10_000)
    try:
        big = [{"id": i, "name": "Skinny jeans", "description": "x" * 500} for i in range(40)]
        assert client.post("/api/predict", json=big).status_code == 413
        assert client.post("/api/predict", json=big[:5]).status_code == 200
    finally:
        client.__exit__(None, None, None)


def test_the_report_is_a_page_of_the_app_from_the_same_templates(app_client):
    index = app_client.get("/report")
    assert index.status_code == 200 and "Experiment 1: review test" in index.text
    assert "<th>Filed alone at 95% accuracy</th>" in index.text and "coverage_95" not in index.text
    assert re.search(r'<td class="num">\d+\.\d%</td>', index.text)
    assert "Experiment 1: auto-filing decisions" in index.text and "<th>Filed at the parent</th>" in index.text
    errors = app_client.get("/report", params={"errors": "true"}).text
    photos = re.findall(r'src="(/photos/product/\d+)"', errors)
    assert "most confident errors" in errors and photos
    assert app_client.get(photos[0]).headers["content-type"] == "image/jpeg"


def test_two_decisions_racing_for_one_card_leave_exactly_one(review_setup, db, model):
    """Two reviewers submit a decision on the same card at the same moment, on two real sqlite connections: one is
    recorded, the other refused, whichever the database lets in first."""
    import threading

    from modeling import store

    with store.connect(db) as connection:
        catalogue = cards.Catalogue.load(connection)
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def submit(reviewer: str, decision: str) -> None:
        with store.connect(db) as connection:
            start.wait()
            try:
                decisions.decide(connection, "file", catalogue, "queue:2", decision, reviewer, 0, 1000.0)
                outcomes[reviewer] = "recorded"
            except decisions.Stale as error:
                outcomes[reviewer] = str(error)

    threads = [threading.Thread(target=submit, args=args) for args in (("ana", "exclude"), ("ben", "flare-jeans"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == 2 and list(outcomes.values()).count("recorded") == 1
    (winner,) = [who for who, outcome in outcomes.items() if outcome == "recorded"]
    (refusal,) = [outcome for outcome in outcomes.values() if outcome != "recorded"]
    assert refusal.endswith("nothing was changed")
    assert rows(db, "SELECT queue_id, reviewer FROM reviews") == [(2, winner)]


def test_a_decision_answered_by_a_real_server_survives_its_kill(review_setup, db):
    import httpx

    from modeling.review.process import ReviewProcess

    with ReviewProcess("--db", db, "--model", review_setup.model, "--images", review_setup.images) as app:
        card = httpx.get(app.url + "/api/queue").json()["cards"][0]
        answer = httpx.post(app.url + "/api/reviews", json={"queue": "file", "item": card["item"],
                                                            "decision": "exclude", "reviewer": "ana", "seen": 0})
        assert answer.status_code == 200
        app.kill()
    assert rows(db, "SELECT queue_id, decision, reviewer FROM reviews") == [(1, "exclude", "ana")]
    assert [line for line in app.log if '"POST /api/reviews HTTP/1.1" 200' in line]  # a line per request by default


def test_a_queue_of_a_whole_crawl_is_read_page_by_page_and_counted_by_the_database(db, model):
    from modeling import store

    with sqlite3.connect(db) as connection:
        row = connection.execute("SELECT payload, prediction, model_path, created_at FROM filing_queue").fetchone()
        connection.executemany("INSERT INTO filing_queue (record_id, payload, prediction, model_path, created_at) "
                               "VALUES (?, ?, ?, ?, ?)", [(f"bulk-{i}", *row) for i in range(500)])
    with store.connect(db) as connection:
        catalogue = cards.Catalogue.load(connection)
        (total,), = rows(db, "SELECT count(*) FROM filing_queue")
        decided = [2, 201, 202, 400, total]  # on and around the 200-id pages
        for queue_id in decided:
            decisions.decide(connection, "file", catalogue, f"queue:{queue_id}", "exclude", "ana", 0, 1000.0)
        decisions.decide(connection, "file", catalogue, "queue:201", None, "ana",
                     rows(db, "SELECT max(id) FROM reviews WHERE queue_id = 201")[0][0], 1030.0)  # an undo
        left = [f"queue:{i}" for i in range(1, total + 1) if i not in {2, 202, 400, total}]
        assert list(cards.pending(connection, "file", catalogue)) == left
        progress = cards.progress(connection, "file", catalogue, now=1060.0)
        assert (progress.done, progress.left, progress.per_minute) == (4, total - 4, 4.0)
        assert cards.progress(connection, "file", catalogue, now=1000.0 + 3600).per_minute == 0.0


def test_a_crawl_queued_into_another_database_names_no_product_of_it(review_setup, db, tmp_path):
    """Product ids of crawl A mean other products (or none) in database B: B's queue keeps only the records."""
    other = copy_db(review_setup.db, tmp_path / "other.db")
    with sqlite3.connect(other) as connection:
        connection.execute("DELETE FROM filing_queue")
    assert predict.main(["--model", str(review_setup.model), "--db", str(db), "--output", str(tmp_path / "out.jsonl"),
                         "--queue", str(other), "--no-progress"]) == 0
    (products,), = rows(db, "SELECT count(*) FROM products")
    assert rows(other, "SELECT count(*), count(product_id) FROM filing_queue") == [(products, 0)]


def test_a_queued_crawled_product_shows_its_stored_photo_and_only_crawl_leaves_are_decided(review_setup, db, model,
                                                                                          tmp_path):
    """predict --db with a relative --images writes paths relative to the working folder into the payload; a crawled
    product's card still shows the photo the crawl stored. A model's class the crawl does not hold is refused."""
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM filing_queue")
    assert predict.main(["--model", str(review_setup.model), "--db", str(db), "--images", "relative/images",
                         "--output", str(tmp_path / "out.jsonl"), "--queue", "--no-progress"]) == 0
    (queue_id, product_id), = rows(db, "SELECT q.id, q.product_id FROM filing_queue AS q JOIN products AS p "
                                       "ON p.id = q.product_id WHERE p.image_status = 'ok' ORDER BY q.id LIMIT 1")
    with store_connection(db) as connection:
        catalogue = cards.Catalogue.load(connection)
        photo = cards.photo_file(connection, "queue", queue_id, review_setup.images)
    (stored,), = rows(db, "SELECT image_path FROM products WHERE id = ?", product_id)
    assert photo == (review_setup.images / stored).resolve()
    assert "bootcut-jeans" in model.classes_ and "bootcut-jeans" in catalogue.leaves
    with sqlite3.connect(db) as connection:  # a leaf the model knows that this crawl no longer holds
        connection.execute("DELETE FROM categories WHERE id = 'bootcut-jeans'")
    with store_connection(db) as connection, pytest.raises(decisions.DecisionError, match="not a leaf category"):
        decisions.decide(connection, "file", cards.Catalogue.load(connection), f"queue:{queue_id}", "bootcut-jeans",
                         "ana", 0, 0.0)


def store_connection(db):
    return closing(store.connect(db))


def test_a_stored_photo_is_a_file_inside_the_image_store_or_none(tmp_path):
    store_folder = tmp_path / "images"
    (store_folder / "full").mkdir(parents=True)
    (store_folder / "full" / "a.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "outside.jpg").write_bytes(b"\xff\xd8")
    assert cards.stored_photo("full/a.jpg", store_folder) == (store_folder / "full" / "a.jpg").resolve()
    for value in ("full/a\x00.jpg", 12, "../outside.jpg", str(tmp_path / "outside.jpg"), None, "", "full/gone.jpg"):
        assert cards.stored_photo(value, store_folder) is None, repr(value)  # never a server error, never outside


def test_a_test_split_product_is_queued_without_the_models_advice(review_setup, db, model, app_client):
    """A person filing a test-split product toward the model's suggestion would score the next model against its own
    advice: such a card (a crawled product or one from a file) shows no suggestion, and says why."""
    from modeling import filing_queue
    from modeling.data import split_of

    with sqlite3.connect(db) as connection:
        ids = [i for (i,) in connection.execute("SELECT id FROM products ORDER BY id")]
    crawled = {split: next(i for i in ids if split_of(i) == split) for split in ("test", "train")}
    record = next(f"r{n}" for n in range(1000) if split_of(f"file/new.jsonl/r{n}") == "test")
    line = {"category": "bootcut-jeans", "score": 0.6, "alternatives": [{"category": "flare-jeans", "score": 0.3}]}
    with store_connection(db) as connection, connection.begin():
        queued = filing_queue.queue_products(
            connection, [({"id": crawled["test"], "name": "a test product"}, line),
                         ({"id": crawled["train"], "name": "a training product"}, line)], source="",
            model_path=str(review_setup.model), from_crawl=True)
        queued += filing_queue.queue_products(connection, [({"id": record, "name": "a new test product"}, line)],
                                              source="new.jsonl", model_path=str(review_setup.model),
                                              from_crawl=False)
    with store_connection(db) as connection:
        catalogue = cards.Catalogue.load(connection)
        found = {q: cards.cards(connection, "file", catalogue, f"queue:{q}")[0] for q in queued}
    test_card, train_card, file_card = (found[q] for q in queued)
    assert test_card.unadvised and not test_card.suggestions
    assert file_card.unadvised and not file_card.suggestions
    assert not train_card.unadvised and [s.category for s in train_card.suggestions] == ["bootcut-jeans",
                                                                                          "flare-jeans"]
    page = app_client.get(f"/queue/file?prefer=queue:{queued[0]}")
    assert "filed without the model" in page.text


def test_make_review_files_by_the_demos_rule_and_says_so(review_setup, app_client, model, tmp_path):
    """The demo queues what it cannot file at 95% at the leaf (demo.TARGET, demo.LEVELS); `make review` serves
    /api/predict by that rule, through modeling.predict's thresholds, so a product the demo queued comes back as
    "review" rather than filed at the parent by the app's default (98%, leaf or parent), and the pages and
    GET /api/model say which rule is in force."""
    import shlex
    import subprocess

    import httpx

    from modeling.review.process import ReviewProcess
    from shopstyle_spider import config, demo

    demo_dir = tmp_path / "data" / "demo"
    demo_dir.mkdir(parents=True)
    copy_db(review_setup.db, demo_dir / "crawl.db")
    (demo_dir / "images").symlink_to(review_setup.images)
    planned = subprocess.run(["make", "-n", "review", f"DATA_DIR={demo_dir.parent}"], cwd=config.PROJECT_ROOT,
                             capture_output=True, text=True, check=True).stdout
    command = next(line for line in planned.splitlines() if " -m modeling.review " in line)
    args = shlex.split(command.split(" -m modeling.review ", 1)[1])
    assert args[args.index("--target-accuracy") + 1] == str(demo.TARGET)
    assert args[args.index("--levels") + 1] == demo.LEVELS
    records = [{"id": r["id"], "name": r["name"], "description": r["description"]}
               for r in map(json.loads, review_setup.new_products.read_text().splitlines()) if r.get("name")]
    # the app's default rule files every one of them at the parent (the fixture's parent level files all)
    assert {line["decision"] for line in app_client.post("/api/predict", json=records).json()} == {"parent"}
    assert "/api/predict files at 98% accuracy, at the leaf or its parent" in app_client.get("/").text
    assert app_client.get("/api/model").json()["levels"] == ["leaf", "parent"]
    with ReviewProcess(*args) as app:  # the very arguments make review passes, the model in service followed
        described = httpx.get(app.url + "/api/model").json()
        home = httpx.get(app.url + "/").text
        lines = httpx.post(app.url + "/api/predict", json=records).json()
    assert described["target_accuracy"] == demo.TARGET and described["levels"] == ["leaf"]
    assert described["thresholds"]["parent"] is None
    assert described["thresholds"]["parent_never"] == "left out by --levels"
    assert "/api/predict files at 95% accuracy, at the leaf only" in home
    thresholds = predict.filing_thresholds(review_setup.model, demo.TARGET, demo.LEVELS.split(","))
    expected = list(predict.prediction_lines(model, [predict.check_record(r, None)[0] for r in records], thresholds))
    assert lines == expected and {line["decision"] for line in lines} == {"review"}


def form_fields(html: str, form: str, **chosen: str) -> dict[str, list[str]]:
    """The hidden fields of the page's form ``form`` and the ``chosen`` ones, as a browser posts them."""
    body = re.search(rf'<form [^>]*id="{form}">(.*?)</form>', html, re.S).group(1)
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', body):
        fields.setdefault(name, []).append(value)
    return fields | {name: [value] for name, value in chosen.items()}


def test_skipped_cards_stay_skipped_across_an_undo(app_client, db):
    """Skips ride in the page's URL and forms; the undo form carries them too, so after an undo the undone card
    comes first and then the queue goes on without the cards skipped (before, the first skipped card came back)."""
    first = app_client.get("/queue/file").text
    assert card_of(first)["item"] == "queue:1"
    skip_url = re.search(r'<a href="([^"]+)" id="skip">', first).group(1).replace("&amp;", "&")
    second = app_client.get(skip_url).text
    card = card_of(second)
    assert card["item"] == "queue:2"
    decided = app_client.post("/queue/file/decide", data=form_fields(second, "decide", choice="exclude"))
    third = app_client.get(decided.headers["location"]).text
    assert card_of(third)["item"] == "queue:3"
    undone = app_client.post("/queue/file/undo", data=form_fields(third, "undo"))
    back = app_client.get(undone.headers["location"]).text
    assert card_of(back)["item"] == "queue:2" and "decision undone" in back  # the undone card first, as before
    again = app_client.post("/queue/file/decide", data=form_fields(back, "decide", choice="exclude"))
    after = app_client.get(again.headers["location"]).text
    assert card_of(after)["item"] == "queue:3"  # queue:1 stays skipped
    assert rows(db, "SELECT queue_id, decision FROM reviews ORDER BY id") == [(2, "exclude"), (2, None),
                                                                              (2, "exclude")]


def test_a_refused_decision_redirects_to_its_card_so_a_reload_posts_nothing(app_client, db):
    """Post/Redirect/Get: a decision refused (nothing chosen, a leaf that does not exist) answers with a redirect to
    the card's page, whose reason is a message the app signed for this session; reloading it decides nothing."""
    page = app_client.get("/queue/file").text
    card = card_of(page)
    empty = app_client.post("/queue/file/decide", data=form_fields(page, "decide"))
    assert empty.status_code == 303
    location = empty.headers["location"]
    for _ in range(2):  # the page, then a reload of it
        shown = app_client.get(location)
        assert shown.status_code == 200 and card_of(shown.text)["item"] == card["item"]
        assert re.search(r'<p class="error" role="alert" id="error">choose a suggestion', shown.text)
    assert rows(db, "SELECT count(*) FROM reviews") == [(0,)]
    forged = location.replace("choose+a+suggestion", "call+this+number")  # text the app did not sign: not shown
    assert 'id="error"' not in app_client.get(forged).text
    gone = app_client.post("/queue/file/decide", data={**card, "item": "queue:999", "choice": "exclude"})
    assert "that card is no longer in this queue (queue:999)" in app_client.get(gone.headers["location"]).text


def test_a_product_queued_again_is_never_rewritten_and_a_different_one_says_so(review_setup, app_client, db):
    """POST /api/queue keeps a queued product as it is (a person may have its card open): the identical record
    posted again is a plain success on the same card; one posted with another name, description or photo gets the
    same card with a conflict naming what differs and the name it is queued with, and nothing is changed."""
    photo, other_photo = (str(p) for p in sorted(review_setup.images.rglob("*.jpg"))[:2])
    record = {"id": "sku-1", "name": "Flare jeans in washed denim", "description": "stretch", "image_path": photo}
    first = app_client.post("/api/queue", params={"source": "feed"}, json=[record]).json()
    assert first == [{"index": 0, "id": "sku-1", "item": first[0]["item"], "added": True}]
    queued = rows(db, "SELECT id, payload, prediction FROM filing_queue ORDER BY id")
    renamed = {**record, "name": "Bootcut jeans"}
    again = app_client.post("/api/queue", params={"source": "feed"},
                            json=[record, renamed, {**record, "image_path": other_photo},
                                  {"id": "sku-2", "name": "Tee"},
                                  {"id": "sku-2", "name": "Tee", "description": "cotton"}]).json()
    assert again[0] == {"index": 0, "id": "sku-1", "item": first[0]["item"], "added": False}
    assert again[1]["item"] == first[0]["item"] and again[1]["added"] is False
    assert again[1]["conflict"]["fields"] == ["name"]
    assert again[1]["conflict"]["queued_name"] == "Flare jeans in washed denim"
    assert "never rewrites a queued product" in again[1]["conflict"]["detail"]
    assert again[2]["conflict"]["fields"] == ["image_path"]
    assert again[3]["added"] is True and "conflict" not in again[3]  # sku-2 is new ...
    assert again[4]["item"] == again[3]["item"] and again[4]["conflict"]["fields"] == ["description"]  # ... once
    now = rows(db, "SELECT id, payload, prediction FROM filing_queue ORDER BY id")
    assert now[:len(queued)] == queued and len(now) == len(queued) + 1
    schema = app_client.get("/api/openapi.json").json()
    answer = schema["paths"]["/api/queue"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/Queued"} in answer["items"]["anyOf"]
    assert {"added", "conflict"} <= set(schema["components"]["schemas"]["Queued"]["properties"])


def test_suspect_cards_say_what_scored_them_and_the_api_rounds_scores(review_setup, app_client, db):
    """A suspect card's scores come from the audit's out-of-fold probabilities (its own suggestion and the current
    label's score) and from the served model (the suggestions completing it): the API names each source, and gives
    every score of a card as a float of 4 decimals."""
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE label_issues SET suggested_score = 8.947971844021966e-05, "
                           "given_score = 0.123456789")
    suspect = app_client.get("/api/queue", params={"queue": "suspect"}).json()["cards"][0]
    assert suspect["scored_by"] == "audit 1"
    audit, *completing = suspect["suggestions"]
    assert (audit["source"], audit["scored_by"], audit["score"]) == (cards.AUDIT, "audit 1", 0.0001)
    assert completing and all(s["source"] == cards.MODEL and s["scored_by"] == str(review_setup.model)
                              for s in completing)
    assert suspect["current_score"] == 0.1235 and suspect["current_score_source"] == cards.AUDIT
    filing = app_client.get("/api/queue").json()["cards"]
    scores = [s["score"] for c in [suspect, *filing] for s in c["suggestions"]]
    assert all(isinstance(x, float) and x == round(x, 4) for x in scores)
    assert any(x != round(x, 2) for x in scores)  # rounded to 4, not fewer
    assert all(c["scored_by"] == str(review_setup.model) for c in filing)
