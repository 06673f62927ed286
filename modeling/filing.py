"""The auto-filing policy: file a product at its leaf, at the leaf's parent, or send it to a person.

A model that is 97% right overall is far surer of some products than of others. For a target accuracy the policy
files a product under its leaf when the leaf's score reaches the leaf threshold; otherwise under its most probable
parent when that parent's probability (the sum of its leaves' probabilities: "one of the jeans" is surer than any
one kind of jeans) reaches the parent threshold; otherwise it goes to review. A leaf without a parent has no parent
probability and is never parent-correct.

The thresholds carry a guarantee (``choose_thresholds``): each level's filed products are at least the target
accurate with 95% confidence, both levels at once. Candidate thresholds are tested from the surest products down in
a fixed sequence, as Learn-then-Test does, each with an exact one-sided binomial (Clopper-Pearson) lower bound on
the accuracy of the products it files, and the sequence stops at the first candidate whose bound falls short: a
fixed sequence needs no correction for the number of candidates. One sequence stands or falls by its first test,
among the few surest products, where a catalog's confident label errors sit whatever the score: a handful of them
there (6 of the 1,164 surest products of a crawl of the fashion catalog) and the level files nothing, though the
products below are as right; retrained on a week more, the same level filed 96% or nothing at 99.5%. So two fixed
sequences run (``STARTS``), the second beginning at ``START_FACTOR`` times the first's products, each at half the
level's risk (Bonferroni over the two), and the threshold filing the most among the candidates either passed is
chosen. It costs a little at the end of the sequence (on the fashion catalog's out-of-fold scores at 99%, 94.7%
filed against 94.8%) and makes the coverage stable (at 99.5%, the fewest filed over 20 bootstrap draws of the
products 88% against 58%). The products they are computed on are the model's
out-of-fold predictions of its training products plus its validation predictions (``modeling.train``), never the
test split, which only reports what they achieve (``decision_figures``). Too few products to promise a target: that
level never files, and the card says why.

The bound is ``scipy.stats.beta.ppf`` (the Clopper-Pearson formula, vectorised over every candidate at once; the
tests check it against ``scipy.stats.binomtest(...).proportion_ci(method="exact")``). MAPIE's risk control was
not used: it controls one threshold of one binary decision through its own estimator wrappers, not a leaf level
followed by a parent level over the products the leaf leaves, and it would add a dependency for a few lines.

>>> classes = np.array(["boots", "flats", "heels", "rings"])
>>> parents = {"boots": "shoes", "flats": "shoes", "heels": "shoes", "rings": None}
>>> best_parents(np.array([[0.25, 0.25, 0.4, 0.1]]), classes, parents)
(array(['shoes'], dtype=object), array([0.9]))
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from math import ceil
from pathlib import Path

import numpy as np
from scipy.stats import beta

from .metrics import parent_correct
from .persistence import card_path

__all__ = ["CONFIDENCE", "DECISIONS", "LEVELS", "TARGETS", "FilingPolicyError", "accuracy_lower_bound", "at_levels",
           "batch_argument", "batch_target", "best_parents", "choose_thresholds", "decide", "decision_figures",
           "first_candidate", "guaranteed_threshold", "level_rule", "levels_argument", "load_thresholds",
           "never_files", "never_reason", "short_percent", "target_key", "thresholds_at"]

# Target accuracies the model card stores thresholds for.
TARGETS = (0.95, 0.98, 0.99, 0.995)
DEFAULT_TARGET = 0.98  # what the review app's /api/predict decides at unless told otherwise
DECISIONS = ("leaf", "parent", "review")
LEVELS = ("leaf", "parent")
CONFIDENCE = 0.95  # how sure the promise is: both levels reach the target together at least this often
STEP = 100  # candidate thresholds are this many products apart, from the surest down
STARTS = 2  # fixed sequences tested, each at the level's risk divided by this
START_FACTOR = 4  # each sequence begins at this many times the previous one's products


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


def accuracy_lower_bound(correct, n, confidence: float) -> np.ndarray:
    """The exact one-sided (Clopper-Pearson) lower bound on an accuracy seen as ``correct`` right of ``n``: the true
    accuracy is at least this with probability ``confidence``.

    >>> round(float(accuracy_lower_bound(299, 299, 0.95)), 4), round(float(accuracy_lower_bound(0, 5, 0.95)), 4)
    (0.99, 0.0)
    """
    correct = np.asarray(correct, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(1.0 - confidence, correct, n - correct + 1.0)
    return np.where(correct > 0, np.nan_to_num(bound), 0.0)


def batch_target(target: float, batch: int, probability: float = CONFIDENCE) -> float:
    """The least accuracy a level must have for a batch of ``batch`` products it files to be at least ``target``
    accurate with ``probability``, and never less than the target itself. A level exactly at the target files a
    batch of 400 below it a third of the time or more (37% at 99%); a shop that checks every week's filings needs
    the level surer than the target by what a batch's size allows. A batch's right products are binomial (its
    products drawn like the ones the thresholds were chosen on: a week that drifted fails more often):
    P(at least k of n right) is the regularised incomplete beta function I_p(k, n - k + 1), so the least p is that
    beta distribution's ``probability`` quantile. A batch so small that it must be all right (99.5% and 10 products)
    could ask for less than the target; the level's own promise then stands.

    >>> round(batch_target(0.99, 400), 4), round(batch_target(0.99, 4000), 4), batch_target(0.995, 1)
    (0.9951, 0.9922, 0.995)
    """
    needed = ceil(target * batch - 1e-9)  # the fewest right products a batch at the target holds (float-safe)
    return max(target, float(beta.ppf(probability, needed, batch - needed + 1)))


def levels_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--levels`` of ``modeling.predict``, ``modeling.cycle`` and ``modeling.review``: ``leaf`` or ``leaf,parent``
    (the default), applied by ``thresholds_at``. Its metavar spells the two values out: argparse would show the
    choices comma-joined, ``{leaf,leaf,parent}``."""
    levels = ",".join(LEVELS)
    parser.add_argument("--levels", choices=("leaf", levels), default=levels, metavar=f"leaf|{levels}",
                        help=help_text)


def batch_argument(text: str) -> int:
    """``--batch-promise`` of ``modeling.train`` and ``modeling.cycle``: a number of products, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of products, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of products >= 1, got {value}")
    return value


def first_candidate(target: float, confidence: float, available: int) -> int | None:
    """How many products the sequence's first candidate holds: the fewest whose bound would still reach ``target``
    with half the errors the target allows (None: more than ``available``). A sequence that began where a single
    error already fails would stop, by chance, among the surest products; beginning here gives the first tests the
    power to pass. It depends on no label, so the guarantee is untouched.

    >>> first_candidate(0.99, 0.975, 100_000), first_candidate(0.99, 0.975, 500)
    (1164, None)
    """
    for start in range(1, available + 1, 1000):  # a few thousand at most for the targets used: scan in chunks
        n = np.arange(start, min(start + 1000, available + 1))
        errors = np.floor(n * (1.0 - target) / 2.0)
        reaches = np.flatnonzero(accuracy_lower_bound(n - errors, n, confidence) >= target)
        if len(reaches):
            return int(n[reaches[0]])
    return None


def guaranteed_threshold(correct, scores, target: float, confidence: float, step: int = STEP) -> dict:
    """The lowest score threshold whose products are at least ``target`` accurate with ``confidence``: ``STARTS``
    fixed sequences (fewer when the products are too few for the later ones to begin), each of candidates ``step``
    products apart from its start down (ties filed together), the first starting at ``first_candidate``, each next
    at ``START_FACTOR`` times as many products; each candidate tested with ``accuracy_lower_bound`` at the risk
    (1 - ``confidence``) shared equally by the sequences, each sequence stopping at its first failure; the candidate
    filing the most that any sequence passed is chosen.

    Returns ``threshold`` (None: nothing can be promised), ``bound`` (its lower bound, or the one the first
    candidate reached), ``products`` (how many it files among these) and ``never`` (why nothing is filed, or None).

    >>> guaranteed_threshold([1] * 1200, np.linspace(1, 0.5, 1200), 0.99, 0.95)["products"]
    1200
    >>> guaranteed_threshold([1] * 200, np.linspace(1, 0.5, 200), 0.99, 0.95)["never"]
    'too few products to promise 99%: 200, where the first test needs 773'
    """
    correct = np.asarray(correct, dtype=float)
    scores = np.asarray(scores, dtype=float)
    # as many sequences as there are products for (a choice made on the count alone, so the guarantee holds)
    for starts in range(STARTS, 0, -1):
        each = 1.0 - (1.0 - confidence) / starts
        first = first_candidate(target, each, max(len(scores), 1))
        if first is not None and first * START_FACTOR ** (starts - 1) <= len(scores):
            break
    if first is None:
        needed = first_candidate(target, each, 100_000)
        return {"threshold": None, "bound": None, "products": 0,
                "never": f"too few products to promise {short_percent(target)}: {len(scores)}, where the first test "
                         f"needs {needed}"}
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    right = np.cumsum(correct[order])
    best, top = None, None
    for start in (first * START_FACTOR ** k for k in range(starts)):
        # candidate cuts every `step` products from the start on, each widened to the end of its run of equal scores
        cuts = np.unique(np.append(np.arange(start, len(scores) + 1, step), len(scores)))
        filed = np.unique(np.searchsorted(-sorted_scores, -sorted_scores[cuts - 1], side="right"))
        bounds = accuracy_lower_bound(right[filed - 1], filed, each)
        top = top or (int(filed[0]), float(bounds[0]))
        failed = np.flatnonzero(bounds < target)
        passed = failed[0] if len(failed) else len(filed)  # the candidates before the first failure hold
        if passed and (best is None or filed[passed - 1] > best[0]):
            best = (int(filed[passed - 1]), float(bounds[passed - 1]))
    if best is None:
        return {"threshold": None, "bound": top[1], "products": 0,
                "never": f"the {top[0]} surest products are only {top[1]:.2%} accurate at "
                         f"{short_percent(each)} confidence, below the {short_percent(target)} target"
                         + (f" (and the {START_FACTOR}x as many where the second sequence begins, too)"
                            if starts > 1 else "")}
    return {"threshold": float(sorted_scores[best[0] - 1]), "bound": best[1], "products": best[0], "never": None}


def short_percent(share: float) -> str:
    """A share to two decimals, without trailing zeros (a batch's level target is 99.51%, not 99.5%).

    >>> short_percent(0.99), short_percent(0.995), short_percent(0.99506)
    ('99%', '99.5%', '99.51%')
    """
    return f"{share:.2%}".rstrip("%").rstrip("0").rstrip(".") + "%"


def choose_thresholds(true_leaves, leaves, leaf_scores, predicted_parents, parent_scores,
                      parents: Mapping[str, str | None], targets=TARGETS, confidence: float = CONFIDENCE,
                      step: int = STEP, batch: int | None = None) -> dict[str, dict]:
    """Per target: the leaf threshold that ``guaranteed_threshold`` promises, then among the products left below it
    (with a parent), the parent threshold it promises at the parent level. Each level is tested at half the risk
    (1 - ``confidence``), so both promises hold together with ``confidence``. Each target's entry: ``leaf`` and
    ``parent`` (None: that level never files), ``<level>_bound`` (the lower bound on its accuracy),
    ``<level>_products`` (the products it files among these), ``<level>_never`` (why it never files), and the
    ``confidence``. With ``batch``, what is promised is each batch of that many products a level files at least the
    target accurate (with probability ``confidence``, on top of the bound's): each level is held to ``batch_target``
    instead of the target, stored as ``level_target`` beside the ``batch``. Call it on out-of-fold and validation
    predictions, never the test split."""
    true_leaves = np.asarray(true_leaves, dtype=object)
    leaf_scores = np.asarray(leaf_scores, dtype=float)
    parent_scores = np.asarray(parent_scores, dtype=float)
    leaf_ok = true_leaves == np.asarray(leaves, dtype=object)
    parent_ok = parent_correct(true_leaves, predicted_parents, parents)
    has_parent = np.array([p is not None for p in predicted_parents], dtype=bool)
    per_level = 1.0 - (1.0 - confidence) / len(LEVELS)
    chosen = {}
    for target in targets:
        level_target = target if batch is None else batch_target(target, batch, confidence)
        leaf = guaranteed_threshold(leaf_ok, leaf_scores, level_target, per_level, step)
        below = (leaf_scores < leaf["threshold"] if leaf["threshold"] is not None
                 else np.ones(len(leaf_scores), dtype=bool)) & has_parent
        parent = guaranteed_threshold(parent_ok[below], parent_scores[below], level_target, per_level, step)
        entry: dict = {"confidence": confidence, "batch": batch, "level_target": level_target}
        for level, found in (("leaf", leaf), ("parent", parent)):
            entry.update({level: found["threshold"], f"{level}_bound": found["bound"],
                          f"{level}_products": found["products"], f"{level}_never": found["never"]})
        chosen[target_key(target)] = entry
    return chosen


def never_reason(thresholds: Mapping[str, object], level: str) -> str:
    """Why a level of a card's entry for one target never files (a card from before the reasons were kept has
    none to give)."""
    return str(thresholds.get(f"{level}_never") or "no threshold in the card")


def never_files(thresholds: Mapping[str, object]) -> list[str]:
    """What a card's entry for one target says about the levels that never file, one line per level.

    >>> never_files({"leaf": 0.9, "parent": None, "parent_never": "too few products"})
    ['the parent level never files: too few products']
    """
    return [f"the {level} level never files: {never_reason(thresholds, level)}"
            for level in LEVELS if thresholds.get(level) is None]


def level_rule(thresholds: Mapping[str, object], level: str) -> str:
    """One level of a card's entry for one target, for people: the score it files at and the accuracy it promises
    (its bound), or that it never files and why. A card's raw values (``None``, 0.9685754258780984) mean nothing
    to whoever reads ``modeling.models show``.

    >>> level_rule({"leaf": 0.91234, "leaf_bound": 0.98612, "confidence": 0.95}, "leaf")
    'leaf at a score >= 0.9123 (at least 98.61% accurate with 95% confidence)'
    >>> level_rule({"parent": None, "parent_never": "too few products"}, "parent")
    'parent never (too few products)'
    """
    threshold, bound = thresholds.get(level), thresholds.get(f"{level}_bound")
    if threshold is None:
        return f"{level} never ({never_reason(thresholds, level)})"
    if bound is None:  # a card from before the bounds were kept
        return f"{level} at a score >= {threshold:.4f}"
    confidence = thresholds.get("confidence")
    sure = f" with {short_percent(confidence)} confidence" if confidence is not None else ""
    return f"{level} at a score >= {threshold:.4f} (at least {short_percent(bound)} accurate{sure})"


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
    the leaf is, a parent decision when the parent is; review has no accuracy), beside the accuracy each level was
    held to (``held_to``: the target, or above it with a batch promise) and, for a level that never files, why
    (``<level>_never``)."""
    true_leaves = np.asarray(true_leaves, dtype=object)
    leaf_ok = true_leaves == np.asarray(leaves, dtype=object)
    parent_ok = parent_correct(true_leaves, predicted_parents, parents)
    figures = {}
    for key, chosen in thresholds.items():
        made = decide(leaf_scores, parent_scores, chosen)
        entry: dict = {"n": int(len(made)), "held_to": chosen.get("level_target") or float(key),
                       "leaf_threshold": chosen.get("leaf"),
                       "parent_threshold": chosen.get("parent"), "leaf_bound": chosen.get("leaf_bound"),
                       "parent_bound": chosen.get("parent_bound")}
        entry.update({f"{level}_never": never_reason(chosen, level) if chosen.get(level) is None else None
                      for level in LEVELS})
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


def at_levels(thresholds: Mapping, levels: Sequence[str]) -> dict:
    """A card's thresholds at one target without the levels ``levels`` leaves out (their threshold None, and why:
    they never file)."""
    left_out = {}
    for level in LEVELS:
        if level not in levels:
            left_out.update({level: None, f"{level}_bound": None, f"{level}_never": "left out by --levels"})
    return {**thresholds, **left_out}


def thresholds_at(model_path: str | Path, target: float, levels: Sequence[str] = LEVELS) -> dict[str, float | None]:
    """The card's thresholds for ``target`` at ``levels`` (``at_levels``). ``modeling.predict`` and the review app's
    ``/api/predict`` both decide by these, so a product filed by one is filed alike by the other at the same target
    and levels."""
    return at_levels(load_thresholds(model_path, target), levels)
