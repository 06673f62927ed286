"""The figures a catalog team acts on, computed one way for training, ``modeling.analyze``, the review app's report
and the benchmarks (``prediction_figures``).

Coverage at a target accuracy answers "if we auto-file every product whose score is at least t, what share of the
catalog is filed, and is it at least this accurate?". It is computed exactly from the sorted scores: the threshold
is the lowest score whose whole set of products scoring at least that much reaches the target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

__all__ = ["Coverage", "branch_metrics", "coverage_at_accuracy", "expected_calibration_error", "parent_correct",
           "prediction_figures", "recorded_parents"]


@dataclass(frozen=True)
class Coverage:
    target: float
    coverage: float  # share of products scoring >= threshold
    threshold: float | None  # None when no threshold reaches the target
    accuracy: float  # accuracy of the covered products (nan when none)


def coverage_at_accuracy(correct, scores, target: float) -> Coverage:
    """The largest share of products, taken by descending score, whose accuracy is at least ``target``.

    Products with equal scores are covered together or not at all, since a threshold cannot split them.

    >>> coverage_at_accuracy([1, 1, 0, 1], [0.9, 0.8, 0.7, 0.6], 0.75)
    Coverage(target=0.75, coverage=1.0, threshold=0.6, accuracy=0.75)
    >>> coverage_at_accuracy([1, 1, 0, 1], [0.9, 0.8, 0.7, 0.6], 0.95)
    Coverage(target=0.95, coverage=0.5, threshold=0.8, accuracy=1.0)
    """
    correct = np.asarray(correct, dtype=float)
    scores = np.asarray(scores, dtype=float)
    if correct.shape != scores.shape or correct.ndim != 1:
        raise ValueError("correct and scores must be 1-d and of the same length")
    if len(scores) == 0:
        return Coverage(target, 0.0, None, float("nan"))
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    cumulative = np.cumsum(correct[order]) / np.arange(1, len(scores) + 1)
    # a cut may only fall after the last of a run of equal scores
    boundary = np.append(sorted_scores[1:] != sorted_scores[:-1], True)
    ok = np.flatnonzero(boundary & (cumulative >= target - 1e-12))
    if len(ok) == 0:
        return Coverage(target, 0.0, None, float("nan"))
    last = ok[-1]
    return Coverage(target, float((last + 1) / len(scores)), float(sorted_scores[last]), float(cumulative[last]))


def expected_calibration_error(correct, scores, bins: int = 15) -> float:
    """Mean gap between score and accuracy over equal-width score bins, weighted by their products: 0 means a
    score of 0.9 is right 90% of the time."""
    correct = np.asarray(correct, dtype=float)
    scores = np.asarray(scores, dtype=float)
    if len(scores) == 0:
        return float("nan")
    which = np.minimum((scores * bins).astype(int), bins - 1)
    gap = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap += members.sum() * abs(correct[members].mean() - scores[members].mean())
    return float(gap / len(scores))


def parent_correct(true_leaves, predicted_parents, parents: Mapping[str, str | None]) -> np.ndarray:
    """Whether each predicted parent is the true leaf's parent (``parents`` maps a leaf to its parent); never for a
    true leaf without a parent, whatever was predicted.

    >>> parent_correct(["flats", "rings"], ["shoes", None], {"flats": "shoes", "rings": None}).tolist()
    [True, False]
    """
    true_parents = [parents.get(t) for t in true_leaves]
    return np.array([t is not None and t == p for t, p in zip(true_parents, predicted_parents, strict=True)],
                    dtype=bool)


def branch_metrics(true, predicted, scores, parents: Mapping[str, str | None] | None = None,
                   predicted_parents=None, parent_scores=None) -> dict[str, float | int | None]:
    """Accuracy, coverages at 95% and 98%, calibration, macro-F1 and, given the most probable parent of each
    product and its probability (the sum of its leaves', ``modeling.filing.best_parents``), the parent-category
    figures. Without parent probabilities there are no parent figures: a leaf's score says nothing exact about its
    parent."""
    true = np.asarray(true, dtype=object)
    predicted = np.asarray(predicted, dtype=object)
    scores = np.asarray(scores, dtype=float)
    correct = true == predicted
    figures: dict[str, float | int | None] = {"n": int(len(true))}
    if len(true) == 0:
        return figures
    figures["accuracy"] = float(correct.mean())
    figures["macro_f1"] = float(f1_score(true.astype(str), predicted.astype(str), average="macro", zero_division=0))
    figures["ece"] = expected_calibration_error(correct, scores)
    for target in (0.95, 0.98):
        cover = coverage_at_accuracy(correct, scores, target)
        figures[f"coverage_{round(target * 100)}"] = cover.coverage
        figures[f"threshold_{round(target * 100)}"] = cover.threshold
    if parents and predicted_parents is not None and parent_scores is not None:
        right = parent_correct(true, np.asarray(predicted_parents, dtype=object), parents)
        figures["parent_accuracy"] = float(right.mean())
        for target in (0.95, 0.98):
            figures[f"parent_coverage_{round(target * 100)}"] = coverage_at_accuracy(
                right, np.asarray(parent_scores, dtype=float), target).coverage
    return figures


def recorded_parents(rows: pd.DataFrame) -> tuple[pd.Series | None, pd.Series | None]:
    """The stacked model's most probable parents and their probabilities in prediction rows, or (None, None) where
    they were not recorded (experiments from before parent probabilities)."""
    if "parent_score" not in rows or rows["parent_score"].isna().any():
        return None, None
    return rows["parent_category"].astype(object).where(rows["parent_category"].notna(), None), rows["parent_score"]


def prediction_figures(rows: pd.DataFrame, parents: Mapping[str, str | None] | None) -> dict[str, dict]:
    """Figures of the stacked model and of each branch over prediction rows (``modeling.train.prediction_rows``, the
    ``predictions`` table, or several of them pooled): ``stacked`` and ``text`` on every row; ``image``,
    ``stacked_with_photo`` and ``text_with_photo`` on the rows with a usable photo, where any row has one. Parent
    figures are the stacked model's, from its parent probabilities where they were recorded. Training records these,
    and ``modeling.analyze`` recomputes exactly these from the stored rows."""
    true = rows["true_category"]
    predicted_parents, parent_scores = recorded_parents(rows)
    figures = {
        "stacked": branch_metrics(true, rows["predicted_category"], rows["score"], parents, predicted_parents,
                                  parent_scores),
        "text": branch_metrics(true, rows["text_category"], rows["text_score"], parents),
    }
    photo = rows["image_category"].notna()
    if photo.any():
        with_photo = rows[photo]
        figures["image"] = branch_metrics(with_photo["true_category"], with_photo["image_category"],
                                          with_photo["image_score"], parents)
        figures["stacked_with_photo"] = branch_metrics(
            with_photo["true_category"], with_photo["predicted_category"], with_photo["score"], parents,
            None if predicted_parents is None else predicted_parents[photo],
            None if parent_scores is None else parent_scores[photo])
        figures["text_with_photo"] = branch_metrics(with_photo["true_category"], with_photo["text_category"],
                                                    with_photo["text_score"], parents)
    return figures
