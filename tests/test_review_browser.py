"""The review app in a real browser: Debian's Chromium, headless, driven by Playwright against the app served by
uvicorn in a subprocess. Decisions are made with the keys, undone, checked in the database, and survive the
server being killed; hostile product text never runs. Screenshots of each page are saved (set
``SHOPSTYLE_SCREENSHOTS=docs/screenshots`` to refresh the README's)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from modeling.review.process import ReviewProcess

from .review_fixtures import copy_db

CHROMIUM = os.environ.get("SHOPSTYLE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

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
    target = os.environ.get("SHOPSTYLE_SCREENSHOTS")
    if target:  # a 256-colour palette keeps the committed files small
        Path(target).mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            with Image.open(shot) as image:
                image.convert("RGB").quantize(256).save(Path(target) / shot.name, optimize=True)
