"""The review app's defences and its answers to mistakes, on the session's real crawl and model: the host names it
answers, JSON bodies only as JSON, the schema behind the token, its own status messages only, a reviewer bound to
a session (a token per reviewer), a signing key that outlives a restart, and capped product text; a real server in
a subprocess for memory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from modeling.review import create_app
from modeling.review.__main__ import main as review_main
from modeling.review.api import DESCRIPTION_MAX_CHARS, NAME_MAX_CHARS
from modeling.review.dependencies import SESSION_COOKIE, SIGNED_IN_COOKIE
from modeling.review.process import ReviewProcess
from modeling.review.security import LOOPBACK_HOSTS
from shopstyle_spider import config

from .test_review import TOKEN, card_of, client_for, csrf_of, rows

ANA, BOB = "ana-token-0123456789", "bob-token-9876543210"
REBOUND = {"Host": "rebound.attacker.example"}


@pytest.fixture
def clients():
    opened: list[TestClient] = []
    yield opened
    for client in opened:
        client.__exit__(None, None, None)


def open_client(clients, *args, **options) -> TestClient:
    clients.append(client_for(*args, **options))
    return clients[-1]


def first_card(client: TestClient, **headers) -> dict:
    card = client.get("/api/queue", headers=headers).json()["cards"][0]
    return {"queue": "file", "item": card["item"], "decision": "exclude", "seen": card["seen"]}


def test_requests_for_another_host_name_are_refused_and_write_nothing(review_setup, db, model, clients):
    """DNS rebinding: a page of rebound.attacker.example, its name now pointing at 127.0.0.1, reaches the app."""
    client = open_client(clients, review_setup, db, model)
    body = {**first_card(client), "reviewer": "ana"}
    assert client.get("/api/queue", headers=REBOUND).status_code == 400
    assert client.post("/api/reviews", json=body, headers=REBOUND).status_code == 400
    assert client.get("/queue/file", headers=REBOUND).status_code == 400
    assert rows(db, "SELECT count(*) FROM reviews") == [(0,)]
    assert client.get("/api/queue", headers={"Host": "[::1]:8000"}).status_code == 200  # loopback names are served
    proxied = open_client(clients, review_setup, db, model, name=None,
                          allowed_hosts=[*LOOPBACK_HOSTS, "review.example.org"])
    assert proxied.get("/api/queue", headers={"Host": "review.example.org"}).status_code == 200
    with pytest.raises(SystemExit) as refused:  # every address, no name: it would answer no other machine
        review_main(["--model", str(review_setup.model), "--host", "0.0.0.0", "--token", TOKEN])
    assert refused.value.code == 2


def test_a_body_not_sent_as_json_is_refused_with_415(review_setup, db, model, clients):
    client = open_client(clients, review_setup, db, model, name=None)
    body = json.dumps({**first_card(client), "reviewer": "ana"})
    for headers in ({}, {"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"},
                    {"Content-Type": "application/jsonx"}, {"Content-Type": "application/json-seq"},
                    {"Content-Type": "multipart/form-data; boundary=x"}):
        refused = client.post("/api/reviews", content=body, headers=headers)
        assert refused.status_code == 415 and "Content-Type: application/json" in refused.json()["detail"]
        assert client.post("/api/predict", content="[]", headers=headers).status_code == 415
    assert rows(db, "SELECT count(*) FROM reviews") == [(0,)]
    assert client.post("/api/reviews", content=body, headers={"Content-Type": "application/json"}).status_code == 200
    assert client.post("/api/predict", content="[]",
                       headers={"Content-Type": "Application/Problem+JSON; charset=utf-8"}).status_code == 200


def test_the_openapi_schema_needs_the_token_and_types_products_lines_and_refusals(review_setup, db, model, clients):
    client = open_client(clients, review_setup, db, model, name=None, token=TOKEN)
    assert client.get("/api/openapi.json").status_code == 401
    schema = client.get("/api/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    predict = schema["paths"]["/api/predict"]["post"]
    assert predict["requestBody"]["content"]["application/json"]["schema"]["items"]["$ref"].endswith("/Product")
    components = schema["components"]["schemas"]
    name = components["Product"]["properties"]["name"]["anyOf"][0]
    assert name == {"type": "string", "maxLength": NAME_MAX_CHARS}
    lines = predict["responses"]["200"]["content"]["application/json"]["schema"]["items"]["anyOf"]
    assert [line["$ref"].rsplit("/", 1)[1] for line in lines] == ["PredictionLine", "PredictionError"]
    assert "decision" in components["PredictionLine"]["required"] and "415" in predict["responses"]
    assert {"409", "415"} <= set(schema["paths"]["/api/reviews"]["post"]["responses"])


def test_names_and_descriptions_are_capped_with_a_422_naming_the_field(review_setup, db, model, clients):
    client = open_client(clients, review_setup, db, model, name=None)
    answer = client.post("/api/predict", json=[{"id": 1, "name": "Silk blouse"},
                                               {"id": 2, "name": "x" * (NAME_MAX_CHARS + 1)},
                                               {"id": 3, "name": "Maxi dress", "description": "y" * (
                                                   DESCRIPTION_MAX_CHARS + 1)}])
    assert answer.status_code == 422
    assert [error["loc"] for error in answer.json()["detail"]] == [["body", 1, "name"], ["body", 2, "description"]]


def test_the_status_line_shows_only_the_apps_own_messages(review_setup, db, model, clients):
    client = open_client(clients, review_setup, db, model)
    page = client.get("/queue/file", params={"message": "Your session expired: sign in at evil.example"})
    assert "evil.example" not in page.text and 'id="message"' not in page.text
    decided = client.post("/queue/file/decide", data={**card_of(page.text), "choice": "exclude"})
    assert "1 product excluded" in client.get(decided.headers["location"]).text
    other = open_client(clients, review_setup, db, model, name="ben")  # the same link, in another browser session
    assert "1 product excluded" not in other.get(decided.headers["location"]).text


def test_with_a_token_per_reviewer_no_one_decides_as_another(review_setup, db, model, clients):
    team = {"ana": ANA, "bob": BOB}
    ana = open_client(clients, review_setup, db, model, "ana", sign_in_token=ANA, reviewers=team)
    mallory = open_client(clients, review_setup, db, model, name=None, reviewers=team)
    csrf = csrf_of(mallory)
    for token in (BOB, None, TOKEN):  # another reviewer's token, none, a guess
        form = {"name": "ana", "csrf": csrf, **({"token": token} if token else {})}
        assert mallory.post("/login", data=form).status_code == 403
    mallory.cookies.set(SIGNED_IN_COOKIE, ana.cookies[SIGNED_IN_COOKIE])  # ana's sign-in, in another session
    assert mallory.get("/queue/file").headers["location"] == "/login"

    card = card_of(ana.get("/queue/file").text)
    assert ana.post("/queue/file/decide", data={**card, "choice": "exclude"}).status_code == 303
    bob = open_client(clients, review_setup, db, model, "bob", sign_in_token=BOB, reviewers=team)
    undone = bob.post("/queue/file/undo", data={"csrf": csrf_of(bob)})
    assert "nothing+of+yours+to+undo" in undone.headers["location"]
    as_ana = {**first_card(bob, Authorization=f"Bearer {BOB}"), "reviewer": "ana"}
    refused = bob.post("/api/reviews", json=as_ana, headers={"Authorization": f"Bearer {BOB}"})
    assert refused.status_code == 403 and refused.json()["detail"] == "this token is bob's: it cannot decide as ana"
    as_bob = {key: value for key, value in as_ana.items() if key != "reviewer"}
    assert bob.post("/api/reviews", json=as_bob, headers={"Authorization": f"Bearer {BOB}"}).status_code == 200
    assert rows(db, "SELECT reviewer, decision FROM reviews ORDER BY id") == [("ana", "exclude"), ("bob", "exclude")]


def test_the_signing_key_outlives_a_restart_and_stays_out_of_the_database(review_setup, db, model):
    first = client_for(review_setup, db, model)
    card = card_of(first.get("/queue/file").text)
    first.__exit__(None, None, None)  # the app stops with the card open in the browser
    key_file = config.review_key(db)
    assert key_file.parent == db.parent and key_file.stat().st_mode & 0o777 == 0o600
    again = TestClient(create_app(db, review_setup.model, review_setup.images, model=model),
                       base_url="http://localhost", follow_redirects=False, cookies=first.cookies)
    with again:
        assert again.post("/queue/file/decide", data={**card, "choice": "exclude"}).status_code == 303
    assert rows(db, "SELECT reviewer, decision FROM reviews") == [("ana", "exclude")]
    key = key_file.read_text()
    assert key.encode() not in db.read_bytes() and bytes.fromhex(key) not in db.read_bytes()
    key_file.chmod(0o644)
    with pytest.raises(PermissionError, match="readable by its owner only"), \
            TestClient(create_app(db, review_setup.model, review_setup.images, model=model)):
        pass


def resident_bytes(pid: int) -> int:
    """The process's resident memory, from /proc (Linux, as the project's machines)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_twenty_requests_of_2_mb_single_word_names_leave_the_apps_memory_bounded(review_setup, db):
    """A real server, its body cap raised so the requests reach the app: each is refused with a 422 naming the
    field, and its resident memory grows by less than 100 MB (it kept ~250 MB for five 200,000-letter names)."""
    with ReviewProcess("--db", db, "--model", review_setup.model, "--images", review_setup.images,
                       "--max-body", "2500000", "--no-access-log") as app, httpx.Client(timeout=120) as client:
        assert client.post(app.url + "/api/predict", json=[{"id": 0, "name": "Silk blouse"}]).status_code == 200
        before = resident_bytes(app.process.pid)
        for i in range(20):
            word = "abcdefghijklmnopqrstuvwxyz"[i] * 1_000 + "silk" * 499_750  # 2,000,000 letters, a new word each
            answer = client.post(app.url + "/api/predict", json=[{"id": i, "name": word}])
            assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", 0, "name"]
        grown = resident_bytes(app.process.pid) - before
    assert grown < 100 * 2**20, f"the app's resident memory grew by {grown / 2**20:.0f} MB"
    assert not [line for line in app.log if "POST /api/predict" in line]  # --no-access-log: no line per request


def test_api_answers_carry_the_security_headers_and_hand_out_no_session(review_setup, db, model, clients):
    """The JSON API takes a bearer token, never a cookie: an import job is not handed a new session each call (it was,
    before: a signed session id made and sent with every answer). Pages still get one, and every answer the CSP."""
    client = open_client(clients, review_setup, db, model, name=None)
    for answer in (client.get("/api/model"), client.post("/api/predict", json=[{"id": 1, "name": "Silk blouse"}]),
                   client.get("/api/no-such-route")):
        assert "set-cookie" not in answer.headers and not client.cookies
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        assert answer.headers["x-content-type-options"] == "nosniff"
    page = client.get("/login")
    assert page.headers["set-cookie"].startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in page.headers["set-cookie"]
    assert "content-security-policy" in page.headers and client.cookies.get(SESSION_COOKIE)
    assert "set-cookie" not in client.get("/login").headers  # a browser with a session keeps it
    # the refusals made before any route (another host name, a body over the cap) carry the headers too
    capped = open_client(clients, review_setup, db, model, name=None, max_body=1_000)
    for refused, status in ((client.get("/api/model", headers=REBOUND), 400),
                            (client.get("/login", headers=REBOUND), 400),
                            (capped.post("/api/predict", json=[{"id": 1, "name": "x" * 2_000}]), 413)):
        assert refused.status_code == status
        assert refused.headers["content-security-policy"].startswith("default-src 'none'")
        assert refused.headers["x-content-type-options"] == "nosniff"
