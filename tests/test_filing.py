"""The auto-filing policy (``modeling.filing``): its thresholds' guarantee where the truth is known, its decisions on
a hand-built case."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from modeling import filing, train
from modeling.data import load_products
from modeling.filing import (
    FilingPolicyError,
    accuracy_lower_bound,
    batch_target,
    best_parents,
    choose_thresholds,
    decide,
    decision_figures,
    guaranteed_threshold,
    load_thresholds,
    never_files,
)
from modeling.metrics import branch_metrics

from .review_fixtures import copy_db

PARENTS = {"boots": "shoes", "flats": "shoes", "rings": None}
# (true leaf, predicted leaf, leaf score, most probable parent, its probability)
VALIDATION = [
    ("boots", "boots", 0.99, "shoes", 0.995),  # leaf right
    ("flats", "flats", 0.95, "shoes", 0.99),  # leaf right
    ("flats", "boots", 0.90, "shoes", 0.98),  # leaf wrong, parent right
    ("boots", "flats", 0.60, "shoes", 0.97),  # leaf wrong, parent right
    ("rings", "boots", 0.55, "shoes", 0.60),  # rings has no parent: never parent-correct
    ("rings", "rings", 0.50, None, 0.0),  # leaf right; no parent probability at all
]


def columns():
    true, leaf, score, parent, parent_score = zip(*VALIDATION, strict=True)
    return list(true), list(leaf), list(score), list(parent), list(parent_score)


def test_a_parent_probability_is_the_sum_of_its_leaves():
    classes = np.array(["boots", "flats", "rings"])
    proba = np.array([[0.3, 0.3, 0.4], [0.1, 0.1, 0.8]])
    parent, score = best_parents(proba, classes, PARENTS)
    assert parent.tolist() == ["shoes", "shoes"] and score == pytest.approx([0.6, 0.2])
    # the leaf alone (rings at 0.4) would lose to no parent: the parent's sum wins the first product at 0.6
    assert best_parents(proba, classes, {"boots": None, "flats": None, "rings": None})[0].tolist() == [None, None]


def test_the_bound_is_the_exact_clopper_pearson_one():
    for right, n in ((299, 299), (980, 1000), (1, 7), (0, 10)):
        exact = binomtest(right, n, alternative="greater").proportion_ci(0.95, method="exact").low
        assert accuracy_lower_bound(right, n, 0.95) == pytest.approx(exact, abs=1e-9)


def test_too_few_products_never_file_and_say_why():
    scores = np.linspace(1.0, 0.5, 300)
    thresholds = choose_thresholds(["boots"] * 300, ["boots"] * 300, scores, ["shoes"] * 300, scores,
                                   {"boots": "shoes"}, targets=(0.95, 0.99))
    # 300 products all right: a 97.5% one-sided bound of 98.8% promises 95%, not 99% (whose first test needs 1,164)
    assert thresholds["0.95"]["leaf"] == 0.5 and thresholds["0.95"]["leaf_bound"] >= 0.95
    assert thresholds["0.99"]["leaf"] is None and thresholds["0.99"]["parent"] is None
    assert "too few products to promise 99%: 300, where the first test needs 1164" in thresholds["0.99"]["leaf_never"]
    assert never_files(thresholds["0.99"])[0].startswith("the leaf level never files: too few products")
    assert decide([0.99], [0.99], thresholds["0.99"]).tolist() == ["review"]  # None: that level never files


def test_the_sequence_stops_at_the_first_failure_and_files_the_parent_below_the_leaf():
    rng = np.random.default_rng(0)
    n = 3000
    scores = np.sort(rng.uniform(0, 1, n))[::-1]
    leaf_ok = np.ones(n, dtype=bool)
    leaf_ok[1000:] = rng.uniform(size=n - 1000) < 0.6  # the surest 1,000 are all right, the rest 60%
    parent_ok = leaf_ok | (rng.uniform(size=n) < 0.99)  # the parent is almost always right
    true = np.where(leaf_ok, "boots", "flats")
    predicted = np.array(["boots"] * n, dtype=object)
    predicted_parent = np.where(parent_ok, "shoes", "bags").astype(object)
    parents = {"boots": "shoes", "flats": "shoes"}
    chosen = choose_thresholds(true, predicted, scores, predicted_parent, scores, parents, targets=(0.98,))["0.98"]
    # the leaf stops within a step of where the errors start, never past them
    assert scores[1100] <= chosen["leaf"] <= scores[900] and chosen["leaf_bound"] >= 0.98
    assert chosen["leaf_products"] == (scores >= chosen["leaf"]).sum()
    # below it, the parent level files what its own bound promises
    assert chosen["parent"] is not None and chosen["parent"] < chosen["leaf"] and chosen["parent_bound"] >= 0.98


def test_a_few_confident_errors_among_the_surest_do_not_stop_the_level(monkeypatch):
    """Ten label errors among the 1,559 surest products (where a catalog's confident mistakes sit) fail the first
    sequence's first test; the second sequence, beginning at four times as many products, files down to where the
    errors really start. With one sequence the level filed nothing."""
    n = 20_000
    scores = np.linspace(1.0, 0.0, n)
    right = np.ones(n, dtype=bool)
    right[np.linspace(100, 1500, 10).astype(int)] = False  # 10 confident errors at the top
    right[15_000:] = np.random.default_rng(3).uniform(size=n - 15_000) < 0.5  # the unsure half
    chosen = guaranteed_threshold(right, scores, 0.99, 0.975)
    assert 14_000 <= chosen["products"] <= 15_300 and chosen["bound"] >= 0.99
    monkeypatch.setattr(filing, "STARTS", 1)
    alone = guaranteed_threshold(right, scores, 0.99, 0.975)
    assert alone["threshold"] is None and "surest products are only" in alone["never"]


def test_the_promise_holds_in_95_percent_of_draws_where_the_truth_is_known():
    """Scores of a calibrated model (a product scoring s is right with probability s, its parent with s + 0.6(1 - s)),
    spread as a good model's are, near 1. Each draw chooses the 99% thresholds on 4,000 products; the accuracy each
    level really has is then measured on a million products of the same population filed at those thresholds. The
    same check with the bound's confidence lowered to 50% fails (153 of 200 draws hold): it measures the promise."""
    rng = np.random.default_rng(27)
    population = np.sort(1 - rng.beta(0.6, 25, 1_000_000))
    right = np.cumsum(population)  # accuracy of the products in population[i:j]: (right[j-1] - right[i-1]) / (j - i)
    parents = {"boots": "shoes", "flats": "shoes"}

    def accuracy(low: float, high: float, parent: bool = False) -> float:  # products scoring in [low, high)
        i, j = np.searchsorted(population, [low, high])
        mean = (right[j - 1] - (right[i - 1] if i else 0.0)) / (j - i)
        return mean + 0.6 * (1 - mean) if parent else mean

    held = leaf_filed = 0
    for _ in range(200):
        scores = 1 - rng.beta(0.6, 25, 4000)
        leaf_ok = rng.uniform(size=4000) < scores
        parent_ok = leaf_ok | (rng.uniform(size=4000) < 0.6)
        chosen = choose_thresholds(np.where(leaf_ok, "boots", "flats"), np.array(["boots"] * 4000, dtype=object),
                                   scores, np.where(parent_ok, "shoes", "bags").astype(object), scores, parents,
                                   targets=(0.99,), step=50)["0.99"]
        ok, leaf = True, chosen["leaf"] if chosen["leaf"] is not None else 2.0
        if chosen["leaf"] is not None:
            leaf_filed += 1
            ok &= accuracy(leaf, 2.0) >= 0.99
        if chosen["parent"] is not None:
            ok &= accuracy(chosen["parent"], leaf, parent=True) >= 0.99
        held += ok
    assert leaf_filed >= 190  # the promise is not kept by never filing
    assert held >= 190, f"the promise held in {held} of 200 draws"


@pytest.mark.parametrize(("target", "batch"), [(0.98, 100), (0.99, 400), (0.99, 4000), (0.995, 1723)])
def test_a_batch_at_its_level_target_reaches_the_target_95_times_in_100(target, batch):
    """At ``batch_target`` a batch reaches the target with 95% probability (exact binomial), and at an accuracy
    0.01 point lower it no longer does: the least accuracy, not merely a sufficient one."""
    needed = int(np.ceil(target * batch - 1e-9))
    level = batch_target(target, batch)
    assert target < level < 1
    assert binom.sf(needed - 1, batch, level) == pytest.approx(0.95, abs=1e-9)
    assert binom.sf(needed - 1, batch, level - 1e-4) < 0.95


def test_a_batch_too_small_to_hold_an_error_never_lowers_the_level_below_the_target():
    """A batch of one right with 95% probability needs only 95%: the level's own promise (the target) stands."""
    assert batch_target(0.995, 1) == 0.995 and batch_target(0.995, 10) == 0.995 and batch_target(0.98, 2) == 0.98
    assert batch_target(0.99, 4) == 0.99 < batch_target(0.99, 6)


def test_a_batch_promise_holds_for_a_batch_of_its_size_where_the_truth_is_known():
    """The population of the 200-draw test above, 20,000 products to choose on per draw. With a promise on every
    batch of 400 a level files, a fresh batch of 400 is at least 99% right with probability >= 95% (the binomial at
    the level's true accuracy) in at least 190 of 200 draws, both levels at once; with the promise on the level's
    accuracy alone, in fewer than half of 20 draws (a level just above 99% files a batch below 99% often)."""
    rng = np.random.default_rng(28)
    population = np.sort(1 - rng.beta(0.6, 25, 1_000_000))
    right = np.cumsum(population)
    parents = {"boots": "shoes", "flats": "shoes"}
    needed = 396  # of a batch of 400, at 99%

    def batch_chance(low: float, high: float, parent: bool = False) -> float:
        i, j = np.searchsorted(population, [low, high])
        mean = (right[j - 1] - (right[i - 1] if i else 0.0)) / (j - i)
        return float(binom.sf(needed - 1, 400, mean + 0.6 * (1 - mean) if parent else mean))

    def draws(count: int, batch: int | None) -> tuple[int, int]:
        held = leaf_filed = 0
        for _ in range(count):
            scores = 1 - rng.beta(0.6, 25, 20_000)
            leaf_ok = rng.uniform(size=20_000) < scores
            parent_ok = leaf_ok | (rng.uniform(size=20_000) < 0.6)
            chosen = choose_thresholds(np.where(leaf_ok, "boots", "flats"),
                                       np.array(["boots"] * 20_000, dtype=object), scores,
                                       np.where(parent_ok, "shoes", "bags").astype(object), scores, parents,
                                       targets=(0.99,), step=50, batch=batch)["0.99"]
            assert chosen["batch"] == batch
            leaf = chosen["leaf"] if chosen["leaf"] is not None else 2.0
            chances = [batch_chance(leaf, 2.0)] if chosen["leaf"] is not None else []
            leaf_filed += chosen["leaf"] is not None
            if chosen["parent"] is not None:
                chances.append(batch_chance(chosen["parent"], leaf, parent=True))
            held += all(chance >= 0.95 for chance in chances)
        return held, leaf_filed

    held, leaf_filed = draws(200, 400)
    assert leaf_filed >= 190  # kept by filing, not by never filing
    assert held >= 190, f"the batch promise held in {held} of 200 draws"
    assert draws(20, None)[0] < 10


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_batch_promise_of_no_products_is_refused_by_name(value, capsys):
    with pytest.raises(SystemExit) as stopped:
        train.main(["--batch-promise", value])
    assert stopped.value.code == 2 and "--batch-promise" in capsys.readouterr().err


def test_decisions_and_what_each_achieved():
    true, leaf, score, parent, parent_score = columns()
    made = decide(score, parent_score, {"leaf": 0.95, "parent": 0.97})
    assert made.tolist() == ["leaf", "leaf", "parent", "parent", "review", "review"]
    figures = decision_figures(true, leaf, score, parent, parent_score, PARENTS,
                               {"0.95": {"leaf": 0.95, "parent": 0.97},
                                "0.6": {"leaf": 0.5, "parent": 0.5, "batch": 10, "level_target": 0.7}})
    at95 = figures["0.95"]
    assert at95["held_to"] == 0.95 and figures["0.6"]["held_to"] == 0.7  # a card without a batch: the target
    assert (at95["leaf_share"], at95["leaf_accuracy"]) == (pytest.approx(2 / 6), 1.0)
    assert (at95["parent_share"], at95["parent_accuracy"]) == (pytest.approx(2 / 6), 1.0)
    assert at95["review_share"] == pytest.approx(2 / 6)
    at60 = figures["0.6"]  # every leaf filed: 3 of 6 right
    assert at60["leaf_share"] == 1.0 and at60["leaf_accuracy"] == 0.5 and at60["parent_accuracy"] is None


def test_parent_figures_use_parent_probabilities_and_a_leaf_without_parent_is_never_right():
    true, leaf, score, parent, parent_score = columns()
    figures = branch_metrics(true, leaf, score, PARENTS, parent, parent_score)
    assert figures["parent_accuracy"] == pytest.approx(4 / 6)  # rows 5 and 6: rings has no parent
    # by parent probability: 4 right then a wrong .60 and a wrong 0.0 -> 4/6 covered at 95%
    assert figures["parent_coverage_95"] == pytest.approx(4 / 6)
    assert "parent_accuracy" not in branch_metrics(true, leaf, score, PARENTS)


def test_the_card_must_hold_the_target_asked_for(tmp_path):
    model = tmp_path / "1.joblib"
    with pytest.raises(FilingPolicyError, match="cannot read the model card"):
        load_thresholds(model, 0.98)
    (tmp_path / "1.json").write_text(json.dumps({"name": "old"}))
    with pytest.raises(FilingPolicyError, match="no auto-filing thresholds"):
        load_thresholds(model, 0.98)
    (tmp_path / "1.json").write_text(json.dumps({"filing": {"0.98": {"leaf": 0.9, "parent": None}}}))
    assert load_thresholds(model, 0.98) == {"leaf": 0.9, "parent": None}
    with pytest.raises(FilingPolicyError, match="no thresholds for target accuracy 0.99"):
        load_thresholds(model, 0.99)


def test_the_promise_counts_the_products_of_leaves_too_rare_to_learn(synthetic_crawl, tmp_path, monkeypatch):
    """A leaf left out for too few training products still has products in the crawl, and the model meets their like
    in service: they are part of the products the promise is computed on (always wrong at the leaf), so the card
    promises for the catalog as crawled, not for a catalog without them."""
    source, images, _ = synthetic_crawl
    db = copy_db(source, tmp_path / "crawl.db")
    frame = load_products(db, images)
    rare = frame["category"].value_counts().index[0]
    keep = frame.loc[frame["category"] == rare, "id"].head(4)  # too few to learn at --min-products 5
    with sqlite3.connect(db) as connection:
        connection.execute(f"DELETE FROM products WHERE category_id = ? AND id NOT IN ({','.join('?' * len(keep))})",
                           (rare, *map(int, keep)))
    frame = load_products(db, images)
    monkeypatch.setenv("SHOPSTYLE_DATA_DIR", str(tmp_path / "data"))
    assert train.main(["--db", str(db), "--images", str(images), "--image-backbone", "none", "--min-products", "5",
                       "--cv", "0.2", "--no-progress"]) == 0
    card = json.loads(next((tmp_path / "data" / "models").rglob("1.json")).read_text())
    assert rare not in card["categories"]
    unlearned = ((frame["category"] == rare) & (frame["split"] != "test")).sum()
    guarantee = card["guarantee"]
    assert guarantee["unlearned"] == unlearned > 0 and guarantee["unlearned_leaves"] == 1
    assert guarantee["products"] == guarantee["out_of_fold"] + guarantee["validation"] + unlearned
