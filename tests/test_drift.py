"""Drift (modeling.drift, ``analyze --drift``): a week like the validation split is not flagged, a shifted one is.

The "weeks" are products of the synthetic crawl whose ``first_seen`` is moved after the model's training, in a copy
of the review fixtures' database (a real text-only model trained by ``modeling.train``).
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from modeling import analyze
from modeling.data import split_of

from .review_fixtures import copy_db

LATER = "2099-01-01T00:00:00+00:00"


@pytest.fixture
def db(review_setup, tmp_path):
    return copy_db(review_setup.db, tmp_path / "crawl.db")


def arrive(db, ids) -> None:
    with sqlite3.connect(db) as connection:
        connection.executemany("UPDATE products SET first_seen = ? WHERE id = ?", [(LATER, i) for i in ids])


def drift_of(db, capsys, *options: str) -> dict:
    assert analyze.main(["--db", str(db), "--drift", "--json", *options]) == 0
    return json.loads(capsys.readouterr().out)


def analyze_lines(db, capsys) -> list[str]:
    assert analyze.main(["--db", str(db), "--drift"]) == 0
    return capsys.readouterr().out.splitlines()


def test_no_new_products_is_said_plainly(db, capsys):
    assert "no products first seen since" in "\n".join(analyze_lines(db, capsys))


def test_a_week_drawn_like_the_validation_split_is_not_drift(db, capsys):
    with sqlite3.connect(db) as connection:
        ids = [i for (i,) in connection.execute("SELECT id FROM products") if split_of(i) == "test"]
    arrive(db, ids)
    found = drift_of(db, capsys)
    assert found["recent_products"] == len(ids) > 100
    assert found["drift"] is False, found
    assert found["categories"]["chi2_p_value"] > 0.01
    assert found["unseen_words"]["recent"] < 0.2  # the same catalog: most words were seen in training


def test_a_week_of_three_categories_with_new_words_is_drift(db, capsys, tmp_path):
    with sqlite3.connect(db) as connection:
        ids = [i for (i,) in connection.execute(
            "SELECT id FROM products WHERE category_id IN ('boots', 'sandals', 'pumps') ORDER BY id")
            if split_of(i) != "validation"]  # the validation split is the baseline: it stays as it was
        # a retailer whose feed names its products in words the catalog never used
        connection.executemany("UPDATE products SET name = name || ' zorblax quintessa vortimer', description = "
                               "'glimmerfax tovenquist' WHERE id = ?", [(i,) for i in ids])
    arrive(db, ids)
    found = drift_of(db, capsys)
    assert found["drift"] is True
    assert found["categories"]["chi2_p_value"] < 0.01 and found["categories"]["psi"] > 0.25
    moved = {m["category"] for m in found["categories"]["moved"]}
    assert moved & {"boots", "sandals", "pumps"}
    assert found["unseen_words"]["recent"] > found["unseen_words"]["validation"] + 0.2
    page = tmp_path / "drift.html"
    assert analyze.main(["--db", str(db), "--drift", "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "DRIFT: the predicted categories moved beyond noise" in out
    html = page.read_text(encoding="utf-8")
    assert "Predicted categories whose share moved beyond noise" in html and "boots" in html


def test_a_week_named_in_words_the_model_never_saw_files_less(db, capsys):
    with sqlite3.connect(db) as connection:
        ids = [i for (i,) in connection.execute("SELECT id FROM products") if split_of(i) == "test"]
        connection.executemany("UPDATE products SET name = 'zorblax quintessa ' || id, description = NULL "
                               "WHERE id = ?", [(i,) for i in ids])
    arrive(db, ids)
    found = drift_of(db, capsys)
    fell = [key for key, f in found["filing"].items() if f["fell"]]
    assert fell and found["drift"] is True, found["filing"]
    assert found["unseen_words"]["recent"] == 1.0
    assert "DRIFT: filing at" in "\n".join(analyze_lines(db, capsys))
