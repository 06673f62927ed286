"""The figures of ``modeling.analyze``, read from the experiments and predictions that ``modeling.train`` recorded.

Everything is computed with pandas and numpy over whole columns, so a database with 150k predictions is analysed
in seconds. A leaf's parent comes from the crawl's category table. Parent figures are the stacked model's, from the
most probable parent and its probability (the sum of its leaves') that training recorded; experiments recorded
before those columns existed have none. The auto-filing decisions are replayed with the thresholds the experiment
chose on its validation split (``modeling.filing``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_fscore_support
from sqlalchemy import text

from shopstyle_spider import schema

from . import store
from .filing import LEVELS, at_levels, decision_figures
from .metrics import recorded_parents

__all__ = ["BRANCHES", "AnalysisError", "accuracy_coverage_curve", "branch_columns", "category_table", "confused_pairs",
           "decision_table", "load_experiments", "load_parents", "load_predictions",
           "most_confident_errors"]

# branch -> (predicted column, score column) of the predictions table
BRANCHES = {"stacked": ("predicted_category", "score"), "text": ("text_category", "text_score"),
            "image": ("image_category", "image_score")}


class AnalysisError(ValueError):
    """A request the database cannot answer (no experiments, an unknown experiment id)."""


def branch_columns(predictions: pd.DataFrame, branch: str) -> pd.DataFrame:
    """true, predicted, score of one branch, on the rows where that branch predicted (image: products with photos)."""
    predicted, score = BRANCHES[branch]
    rows = predictions[predictions[predicted].notna()]
    return pd.DataFrame({"true": rows["true_category"], "predicted": rows[predicted], "score": rows[score]})


def load_experiments(db: str | Path) -> pd.DataFrame:
    with closing(schema.connect(db, readonly=True)) as connection:
        if not store.has_table(connection, store.experiments):
            raise AnalysisError(f"{schema.display_name(db)}: no experiments table (train a model with "
                                "`python -m modeling.train`)")
        frame = pd.read_sql_query(text("SELECT * FROM experiments ORDER BY id"), connection)
    if frame.empty:
        raise AnalysisError(f"{schema.display_name(db)}: no experiments yet (train a model with "
                            "`python -m modeling.train`)")
    for column in ("parameters", "versions", "metrics"):
        frame[column] = frame[column].map(json.loads)
    return frame.set_index("id", drop=False)


def load_predictions(db: str | Path, split: str = "test", experiment: int | None = None) -> pd.DataFrame:
    """Predictions of one split (``all`` for validation and test), with the product's text and photo path."""
    where, params = [], {}
    if split != "all":
        where.append("p.split = :split")
        params["split"] = split
    if experiment is not None:
        where.append("p.experiment_id = :experiment")
        params["experiment"] = experiment
    sql = ("SELECT p.*, pr.name, pr.description, pr.image_path FROM predictions AS p "
           "LEFT JOIN products AS pr ON pr.id = p.product_id" + (" WHERE " + " AND ".join(where) if where else ""))
    with closing(schema.connect(db, readonly=True)) as connection:
        return pd.read_sql_query(text(sql), connection, params=params)


def load_parents(db: str | Path) -> dict[str, str | None]:
    with closing(schema.connect(db, readonly=True)) as connection:
        return dict(connection.execute(text("SELECT id, parent_id FROM categories")).fetchall())


def decision_table(predictions: pd.DataFrame, filing: dict | None, parents: dict[str, str | None],
                   levels: Sequence[str] = LEVELS) -> pd.DataFrame:
    """Per target accuracy: the thresholds chosen on validation, each decision's share of these predictions and the
    accuracy it achieved, filing at ``levels`` only (empty without thresholds or parent probabilities)."""
    predicted_parents, parent_scores = recorded_parents(predictions)
    if not filing or parent_scores is None or predictions.empty:
        return pd.DataFrame()
    filing = {key: at_levels(chosen, levels) for key, chosen in filing.items()}
    figures = decision_figures(predictions["true_category"], predictions["predicted_category"], predictions["score"],
                               predicted_parents, parent_scores, parents, filing)
    return pd.DataFrame([{"target": target, **entry} for target, entry in figures.items()])


def category_table(predictions: pd.DataFrame, branch: str = "stacked") -> pd.DataFrame:
    """Precision, recall, F1 and support per true or predicted category, worst F1 first."""
    rows = branch_columns(predictions, branch)
    labels = sorted(set(rows["true"]) | set(rows["predicted"]))
    precision, recall, f1, support = precision_recall_fscore_support(
        rows["true"], rows["predicted"], labels=labels, zero_division=0)
    table = pd.DataFrame({"category": labels, "precision": precision, "recall": recall, "f1": f1,
                          "support": support})
    return table.sort_values(["f1", "support", "category"], ascending=[True, False, True]).reset_index(drop=True)


def confused_pairs(predictions: pd.DataFrame, top: int = 10, branch: str = "stacked") -> pd.DataFrame:
    """The (true, predicted) pairs most often wrong, with their count and share of the true category."""
    rows = branch_columns(predictions, branch)
    wrong = rows[rows["true"] != rows["predicted"]]
    pairs = wrong.groupby(["true", "predicted"]).size().rename("count").reset_index()
    support = rows["true"].value_counts()
    pairs["share_of_true"] = pairs["count"] / pairs["true"].map(support)
    return pairs.sort_values(["count", "true", "predicted"], ascending=[False, True, True]).head(top) \
        .reset_index(drop=True)


def most_confident_errors(predictions: pd.DataFrame, k: int) -> pd.DataFrame:
    """The k wrong stacked predictions with the highest scores: where auto-filing would hurt most."""
    wrong = predictions[predictions["true_category"] != predictions["predicted_category"]]
    return wrong.sort_values(["score", "product_id"], ascending=[False, True]).head(k).reset_index(drop=True)


def accuracy_coverage_curve(predictions: pd.DataFrame, branch: str = "stacked") -> tuple[np.ndarray, np.ndarray]:
    """(coverage, accuracy of the covered) when products are filed in descending score order."""
    rows = branch_columns(predictions, branch)
    order = np.argsort(-rows["score"].to_numpy(), kind="stable")
    correct = (rows["true"].to_numpy() == rows["predicted"].to_numpy())[order]
    n = np.arange(1, len(correct) + 1)
    return n / max(len(correct), 1), np.cumsum(correct) / n
