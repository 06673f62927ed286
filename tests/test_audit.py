"""The label audit, reviewed labels and their CSV files, on real copies of a synthetic sandbox crawl."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing

import numpy as np
import pandas as pd
import pytest

from modeling import audit, reviews, store, train
from modeling.data import load_products, split_of, with_reviewed_labels
from modeling.reviews import latest_decisions, record_decision
from shopstyle_spider.config import PROJECT_ROOT


@pytest.fixture
def crawl_copy(synthetic_crawl, tmp_path):
    """A private copy of the synthetic crawl's database (audits and reviews write into it)."""
    source, images, _ = synthetic_crawl
    db = tmp_path / "crawl.db"
    with closing(sqlite3.connect(source)) as original, closing(sqlite3.connect(db)) as copy:
        original.backup(copy)
    return db, images


def flip(db, count: int, seed: int) -> dict[int, tuple[str, str]]:
    """Give ``count`` random products another random leaf in the crawl itself: product -> (true, flipped)."""
    rng = np.random.default_rng(seed)
    with closing(sqlite3.connect(db)) as connection, connection:
        products = connection.execute("SELECT id, category_id FROM products ORDER BY id").fetchall()
        leaves = sorted(row[0] for row in connection.execute("SELECT id FROM categories WHERE is_leaf = 1"))
        flips = {}
        for index in rng.choice(len(products), count, replace=False):
            product, true = products[index]
            flipped = rng.choice([leaf for leaf in leaves if leaf != true])
            flips[product] = (true, str(flipped))
            connection.execute("UPDATE products SET category_id = ? WHERE id = ?", (str(flipped), product))
    return flips


def test_the_audit_finds_injected_flips_and_records_them(crawl_copy, tmp_path, capsys):
    db, images = crawl_copy
    flips = flip(db, 30, seed=1)
    page = tmp_path / "audit.html"
    assert audit.main(["--db", str(db), "--images", str(images), "--image-backbone", "none", "--folds", "3",
                       "--json", "--html", str(page), "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    suspects = {s["product_id"]: s for s in report["suspects"]}
    assert not any(split_of(p) == "test" for p in suspects)  # test labels score the model: never shown to relabel
    listable = {p: f for p, f in flips.items() if split_of(p) != "test"}
    found = set(listable) & set(suspects)
    assert len(found) >= 0.8 * len(listable), f"found {len(found)} of {len(listable)} flips"
    # the suggestion is the label the flip replaced, for nearly all of them
    assert sum(suspects[p]["suggested_label"] == flips[p][0] for p in found) >= 0.8 * len(found)
    assert all(suspects[p]["given_label"] == flips[p][1] for p in found)
    ranks = [s["rank"] for s in report["suspects"]]
    assert ranks == list(range(1, len(ranks) + 1))
    qualities = [s["quality"] for s in report["suspects"]]
    assert qualities == sorted(qualities)  # worst first: self-confidence rising
    assert all(s["group_key"].startswith(audit.group_key(s["name"]) + "/") for s in report["suspects"])
    summary = report["summary"]
    assert summary["products_audited"] == 27 * 50 and summary["suspects"] == len(suspects)
    pair = summary["overlapping_pairs"][0]
    assert {"category_a", "category_b", "overlapping", "joint_probability"} <= set(pair)
    with closing(sqlite3.connect(db)) as connection:
        (audit_id, parameters, stored_summary), = connection.execute("SELECT id, parameters, summary FROM audits")
        rows = connection.execute("SELECT product_id, given_label, suggested_label, rank FROM label_issues "
                                  "WHERE audit_id = ? ORDER BY rank", (audit_id,)).fetchall()
        crawled = dict(connection.execute("SELECT id, category_id FROM products"))
    assert audit_id == report["audit_id"] and json.loads(parameters)["folds"] == 3
    assert json.loads(stored_summary)["suspects"] == len(rows) == len(suspects)
    assert all(crawled[product] == given for product, given, _, _ in rows)  # the crawl's labels are untouched
    html = page.read_text(encoding="utf-8")
    first = report["suspects"][0]
    assert html.count("<tr>") == len(suspects) + 1 and first["given_label"] in html
    assert "data:image/jpeg;base64," in html  # photos embedded


def test_a_product_a_person_decided_is_never_a_suspect_again():
    rng = np.random.default_rng(0)
    n = 60
    labels = np.array(["a", "b"] * (n // 2))
    proba = np.where((labels == "a")[:, None], [0.9, 0.1], [0.1, 0.9]) + rng.uniform(0, 0.01, (n, 2))
    proba[[0, 2]] = [0.02, 0.98]  # products 0 and 2 say "a" but look like "b"
    frame = pd.DataFrame({"id": np.arange(n), "name": [f"Item {i}" for i in range(n)], "description": "",
                          "image_path": None, "category": labels, "reviewed": np.arange(n) == 0})
    result = audit.audit_labels(frame, proba / proba.sum(1, keepdims=True), np.array(["a", "b"]))
    assert result.suspects["product_id"].tolist() == [2]  # 0 was confirmed by a person
    assert result.suspects["suggested_label"].tolist() == ["b"] and result.audited == n


def test_reviewed_labels_change_what_training_learns_and_are_counted(crawl_copy, tmp_path):
    db, images = crawl_copy
    products = load_products(db, images)
    bootcut, other_jeans = "bootcut-jeans", "skinny-jeans"
    chosen = [bootcut, other_jeans, "day-dresses", "evening-dresses"]
    subset = products[products["category"].isin(chosen)]
    moved = subset[(subset["category"] == bootcut) & (subset["split"] != "test")]["id"].tolist()
    tests = subset[subset["split"] == "test"]
    excluded = tests[tests["category"] == "evening-dresses"]["id"].head(3).tolist()
    relabelled = int(tests[tests["category"] == "day-dresses"]["id"].iloc[0])
    confirmed = int(tests[tests["category"] == other_jeans]["id"].iloc[0])
    undone = int(tests[tests["category"] == other_jeans]["id"].iloc[1])
    with closing(store.connect(db)) as connection, connection.begin():
        for product in moved:  # every bootcut product outside the test split is really another kind of jeans
            record_decision(connection, product_id=int(product), decision=other_jeans, source="audit",
                            reviewer="ana", replaces=bootcut)
        for product in excluded:
            record_decision(connection, product_id=int(product), decision=store.EXCLUDE, source="manual",
                            reviewer="ana")
        record_decision(connection, product_id=relabelled, decision="evening-dresses", source="audit", reviewer="ana")
        record_decision(connection, product_id=confirmed, decision=other_jeans, source="audit", reviewer="ana")
        record_decision(connection, product_id=undone, decision="evening-dresses", source="audit", reviewer="ana")
        record_decision(connection, product_id=undone, decision=None, source="audit", reviewer="ana")  # undo

    reviewed = with_reviewed_labels(products, db)
    by_id = reviewed.set_index("id")
    assert not set(excluded) & set(by_id.index) and len(reviewed) == len(products) - len(excluded)
    assert (by_id.loc[moved, "category"] == other_jeans).all() and by_id.at[relabelled, "category"] == "evening-dresses"
    assert by_id.at[relabelled, "crawled_category"] == "day-dresses" and by_id.at[undone, "category"] == other_jeans
    assert by_id.at[relabelled, "parent"] == "dresses" and by_id.at[relabelled, "path"].endswith("/evening-dresses")

    out = tmp_path / "models"
    common = ["--db", str(db), "--images", str(images), "--image-backbone", "none", "--out", str(out), "--cv", "3",
              "--categories", ",".join(chosen), "--min-products", "5", "--no-progress"]
    assert train.main(common) == 0  # reviews exist: reviewed labels by default
    card = json.loads((out / "1.json").read_text())
    parameters = card["parameters"]
    assert parameters["labels"] == "reviewed" and parameters["excluded"] == len(excluded)
    assert parameters["reviewed_labels"] == len(moved) + 2 and parameters["relabelled"] == len(moved) + 1
    assert bootcut not in card["categories"]  # nothing left to learn it from: only its test products say bootcut
    with closing(sqlite3.connect(db)) as connection:
        true = dict(connection.execute("SELECT product_id, true_category FROM predictions WHERE experiment_id = 1"))
    assert not set(excluded) & set(true) and true[relabelled] == "evening-dresses"
    assert set(card["metrics"]) == {"validation", "test", "test_crawled_labels"}
    assert card["metrics"]["test_crawled_labels"]["stacked"]["n"] == card["metrics"]["test"]["stacked"]["n"]

    assert train.main([*common, "--labels", "crawled"]) == 0
    card = json.loads((out / "2.json").read_text())
    assert card["parameters"]["labels"] == "crawled" and bootcut in card["categories"]
    assert "reviewed_labels" not in card["parameters"] and "test_crawled_labels" not in card["metrics"]


def reviews_cli(*args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modeling.reviews", *map(str, args)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, input=stdin, timeout=120)


def test_a_csv_import_reports_each_bad_row_by_line_and_imports_the_others(crawl_copy, tmp_path):
    db, _ = crawl_copy
    with closing(sqlite3.connect(db)) as connection:
        (first, first_label), (second, _), (third, _) = connection.execute(
            "SELECT id, category_id FROM products ORDER BY id LIMIT 3").fetchall()
    source = tmp_path / "decisions.csv"
    source.write_text("\n".join([
        "product_id,decision,source,reviewer",
        f"{first},skinny-jeans,audit,ana",  # 2: good
        f"{second},no-such-leaf,audit,ana",  # 3: unknown category
        "999999999,skinny-jeans,audit,ana",  # 4: not in the crawl
        "abc,skinny-jeans,audit,ana",  # 5: not a number
        f"{second},exclude,,",  # 6: good (source manual, reviewer from --reviewer)
        f"{third},skinny-jeans,robot,ana",  # 7: unknown source
        f"{third},women,audit,ana",  # 8: a category that is not a leaf
        f"{third},skinny-jeans,audit,ana,extra",  # 9: too many fields
        f"{first},,audit,ana",  # 10: good, an undo of line 2
    ]) + "\n", encoding="utf-8")
    result = reviews_cli("import", source, "--db", db, "--reviewer", "bo")
    assert result.returncode == 1, result.stderr
    refused = {int(line.split(":")[2]) for line in result.stderr.splitlines() if f"{source}:" in line}
    assert refused == {3, 4, 5, 7, 8, 9}
    assert "no-such-leaf" in result.stderr and "3 decisions imported, 6 rows refused" in result.stderr
    with closing(store.connect(db, readonly=True)) as connection:
        assert latest_decisions(connection) == {second: store.EXCLUDE}  # the first product's decision was undone

    exported = tmp_path / "out.csv"
    result = reviews_cli("export", exported, "--db", db)
    assert result.returncode == 0 and "3 review rows exported" in result.stderr
    before = tmp_path / "before.csv"  # --db before the action is the same command (people type both)
    assert reviews.main(["--db", str(db), "export", str(before)]) == 0
    assert before.read_bytes() == exported.read_bytes()
    rows = pd.read_csv(exported, dtype=str, keep_default_na=False)
    assert rows["decision"].tolist() == ["skinny-jeans", "exclude", ""]
    assert rows["replaces"].tolist() == [first_label, rows["replaces"][1], "skinny-jeans"]
    assert rows["reviewer"].tolist() == ["ana", "bo", "ana"] and rows["source"].tolist() == ["audit", "manual",
                                                                                              "audit"]
    # what was exported imports into another copy as the same decisions
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(db)) as original, closing(sqlite3.connect(other)) as copy:
        original.backup(copy)
        copy.execute("DELETE FROM reviews")
        copy.commit()
    assert reviews_cli("import", exported, "--db", other).returncode == 0
    with closing(store.connect(other, readonly=True)) as connection:
        assert latest_decisions(connection) == {second: store.EXCLUDE}


def test_suspect_groups_are_copies_of_one_product_not_one_name():
    """Two different "Northwind Bag"s (a shoulder bag without a photo, a clutch with one) are two cards; a copy of
    the clutch (same photo) joins it; one with the same text but another brand stays apart."""
    n = 40
    labels = np.array(["a", "b"] * (n // 2))
    proba = np.where((labels == "a")[:, None], [0.95, 0.05], [0.05, 0.95])
    suspect = [0, 2, 4, 6]
    proba[suspect] = [0.02, 0.98]
    frame = pd.DataFrame({"id": np.arange(n), "name": [f"Item {i}" for i in range(n)], "brand": "Northwind",
                          "description": "", "image_path": None, "category": labels})
    frame.loc[suspect, "name"] = "Northwind  <b>Bag</b>"
    frame.loc[0, "description"] = "a roomy shoulder bag"
    frame.loc[[2, 4], "image_path"] = "full/clutch.jpg"
    frame.loc[6, ["description", "brand"]] = ["a roomy shoulder bag", "Southwind"]
    result = audit.audit_labels(frame, proba, np.array(["a", "b"]))
    groups = result.suspects.set_index("product_id")["group_key"]
    assert groups[2] == groups[4] == "northwind bag/2" and groups[0] == "northwind bag/0"
    assert groups[6] == "northwind bag/6" and result.summary()["groups"] == 3
