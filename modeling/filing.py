"""The auto-filing policy: file a product at its leaf, at the leaf's parent, or send it to a person.

A model that is 97% right overall is far surer of some products than of others. For a target accuracy the policy
files a product under its leaf when the leaf's score reaches the leaf threshold; otherwise under its most probable
parent when that parent's probability (the sum of its leaves' probabilities: "one of the jeans" is surer than any
one kind of jeans) reaches the parent threshold; otherwise it goes to review. Both thresholds are chosen on the
validation split by ``choose_thresholds`` and stored in the model card; the test split only reports what they
achieve (``decision_figures``). A leaf without a parent has no parent probability and is never parent-correct.

>>> classes = np.array(["boots", "flats", "heels", "rings"])
>>> parents = {"boots": "shoes", "flats": "shoes", "heels": "shoes", "rings": None}
>>> best_parents(np.array([[0.25, 0.25, 0.4, 0.1]]), classes, parents)
(array(['shoes'], dtype=object), array([0.9]))
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .metrics import coverage_at_accuracy, parent_correct
from .persistence import card_path

__all__ = ["DECISIONS", "TARGETS", "FilingPolicyError", "best_parents", "choose_thresholds", "decide",
           "decision_figures", "load_thresholds", "target_key"]

# Target accuracies the model card stores thresholds for.
TARGETS = (0.95, 0.98, 0.99, 0.995)
DEFAULT_TARGET = 0.98  # what the review app's /api/predict decides at unless told otherwise
DECISIONS = ("leaf", "parent", "review")


class FilingPolicyError(ValueError):
    """A model card without the thresholds asked for (trained before the policy existed, or an unknown target)."""


def target_key(target: float) -> str:
    """The card's key for a target: ``"0.98"``, ``"0.995"``.

    >>> target_key(0.98), target_key(0.995)
    ('0.98', '0.995')
    """
    return f"{target:g}"


def best_parents(proba: np.ndarray, classes: np.ndarray,
                 parents: Mapping[str, str | None]) -> tuple[np.ndarray, np.ndarray]:
    """(most probable parent, its probability) per row: a parent's probability is the sum of its leaves'. Rows whose
    classes have no parent at all get (None, 0.0)."""
    leaf_parent = np.array([parents.get(c) for c in classes], dtype=object)
    names = sorted({p for p in leaf_parent if p is not None})
    if not names:
        return np.full(len(proba), None, dtype=object), np.zeros(len(proba))
    membership = np.zeros((len(classes), len(names)))
    for column, name in enumerate(names):
        membership[leaf_parent == name, column] = 1.0
    summed = np.asarray(proba, dtype=float) @ membership
    best = summed.argmax(1)
    return np.array(names, dtype=object)[best], summed[np.arange(len(summed)), best]


def choose_thresholds(true_leaves, leaves, leaf_scores, predicted_parents, parent_scores,
                      parents: Mapping[str, str | None], targets=TARGETS) -> dict[str, dict[str, float | None]]:
    """Per target: the lowest leaf score whose products reach the target accuracy, and among the products left below
    it, the lowest parent score whose products reach it at the parent level. None: nothing reaches the target, so
    that level never files. Call it on the validation split, never the test split."""
    true_leaves = np.asarray(true_leaves, dtype=object)
    leaf_scores = np.asarray(leaf_scores, dtype=float)
    parent_scores = np.asarray(parent_scores, dtype=float)
    leaf_ok = true_leaves == np.asarray(leaves, dtype=object)
    parent_ok = parent_correct(true_leaves, predicted_parents, parents)
    has_parent = np.array([p is not None for p in predicted_parents], dtype=bool)
    chosen = {}
    for target in targets:
        leaf = coverage_at_accuracy(leaf_ok, leaf_scores, target).threshold
        below = (leaf_scores < leaf if leaf is not None else np.ones(len(leaf_scores), dtype=bool)) & has_parent
        parent = coverage_at_accuracy(parent_ok[below], parent_scores[below], target).threshold
        chosen[target_key(target)] = {"leaf": leaf, "parent": parent}
    return chosen


def decide(leaf_scores, parent_scores, thresholds: Mapping[str, float | None]) -> np.ndarray:
    """``leaf``, ``parent`` or ``review`` per product, for one target's thresholds (``{"leaf": t, "parent": t}``).

    >>> decide([0.99, 0.6, 0.6], [0.99, 0.97, 0.8], {"leaf": 0.95, "parent": 0.9}).tolist()
    ['leaf', 'parent', 'review']
    """
    leaf_scores = np.asarray(leaf_scores, dtype=float)
    parent_scores = np.asarray(parent_scores, dtype=float)
    leaf_at, parent_at = thresholds.get("leaf"), thresholds.get("parent")
    leaf = leaf_scores >= leaf_at if leaf_at is not None else np.zeros(len(leaf_scores), dtype=bool)
    parent = (parent_scores >= parent_at if parent_at is not None else np.zeros(len(leaf_scores), dtype=bool)) & ~leaf
    return np.where(leaf, "leaf", np.where(parent, "parent", "review")).astype(object)


def decision_figures(true_leaves, leaves, leaf_scores, predicted_parents, parent_scores,
                     parents: Mapping[str, str | None], thresholds: Mapping[str, Mapping]) -> dict[str, dict]:
    """Per target: each decision's share of the products and the accuracy it achieved (a leaf decision is right when
    the leaf is, a parent decision when the parent is; review has no accuracy)."""
    true_leaves = np.asarray(true_leaves, dtype=object)
    leaf_ok = true_leaves == np.asarray(leaves, dtype=object)
    parent_ok = parent_correct(true_leaves, predicted_parents, parents)
    figures = {}
    for key, chosen in thresholds.items():
        made = decide(leaf_scores, parent_scores, chosen)
        entry: dict = {"n": int(len(made)), "leaf_threshold": chosen.get("leaf"),
                       "parent_threshold": chosen.get("parent")}
        for decision, correct in (("leaf", leaf_ok), ("parent", parent_ok), ("review", None)):
            rows = made == decision
            entry[f"{decision}_share"] = float(rows.mean()) if len(made) else float("nan")
            if correct is not None:
                entry[f"{decision}_accuracy"] = float(correct[rows].mean()) if rows.any() else None
        figures[key] = entry
    return figures


def load_thresholds(model_path: str | Path, target: float) -> dict[str, float | None]:
    """The leaf and parent thresholds that the card beside ``model_path`` stores for ``target``."""
    card_file = card_path(model_path)
    try:
        card = json.loads(card_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise FilingPolicyError(f"{card_file}: cannot read the model card ({error})") from error
    filing = card.get("filing")
    if not filing:
        raise FilingPolicyError(f"{card_file}: no auto-filing thresholds (a model trained before they existed: "
                                "retrain it with `python -m modeling.train`)")
    key = target_key(target)
    if key not in filing:
        raise FilingPolicyError(f"{card_file}: no thresholds for target accuracy {key} (the card has "
                                f"{', '.join(filing)})")
    return filing[key]
