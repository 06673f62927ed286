"""The auto-filing policy (``modeling.filing``) on a hand-built case whose thresholds and decisions are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modeling.filing import (
    FilingPolicyError,
    best_parents,
    choose_thresholds,
    decide,
    decision_figures,
    load_thresholds,
)
from modeling.metrics import branch_metrics

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


def test_thresholds_come_from_the_rows_they_are_given_leaf_first_then_parent_below_it():
    thresholds = choose_thresholds(*columns(), PARENTS, targets=(0.95, 0.6))
    # leaf by score: right, right, wrong -> 0.95 keeps the first two; parent among the rest (the no-parent row left
    # out): right .98, right .97, wrong .60 -> 0.97
    assert thresholds["0.95"] == {"leaf": 0.95, "parent": 0.97}
    # at 60%: leaf accuracy 1, 1, .67 then .5 -> 0.90; parent below it: right .97, wrong .60 -> 0.97
    assert thresholds["0.6"] == {"leaf": 0.90, "parent": 0.97}
    unreachable = choose_thresholds(["rings"], ["flats"], [0.9], ["shoes"], [0.9], PARENTS, targets=(0.95,))
    assert unreachable["0.95"] == {"leaf": None, "parent": None}
    assert decide([0.99], [0.99], unreachable["0.95"]).tolist() == ["review"]  # None: that level never files


def test_decisions_and_what_each_achieved():
    true, leaf, score, parent, parent_score = columns()
    made = decide(score, parent_score, {"leaf": 0.95, "parent": 0.97})
    assert made.tolist() == ["leaf", "leaf", "parent", "parent", "review", "review"]
    figures = decision_figures(true, leaf, score, parent, parent_score, PARENTS,
                               {"0.95": {"leaf": 0.95, "parent": 0.97}, "0.6": {"leaf": 0.5, "parent": 0.5}})
    at95 = figures["0.95"]
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
