"""``modeling.analyze`` on a real sqlite database whose experiments are small enough to compute by hand."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from html.parser import HTMLParser

import pytest
from PIL import Image

from modeling import analyze, store
from modeling.filing import guaranteed_threshold
from modeling.metrics import coverage_at_accuracy

HOSTILE_NAME = "<script>alert(1)</script> Bootcut"
HOSTILE_DESCRIPTION = '<img src=x onerror="alert(2)"><b>stretch</b> &amp; denim'
# (product, true, stacked prediction, score, text prediction, text score, image prediction, image score,
#  most probable parent, its probability)
EXPERIMENT_1 = [
    (1, "skinny-jeans", "skinny-jeans", 0.95, "skinny-jeans", 0.9, "skinny-jeans", 0.7, "jeans", 0.97),
    (2, "bootcut-jeans", "skinny-jeans", 0.90, "skinny-jeans", 0.8, None, None, "jeans", 0.95),
    (3, "maxi-dresses", "maxi-dresses", 0.80, "midi-dresses", 0.6, "maxi-dresses", 0.9, "dresses", 0.90),
    (4, "midi-dresses", "skinny-jeans", 0.70, "skinny-jeans", 0.5, None, None, "jeans", 0.75),
    (5, "midi-dresses", "midi-dresses", 0.60, "midi-dresses", 0.7, None, None, "dresses", 0.85),
]
EXPERIMENT_2 = [(p, true, true, 0.99, true, 0.9, None, None, true.split("-")[1], 0.995)
                for p, true, *_ in EXPERIMENT_1]
# thresholds "chosen on validation" for experiment 1: on the rows above, leaf >= 0.9 files products 1 (right) and
# 2 (wrong), parent >= 0.8 files 3 and 5 (right), 4 goes to review
FILING_1 = {"0.95": {"leaf": 0.9, "parent": 0.8}}


@pytest.fixture
def db(tmp_path):
    """A crawl database with a two-parent tree, five products (one hostile, one with a photo) and two experiments."""
    path = tmp_path / "crawl.db"
    images = tmp_path / "images"
    (images / "full").mkdir(parents=True)
    Image.new("RGB", (20, 30), (200, 30, 30)).save(images / "full" / "2.jpg")
    now = "2026-11-24T00:00:00"
    store.connect(path).close()  # the project's schema, then rows written as any sqlite client would
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.executemany("INSERT INTO categories (id, name, parent_id, is_leaf, path, first_seen, last_seen) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)", [
            ("women", "Women", None, 0, "women", now, now),
            ("jeans", "Jeans", "women", 0, "women/jeans", now, now),
            ("dresses", "Dresses", "women", 0, "women/dresses", now, now),
            *[(leaf, leaf, parent, 1, f"women/{parent}/{leaf}", now, now) for leaf, parent in (
                ("skinny-jeans", "jeans"), ("bootcut-jeans", "jeans"), ("maxi-dresses", "dresses"),
                ("midi-dresses", "dresses"))]])
        for product, true, *_ in EXPERIMENT_1:
            connection.execute(
                "INSERT INTO products (id, name, description, category_id, image_path, image_status, first_seen, "
                "last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (product, HOSTILE_NAME if product == 2 else f"product {product}",
                 HOSTILE_DESCRIPTION if product == 2 else "", true, "full/2.jpg" if product == 2 else None,
                 "ok" if product == 2 else "none", now, now))
        for experiment, rows in ((1, EXPERIMENT_1), (2, EXPERIMENT_2)):
            metrics = {"filing": FILING_1} if experiment == 1 else {}
            connection.execute("INSERT INTO experiments VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (experiment, f"exp{experiment}", now, json.dumps({"model": "stacked"}), "{}",
                                json.dumps(metrics), None))
            connection.executemany("INSERT INTO predictions VALUES (?, ?, 'test', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                   [(experiment, *row) for row in rows])
    return path, images


def run(capsys, *args) -> tuple[int, str, str]:
    code = analyze.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_coverage_is_exact_and_never_splits_equal_scores():
    # sorted by score: right, wrong, right, wrong, right -> running accuracy 1, .5, .67, .5, .6
    correct, scores = [1, 0, 1, 0, 1], [0.95, 0.9, 0.8, 0.7, 0.6]
    assert coverage_at_accuracy(correct, scores, 0.95).coverage == 0.2
    assert coverage_at_accuracy(correct, scores, 0.6).coverage == 1.0
    assert coverage_at_accuracy(correct, scores, 0.65).coverage == 0.6
    assert coverage_at_accuracy(correct, scores, 0.65).threshold == 0.8
    tied = coverage_at_accuracy([1, 0, 1], [0.9, 0.9, 0.5], 0.95)
    assert tied.coverage == 0.0 and tied.threshold is None  # the two 0.9s go together: 50% accurate


def test_the_report_figures_equal_the_hand_computed_ones(db, capsys):
    path, _ = db
    code, out, _ = run(capsys, "--db", path, "--json")
    assert code == 0
    report = json.loads(out)
    first = {e["id"]: e for e in report["experiments"]}[1]["figures"]
    stacked = first["stacked"]
    assert stacked["n"] == 5 and stacked["accuracy"] == pytest.approx(0.6)
    assert (stacked["coverage_95"], stacked["threshold_95"]) == (0.2, 0.95)
    assert (stacked["coverage_98"], stacked["threshold_98"]) == (0.2, 0.95)
    # parents by parent probability: jeans .97, jeans .95, dresses .90, dresses .85 (right), jeans .75 (wrong for
    # a midi dress) -> accurate 1, 1, 1, 1, .8: 4 of 5 covered at 95% and 98%
    assert stacked["parent_accuracy"] == pytest.approx(0.8)
    assert stacked["parent_coverage_95"] == pytest.approx(0.8) and stacked["parent_coverage_98"] == pytest.approx(0.8)
    assert "parent_accuracy" not in first["text"]  # a branch has no recorded parent probabilities
    decisions = {e["id"]: e["decisions"] for e in report["experiments"]}
    assert decisions[2] == []  # no thresholds recorded
    (at95,) = decisions[1]
    assert (at95["leaf_share"], at95["leaf_accuracy"]) == (pytest.approx(0.4), pytest.approx(0.5))
    assert (at95["parent_share"], at95["parent_accuracy"]) == (pytest.approx(0.4), 1.0)
    assert at95["review_share"] == pytest.approx(0.2) and at95["leaf_threshold"] == 0.9
    # a leaf-only shop (train --levels leaf): what the parent filed goes to a person instead, and the title says so
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("UPDATE experiments SET parameters = json_set(parameters, '$.levels', 'leaf') WHERE id = 1")
    code, out, _ = run(capsys, "--db", path, "--json")
    (leaf_only,) = {e["id"]: e["decisions"] for e in json.loads(out)["experiments"]}[1]
    assert (leaf_only["leaf_share"], leaf_only["parent_share"]) == (pytest.approx(0.4), 0.0)
    assert leaf_only["review_share"] == pytest.approx(0.6) and leaf_only["parent_never"] == "left out by --levels"
    code, out, _ = run(capsys, "--db", path)
    assert "at the leaf only (--levels leaf):" in out
    assert first["text"]["accuracy"] == pytest.approx(0.4)
    assert first["image"]["n"] == 2 and first["image"]["accuracy"] == 1.0
    assert "image" not in {e["id"]: e for e in report["experiments"]}[2]["figures"]


def test_the_text_report_and_one_experiment_in_detail(db, capsys):
    path, _ = db
    code, out, err = run(capsys, "--db", path, "--experiment", 1)
    assert code == 0 and "5 predictions analysed" not in err and "10 predictions analysed" in err
    assert "experiment 1: exp1" in out and "experiment 2: exp2" in out
    detail = out.split("experiment 1: per category")[1]
    assert "bootcut-jeans     0.0000  0.0000 0.0000        1" in detail
    assert " midi-dresses skinny-jeans      1         0.5000" in detail
    code, out, _ = run(capsys, "--db", path, "--experiment", 1, "--json")
    categories = {c["category"]: c for c in json.loads(out)["experiment"]["categories"]}
    assert categories["midi-dresses"]["recall"] == 0.5 and categories["skinny-jeans"]["precision"] == pytest.approx(
        1 / 3)
    pairs = json.loads(out)["experiment"]["confused_pairs"]
    assert {(p["true"], p["predicted"]) for p in pairs} == {("bootcut-jeans", "skinny-jeans"),
                                                           ("midi-dresses", "skinny-jeans")}


class _TagBalance(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.scripts, self.problems = [], 0, []

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        if any(name.startswith("on") for name, _ in attrs):
            self.problems.append(f"event handler in <{tag}>")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"unbalanced </{tag}>")


def test_the_error_page_is_well_formed_and_shows_hostile_text_as_text(db, tmp_path, capsys):
    path, images = db
    page = tmp_path / "errors.html"
    code, out, _ = run(capsys, "--db", path, "--images", images, "--experiment", 1, "--errors", 5, "--html", page)
    assert code == 0 and f"wrote {page}" in out
    html = page.read_text(encoding="utf-8")
    checker = _TagBalance()
    checker.feed(html)
    checker.close()
    assert checker.problems == [] and checker.stack == [] and checker.scripts == 0
    assert "<script>" not in html and "onerror" not in html  # the tags of the crawled text are gone
    assert "alert(1) Bootcut" in html and "stretch &amp; denim" in html  # cleaned, then escaped once
    assert html.count('src="data:image/jpeg;base64,') == 1  # product 2's photo, embedded
    assert html.index("90.0%") < html.index("70.0%")  # the most confident error first, as percentages


def test_plots_are_real_pngs_brought_together_by_an_index(db, tmp_path, capsys):
    path, images = db
    folder = tmp_path / "report"
    code, out, _ = run(capsys, "--db", path, "--images", images, "--plots", folder)
    assert code == 0
    for chart in ("accuracy_coverage.png", "category_f1.png", "confusion.png"):
        with Image.open(folder / chart) as image:
            assert image.format == "PNG" and image.size[0] > 300
            image.verify()
    index = (folder / "index.html").read_text(encoding="utf-8")
    assert all(f'src="{chart}"' in index for chart in ("accuracy_coverage.png", "category_f1.png", "confusion.png"))
    assert 'href="errors.html"' in index and (folder / "errors.html").is_file()
    assert "Experiment 2: exp2" in index  # --plots without --experiment details the latest one
    assert "<th>Filed alone at 95% accuracy</th>" in index and "coverage_95" not in index  # readable headings
    assert '<td class="num">100.0%</td>' in index and "1.0000" not in index  # shares as percentages
    # the decisions of the experiment that chose thresholds, none for the one that did not
    assert "Experiment 1: auto-filing decisions" in index and "Experiment 2: auto-filing decisions" not in index
    assert "<th>Sent to a person</th>" in index and "review_share" not in index


def test_a_level_that_never_files_says_never_and_why_in_the_report(db, tmp_path, capsys):
    """A card whose leaf level never files at 99% (too few products to promise it, as ``guaranteed_threshold``
    says): the report's cell says so in words, where a blank would read as a figure left out."""
    path, images = db
    never = guaranteed_threshold([1] * 5, [0.95, 0.9, 0.8, 0.7, 0.6], 0.99, 0.95)
    assert never["threshold"] is None
    filing = {**FILING_1, "0.99": {"leaf": None, "leaf_bound": None, "leaf_never": never["never"], "parent": 0.8,
                                   "parent_bound": 0.9912}}
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("UPDATE experiments SET metrics = ? WHERE id = 1", (json.dumps({"filing": filing}),))
    folder = tmp_path / "report"
    code, _, _ = run(capsys, "--db", path, "--images", images, "--plots", folder)
    assert code == 0
    index = (folder / "index.html").read_text(encoding="utf-8")
    assert f"<td>never: {never['never']}</td>" in index
    assert index.count("<td>never") == 1  # the leaf at 99% only: the other levels file
    # no blank cell anywhere: a figure that does not apply (a branch's parent figures) says so as the console does
    assert '<td class="num"></td>' not in index and "<td></td>" not in index and '<td class="num">–</td>' in index
    assert "<th>Parent accuracy promised</th>" in index and '<td class="num">99.1%</td>' in index  # a share


def test_compare_sets_two_experiments_side_by_side(db, capsys):
    path, _ = db
    code, out, _ = run(capsys, "--db", path, "--compare", 1, 2, "--json")
    assert code == 0
    difference = json.loads(out)["compare"]["difference"]
    assert difference["stacked"]["accuracy"] == pytest.approx(0.4)
    assert difference["stacked"]["coverage_95"] == pytest.approx(0.8)
    code, out, _ = run(capsys, "--db", path, "--compare", 1, 2)
    assert "experiment 1 vs 2" in out and "difference" in out and "not scored on the same labels" not in out
    assert "test split scored on crawled labels" in out


def test_compare_says_when_two_experiments_were_scored_on_different_labels(db, capsys):
    path, _ = db
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("UPDATE experiments SET parameters = ? WHERE id = 2", (json.dumps(
            {"model": "stacked", "labels": "reviewed", "reviewed_labels": 2, "relabelled": 1, "excluded": 0,
             "file_products": 1}),))
    code, out, _ = run(capsys, "--db", path, "--compare", 1, 2)
    assert code == 0 and "WARNING: not scored on the same labels: #1 on crawled labels, #2 on reviewed labels " \
                         "(2 decided, 1 relabelled, 0 excluded, 1 from files)" in out
    code, out, _ = run(capsys, "--db", path, "--compare", 1, 2, "--json")
    compared = json.loads(out)["compare"]
    assert compared["same_labels"] is False and compared["b_labels"].startswith("reviewed labels")


def test_bad_requests_get_a_clear_error(db, tmp_path, capsys):
    path, _ = db
    code, _, err = run(capsys, "--db", path, "--experiment", 9)
    assert code == 2 and "no experiment 9 (there are 1, 2)" in err
    empty = tmp_path / "empty.db"
    store.connect(empty).close()
    code, _, err = run(capsys, "--db", empty)
    assert code == 2 and "no experiments yet" in err
    code, _, err = run(capsys, "--db", tmp_path / "absent.db")
    assert code == 2 and "no crawl database there" in err


def test_the_error_page_finds_photos_in_the_image_store_the_experiment_recorded(db, tmp_path, capsys):
    path, images = db
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("UPDATE experiments SET parameters = ?", (json.dumps({"images": str(images)}),))
    page = tmp_path / "errors.html"
    code, _, _ = run(capsys, "--db", path, "--experiment", 1, "--html", page)  # no --images
    assert code == 0 and page.read_text(encoding="utf-8").count('src="data:image/jpeg;base64,') == 1


def test_a_database_from_before_the_parent_columns_gains_them_and_its_old_experiments_still_report(tmp_path, capsys):
    path = tmp_path / "old.db"
    store.connect(path).close()
    with closing(sqlite3.connect(path)) as connection, connection:  # the predictions table as it was created before
        connection.execute("DROP TABLE predictions")
        connection.execute("CREATE TABLE predictions (experiment_id INTEGER, product_id BIGINT, split TEXT, "
                           "true_category TEXT, predicted_category TEXT, score FLOAT, text_category TEXT, "
                           "text_score FLOAT, image_category TEXT, image_score FLOAT)")
        connection.execute("INSERT INTO experiments VALUES (1, 'old', '2026-11-01', '{}', '{}', '{}', NULL)")
        connection.execute("INSERT INTO predictions VALUES (1, 7, 'test', 'a', 'a', 0.9, 'a', 0.9, NULL, NULL)")
    code, out, _ = run(capsys, "--db", path, "--json")  # read-only: nothing is added yet
    assert code == 0 and "parent_accuracy" not in json.loads(out)["experiments"][0]["figures"]["stacked"]
    store.connect(path).close()  # opened for writing, as training does
    with closing(sqlite3.connect(path)) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(predictions)")]
        assert columns[-2:] == ["parent_category", "parent_score"]
        assert connection.execute("SELECT parent_score FROM predictions").fetchall() == [(None,)]
    code, out, _ = run(capsys, "--db", path, "--json")
    assert code == 0 and json.loads(out)["experiments"][0]["figures"]["stacked"]["accuracy"] == 1.0
