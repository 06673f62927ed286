"""The review app in a real browser: Debian's Chromium, headless, driven by Playwright against the app served by
uvicorn in a subprocess. Decisions are made with the keys, undone, checked in the database, and survive the
server being killed; hostile product text never runs; a refused decision keeps its card and the keys; the leaf
search finds names and paths; a page of another host name resolved to 127.0.0.1 cannot decide. Screenshots of each
page are saved (set ``SHOPSTYLE_SCREENSHOTS=docs/screenshots`` to refresh the README's)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from PIL import Image

from modeling.review.process import ReviewProcess

from .review_fixtures import copy_db

CHROMIUM = os.environ.get("SHOPSTYLE_CHROMIUM", "/usr/bin/chromium")
REBOUND = "rebound.attacker.example"  # a DNS rebinding attack's name, resolved by Chromium to 127.0.0.1
FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run does)")


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("response", lambda response: errors.append(f"{response.status} {response.url}")
                if response.status >= 400 else None)
        yield page, errors
        browser.close()


def test_a_reviewer_files_and_settles_cards_with_the_keys(review_setup, tmp_path, browser_page):
    page, errors = browser_page
    db = copy_db(review_setup.db, tmp_path / "crawl.db")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with ReviewProcess("--db", db, "--model", review_setup.model, "--images", review_setup.images) as app:
        page.goto(app.url + "/")
        page.fill("input[name=name]", "ana")
        page.click("button[type=submit]")
        page.wait_for_selector("a[href='/queue/file']")
        page.screenshot(path=shots / "review-home.png")

        # To file: the hostile card comes first; its text shows as text and none of it runs
        page.goto(app.url + "/queue/file")
        assert page.locator("#card").get_attribute("data-item") == "queue:1"
        assert "<script>window.pwned=1</script>" in page.locator("#description").inner_text()
        assert "<script>alert('name')</script>" not in page.locator("#name").inner_text()  # tags in names go
        page.hover("#description")
        assert page.evaluate("typeof window.pwned") == "undefined"

        page.keyboard.press("2")
        assert page.locator("input[data-key='2']").is_checked()
        chosen = page.locator("input[data-key='2']").get_attribute("value")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("#card").get_attribute("data-item") == "queue:2"
        assert rows(db, "SELECT queue_id, decision, reviewer FROM reviews") == [(1, chosen, "ana")]

        with page.expect_navigation():
            page.keyboard.press("u")  # undo: the card comes back, the database keeps both rows
        assert page.locator("#card").get_attribute("data-item") == "queue:1"
        assert rows(db, "SELECT queue_id, decision FROM reviews ORDER BY id") == [(1, chosen), (1, None)]

        page.keyboard.press("x")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        with page.expect_navigation():
            page.keyboard.press("s")  # skip queue:2
        assert page.locator("#card").get_attribute("data-item") == "queue:3"
        # its photo lay outside the store: predict --queue copied it in, so the card still shows it
        assert page.locator("#card img").evaluate("image => image.naturalWidth") > 0
        page.keyboard.press("/")
        page.keyboard.type("flare-jeans")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("#card").get_attribute("data-item") == "queue:4"
        assert page.locator("#card img").evaluate("image => image.naturalWidth") > 0  # served from the store
        page.screenshot(path=shots / "review-file.png")
        assert rows(db, "SELECT queue_id, decision FROM reviews ORDER BY id")[2:] == [(1, "exclude"),
                                                                                      (3, "flare-jeans")]
        with page.expect_navigation():
            page.keyboard.press("u")  # undo queue:3: it comes back first ...
        assert page.locator("#card").get_attribute("data-item") == "queue:3"
        page.keyboard.press("x")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("#card").get_attribute("data-item") == "queue:4"  # ... and queue:2 stays skipped
        assert rows(db, "SELECT queue_id, decision FROM reviews ORDER BY id")[4:] == [(3, None), (3, "exclude")]

        # Suspect labels: keep the first group's label, then settle a group of three with one key
        page.goto(app.url + "/queue/suspect")
        page.keyboard.press("k")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert "settles 3 products" in page.locator("#group").inner_text()
        page.screenshot(path=shots / "review-suspect.png")
        suggestion = page.locator("input[data-key='1']").get_attribute("value")
        page.keyboard.press("1")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert "3 products filed as" in page.locator("#message").inner_text()
        app.kill()  # committed before the page answered: a killed server loses nothing
    copies = review_setup.groups["copies"]
    audit_rows = rows(db, "SELECT product_id, decision FROM reviews WHERE source = 'audit' ORDER BY id")
    assert audit_rows[1:] == [(pid, suggestion) for pid in copies] and audit_rows[0][0] == review_setup.groups[
        "first"][0]
    assert errors == []
    keep_screenshots(shots)


def keep_screenshots(shots: Path) -> None:
    """Copy the screenshots to $SHOPSTYLE_SCREENSHOTS when set, in a 256-colour palette (small committed files)."""
    target = os.environ.get("SHOPSTYLE_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            with Image.open(shot) as image:
                image.convert("RGB").quantize(256).save(Path(target) / shot.name, optimize=True)


def sign_in(page, url: str, name: str = "ana") -> None:
    page.goto(url + "/")
    page.fill("input[name=name]", name)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def test_an_error_keeps_the_card_and_the_keys_and_the_search_finds_names(review_setup, tmp_path, browser_page):
    """A leaf that does not exist, or Enter with nothing chosen, is refused beside its card, whose keys then decide
    it (before, the error page left only u, which undid an earlier decision); the refusal is a redirect to the card's
    own page (before, the page stood at the form's URL, and a reload posted the form again); the search finds a leaf
    by its name and the arrows pick it."""
    page, errors = browser_page
    db = copy_db(review_setup.db, tmp_path / "crawl.db")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with ReviewProcess("--db", db, "--model", review_setup.model, "--images", review_setup.images) as app:
        sign_in(page, app.url)
        page.goto(app.url + "/queue/file")
        page.keyboard.press("x")
        with page.expect_navigation():
            page.keyboard.press("Enter")  # queue:1 excluded: an earlier decision that u would undo
        assert page.locator("#card").get_attribute("data-item") == "queue:2"
        with page.expect_navigation():
            page.keyboard.press("Enter")  # nothing chosen
        assert urlparse(page.url).path == "/queue/file"
        assert page.locator("#card").get_attribute("data-item") == "queue:2"
        assert page.locator("#card #error").is_visible()
        assert "choose a suggestion" in page.locator("#card #error").inner_text()
        page.keyboard.press("/")
        page.keyboard.type("cashmx")  # matches no leaf: sent as typed
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert urlparse(page.url).path == "/queue/file"  # the card's page, got: reloading it posts nothing
        assert parse_qs(urlparse(page.url).query)["prefer"] == ["queue:2"]
        assert page.locator("#card").get_attribute("data-item") == "queue:2"
        assert "'cashmx' is not a leaf category" in page.locator("#card #error").inner_text()
        page.screenshot(path=shots / "review-error.png")
        page.reload()  # a GET again: the same card and reason, nothing posted
        assert page.locator("#card").get_attribute("data-item") == "queue:2"
        assert page.locator("#card #error").is_visible()
        assert "'cashmx' is not a leaf category" in page.locator("#card #error").inner_text()
        assert rows(db, "SELECT queue_id, decision FROM reviews ORDER BY id") == [(1, "exclude")]
        page.keyboard.press("x")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert rows(db, "SELECT queue_id, decision FROM reviews ORDER BY id") == [(1, "exclude"), (2, "exclude")]

        page.keyboard.press("/")
        page.keyboard.type("sneakers")  # the leaf's name: its id is womens-sneakers
        options = page.locator("#leaf-list [role=option]:not([hidden])")
        assert options.count() >= 1 and "Sneakers" in options.first.inner_text()
        page.keyboard.type(" shoes")  # and a word of its path
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowUp")
        chosen = page.locator("#leaf-list [aria-selected=true]").get_attribute("data-leaf")
        assert chosen == "womens-sneakers"
        page.screenshot(path=shots / "review-search.png")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert rows(db, "SELECT queue_id, decision FROM reviews ORDER BY id")[2:] == [(3, "womens-sneakers")]
    assert errors == []  # the refusals were redirects to pages, not error answers
    keep_screenshots(shots)


def test_a_page_of_a_rebound_host_name_cannot_decide(review_setup, tmp_path):
    """DNS rebinding: the attacker's page at rebound.attacker.example, whose name now resolves to 127.0.0.1, is in the
    same origin as the app's port; its script reads the queue and posts a decision: both refused, nothing written.
    Chromium's own local network checks are off here, as in browsers without them (Firefox, Safari): the app
    must refuse by itself."""
    from playwright.sync_api import sync_playwright

    db = copy_db(review_setup.db, tmp_path / "crawl.db")
    with ReviewProcess("--db", db, "--model", review_setup.model, "--images", review_setup.images) as app, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            *FLAGS, "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests"])
        page = browser.new_page()
        attack = f"http://{REBOUND}:{app.url.rsplit(':', 1)[1]}/cute-cats"
        page.route(attack, lambda route: route.fulfill(status=200, content_type="text/html",
                                                       body="<title>cute cats</title>"))  # the attacker's server
        page.goto(attack)
        statuses = page.evaluate("""async () => {
            const queue = await fetch("/api/queue");
            const cards = queue.ok ? (await queue.json()).cards : [];
            const decision = await fetch("/api/reviews", {method: "POST", headers: {"Content-Type": "application/json"},
                body: JSON.stringify({queue: "file", item: cards.length ? cards[0].item : "queue:1",
                                      decision: "exclude", reviewer: "ana", seen: 0})});
            return [queue.status, decision.status];
        }""")
        browser.close()
    assert statuses == [400, 400]
    assert rows(db, "SELECT count(*) FROM reviews") == [(0,)]


def test_the_sign_in_page_asks_each_reviewer_for_their_own_token(review_setup, tmp_path, browser_page):
    page, errors = browser_page
    db = copy_db(review_setup.db, tmp_path / "crawl.db")
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("ana=ana-token-0123456789\nbob=bob-token-9876543210\n")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with ReviewProcess("--db", db, "--model", review_setup.model, "--images", review_setup.images,
                       "--tokens", tokens) as app:
        page.goto(app.url + "/")
        assert page.url == app.url + "/login"
        # type at once: Chromium applies autofocus at the first frame after the load, which page.goto may return
        # before, so the test waits for it (and fails if the name field never gets it)
        page.wait_for_function("document.activeElement && document.activeElement.name === 'name'", timeout=10_000)
        page.keyboard.type("ana")
        page.keyboard.press("Tab")
        page.keyboard.type("bob-token-9876543210")  # bob's token does not make anyone ana
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert "not this reviewer's token" in page.locator("#error").inner_text()
        page.screenshot(path=shots / "review-login.png")
        page.fill("input[name=token]", "ana-token-0123456789")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert "Signed in as ana" in page.locator(".reviewer").inner_text()
        assert "ana-token" not in "\n".join(app.log)  # never logged
    assert set(errors) == {f"403 {app.url}/login",  # bob's token, and nothing else
                           "Failed to load resource: the server responded with a status of 403 (Forbidden)"}
    keep_screenshots(shots)
