"""Drift: are the products arriving since a model was trained still the products it was trained for?

A model's filing thresholds and its accuracy were measured on its validation split. Products crawled since (their
``first_seen`` after the experiment) are predicted by the same model and set against that split, figure by figure:

- the share filed automatically at each target accuracy (a fall means more work for people, and hints that the
  scores no longer mean what they meant),
- the predicted category shares (a chi-square test on the two samples, and the population stability index as the
  size of the move), with the categories whose share moved beyond noise (Fisher's exact test, Bonferroni-corrected),
- the distribution of the model's scores (two-sample Kolmogorov-Smirnov),
- the share of a product's words the model never saw in training, and the share of products without a photo.

Each test is one SciPy call on the two samples, so a small week is judged by its size: a move that noise explains
is reported as a figure, not as drift. ``python -m modeling.analyze --drift`` prints it and says plainly what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sqlalchemy import bindparam, select

from shopstyle_spider import schema

from .analysis import AnalysisError, load_predictions
from .data import load_products
from .filing import TARGETS, FilingPolicyError, best_parents, decide, load_thresholds, target_key
from .persistence import load_model
from .text import clean_text_columns

__all__ = ["ALPHA", "FILING_FALL", "Sample", "compare", "drift_lines", "drift_report", "drift_sections",
           "recent_products", "sample_of", "unseen_word_shares"]

ALPHA = 0.01  # a move is beyond noise when a test's p-value is below this
FILING_FALL = 0.05  # a fall of the share filed at a target larger than this (and beyond noise) is drift
POOL_BELOW = 5  # categories with fewer products than this in both samples together are pooled for the chi-square
MOVED_SHOWN = 10


@dataclass
class Sample:
    """What drift compares, one entry per product: the predicted leaf and its score, the most probable parent's
    score, whether a photo was used, and the share of the product's words the model never saw (NaN: unknown)."""
    category: np.ndarray
    score: np.ndarray
    parent_score: np.ndarray
    photo: np.ndarray
    unseen: np.ndarray

    def __len__(self) -> int:
        return len(self.category)


def _word_vocabulary(model) -> tuple[object, set[str]] | None:
    """(a word analyzer, the single words it learned) of a fitted ``ProductClassifier``'s text branch: the words of
    names and descriptions; None for a model whose text branch is built otherwise."""
    try:
        features = model.text_.named_steps["features"]
        vectorizers = [features.named_transformers_[name] for name in ("name_words", "text_words")]
    except (AttributeError, KeyError):
        return None
    words = {term for v in vectorizers for term in v.vocabulary_ if " " not in term}
    return vectorizers[0].build_analyzer(), words


def unseen_word_shares(model, frame: pd.DataFrame) -> np.ndarray:
    """Per product, the share of its words (stemmed as the model stems them) absent from everything the model
    learned; NaN for a product without words or a model whose vocabulary cannot be read."""
    found = _word_vocabulary(model)
    shares = np.full(len(frame), np.nan)
    if found is None or not len(frame):
        return shares
    analyzer, vocabulary = found
    for i, text in enumerate(clean_text_columns(frame)["text"]):
        words = [term for term in analyzer(text) if " " not in term]
        if words:
            shares[i] = sum(word not in vocabulary for word in words) / len(words)
    return shares


def sample_of(model, frame: pd.DataFrame) -> Sample:
    """Predict ``frame`` (name, description, image_path) with ``model``: the recent products' side of drift."""
    stacked, _, image = model.predict_branches(frame)
    best = stacked.argmax(axis=1)
    _, parent_scores = best_parents(stacked, model.classes_, model.category_parents or {})
    return Sample(category=np.asarray(model.classes_)[best].astype(object),
                  score=stacked[np.arange(len(frame)), best], parent_score=np.asarray(parent_scores, dtype=float),
                  photo=~np.isnan(image[:, 0]), unseen=unseen_word_shares(model, frame))


def validation_sample(model, predictions: pd.DataFrame) -> Sample:
    """The model's validation split as its experiment recorded it (``analysis.load_predictions`` rows, with each
    product's text), with the unseen-word shares of those texts."""
    texts = predictions[["name", "description"]].fillna({"name": "", "description": ""})
    return Sample(category=predictions["predicted_category"].to_numpy(dtype=object),
                  score=predictions["score"].to_numpy(dtype=float),
                  parent_score=predictions["parent_score"].fillna(0.0).to_numpy(dtype=float),
                  photo=predictions["image_score"].notna().to_numpy(),
                  unseen=unseen_word_shares(model, texts))


def recent_products(db: str | Path, images: str | Path | None, since: str) -> pd.DataFrame:
    """The crawl's products first seen after ``since`` (an ISO time), as ``load_products`` gives them."""
    products = schema.products
    with schema.connect(db, readonly=True) as connection:
        ids = set(connection.execute(select(products.c.id).where(products.c.first_seen > bindparam("since")),
                                     {"since": since}).scalars())
    if not ids:
        return pd.DataFrame(columns=["id", "name", "description", "image_path"])
    frame = load_products(db, images, progress=False)
    return frame[frame["id"].isin(ids)].reset_index(drop=True)


def _filed_share(sample: Sample, thresholds: Mapping[str, float | None]) -> tuple[int, int]:
    made = decide(sample.score, sample.parent_score, thresholds)
    return int((made != "review").sum()), len(made)


def _category_shift(base: Sample, recent: Sample) -> dict:
    counts = pd.DataFrame({"validation": pd.Series(base.category).value_counts(),
                           "recent": pd.Series(recent.category).value_counts()}).fillna(0).astype(int)
    sparse = counts.sum(axis=1) < POOL_BELOW
    pooled = counts[~sparse]
    if sparse.any():
        pooled = pd.concat([pooled, counts[sparse].sum().to_frame("(rare categories)").T])
    shares = (counts + 0.5) / (counts + 0.5).sum()  # half a product each, so an empty cell has a finite log
    psi = float(((shares["recent"] - shares["validation"]) * np.log(shares["recent"] / shares["validation"])).sum())
    p_value = (float(stats.chi2_contingency(pooled.T.to_numpy(), correction=False).pvalue)
               if len(pooled) > 1 and (pooled.sum() > 0).all() else 1.0)
    moved = []
    for category, row in counts.iterrows():
        table = [[row["validation"], len(base) - row["validation"]], [row["recent"], len(recent) - row["recent"]]]
        p = float(stats.fisher_exact(table).pvalue)
        if p < ALPHA / len(counts):
            moved.append({"category": category, "validation_share": row["validation"] / len(base),
                          "recent_share": row["recent"] / len(recent), "p_value": p})
    moved.sort(key=lambda m: m["p_value"])
    return {"chi2_p_value": p_value, "psi": psi, "moved": moved, "categories": len(counts)}


def _proportions(base: np.ndarray, recent: np.ndarray) -> dict:
    """Two shares and whether they differ beyond noise (Fisher's exact test)."""
    a, b = int(base.sum()), int(recent.sum())
    p = float(stats.fisher_exact([[a, len(base) - a], [b, len(recent) - b]]).pvalue)
    return {"validation": a / len(base), "recent": b / len(recent), "p_value": p}


def compare(base: Sample, recent: Sample, thresholds: Mapping[str, Mapping[str, float | None]]) -> dict:
    """Every figure of drift between the validation split (``base``) and the recent products, with the verdicts."""
    filing = {}
    for key, chosen in thresholds.items():
        (filed_base, n_base), (filed_recent, n_recent) = _filed_share(base, chosen), _filed_share(recent, chosen)
        # one-sided: only a fall means drift
        p = float(stats.fisher_exact([[filed_base, n_base - filed_base], [filed_recent, n_recent - filed_recent]],
                                     alternative="greater").pvalue)
        share_base, share_recent = filed_base / n_base, filed_recent / n_recent
        filing[key] = {"validation": share_base, "recent": share_recent, "p_value": p,
                       "fell": bool(share_base - share_recent > FILING_FALL and p < ALPHA)}
    known = ~np.isnan(recent.unseen)
    known_base = ~np.isnan(base.unseen)
    unseen = {"validation": float(np.nanmean(base.unseen)) if known_base.any() else None,
              "recent": float(np.nanmean(recent.unseen)) if known.any() else None, "p_value": None}
    if known.any() and known_base.any():
        unseen["p_value"] = float(stats.mannwhitneyu(recent.unseen[known], base.unseen[known_base],
                                                     alternative="greater").pvalue)
    categories = _category_shift(base, recent)
    scores = {"validation_median": float(np.median(base.score)), "recent_median": float(np.median(recent.score)),
              "ks_p_value": float(stats.ks_2samp(base.score, recent.score).pvalue)}
    no_photo = _proportions(~base.photo, ~recent.photo)
    return {"validation_products": len(base), "recent_products": len(recent), "filing": filing,
            "categories": categories, "scores": scores, "unseen_words": unseen, "no_photo": no_photo,
            "drift": bool(_categories_moved(categories) or any(f["fell"] for f in filing.values()))}


def _categories_moved(categories: dict) -> bool:
    """The category shares moved beyond noise: all of them together (chi-square), or one alone (Fisher's exact
    test, Bonferroni-corrected: a single category can move beyond noise while 90 others dilute the chi-square)."""
    return categories["chi2_p_value"] < ALPHA or bool(categories["moved"])


def thresholds_of(model_path: str | Path) -> dict[str, dict[str, float | None]]:
    """Every target's thresholds the card stores (none for a card without any)."""
    found = {}
    for target in TARGETS:
        try:
            found[target_key(target)] = load_thresholds(model_path, target)
        except FilingPolicyError:
            continue
    return found


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def drift_lines(report: dict) -> list[str]:
    """The figures, then what they mean and what to do, in plain words."""
    if not report["recent_products"]:
        return [f"no products first seen since {report['since']}: nothing to compare with the validation split"]
    lines = [f"{report['recent_products']} products first seen since {report['since']} against the "
             f"{report['validation_products']} of the validation split (a move is beyond noise at p < {ALPHA}):"]
    for key, f in report["filing"].items():
        lines.append(f"  filed automatically at {float(key):.1%}: {_pct(f['validation'])} -> {_pct(f['recent'])} "
                     f"(p = {f['p_value']:.3g})")
    c, s = report["categories"], report["scores"]
    lines.append(f"  predicted category shares: chi-square p = {c['chi2_p_value']:.3g}, population stability index "
                 f"{c['psi']:.3f} over {c['categories']} categories")
    for moved in c["moved"][:MOVED_SHOWN]:
        lines.append(f"    {moved['category']}: {_pct(moved['validation_share'])} -> {_pct(moved['recent_share'])} "
                     f"(p = {moved['p_value']:.2g})")
    lines.append(f"  median score: {s['validation_median']:.3f} -> {s['recent_median']:.3f} "
                 f"(Kolmogorov-Smirnov p = {s['ks_p_value']:.3g})")
    u, n = report["unseen_words"], report["no_photo"]
    lines.append(f"  words never seen in training: {_pct(u['validation'])} -> {_pct(u['recent'])} of a product's "
                 f"words" + (f" (p = {u['p_value']:.3g})" if u["p_value"] is not None else ""))
    lines.append(f"  products without a photo: {_pct(n['validation'])} -> {_pct(n['recent'])} "
                 f"(p = {n['p_value']:.3g})")
    fell = [key for key, f in report["filing"].items() if f["fell"]]
    if fell:
        lines.append(f"DRIFT: filing at {', '.join(f'{float(k):.1%}' for k in fell)} fell by more than "
                     f"{FILING_FALL:.0%} points, beyond noise: more products go to people; review the queue and "
                     "retrain on their decisions.")
    if _categories_moved(c):
        named = ", ".join(m["category"] for m in c["moved"][:MOVED_SHOWN]) or "no single category alone"
        lines.append(f"DRIFT: the predicted categories moved beyond noise ({named}): check that those products are "
                     "filed right (review a sample), then retrain.")
    if not report["drift"]:
        lines.append("no drift beyond noise: the model still fits what arrives.")
    return lines


def drift_sections(report: dict) -> list[tuple[str, pd.DataFrame]]:
    """The report page's tables: filing per target, and the categories that moved."""
    filing = pd.DataFrame([{"target": float(k), "validation_filed": f["validation"], "recent_filed": f["recent"],
                            "p_value": f["p_value"], "fell": "yes" if f["fell"] else "no"}
                           for k, f in report["filing"].items()])
    moved = pd.DataFrame(report["categories"]["moved"][:MOVED_SHOWN] or
                         [{"category": "none beyond noise", "validation_share": None, "recent_share": None,
                           "p_value": None}])
    return [("Filed automatically: validation split against recent products", filing),
            ("Predicted categories whose share moved beyond noise", moved)]


def drift_report(db: str | Path, experiment: pd.Series, images: str | Path | None, since: str | None = None,
                 image_runtime: str = "auto", model=None) -> dict:
    """Drift of the products first seen after ``since`` (default: when ``experiment`` was trained) against that
    experiment's validation split, predicted by its model (photos from ``images``, the crawl's store); ``model`` is
    that model already loaded (the review app's), else it is loaded from the experiment's file."""
    model_path = experiment["model_path"]
    if not model_path or not Path(model_path).is_file():
        raise AnalysisError(f"experiment {experiment['id']}: its model {model_path or '(none recorded)'} is not "
                            "there to predict with")
    since = since or experiment["created_at"]
    model = model if model is not None else load_model(model_path, image_runtime=image_runtime)
    predictions = load_predictions(db, "validation", int(experiment["id"]))
    if predictions.empty:
        raise AnalysisError(f"experiment {experiment['id']}: no validation predictions to compare with")
    recent = recent_products(db, images, since)
    report = {"experiment": int(experiment["id"]), "model": str(model_path), "since": since,
              "validation_products": len(predictions), "recent_products": len(recent), "drift": False}
    if len(recent):
        base = validation_sample(model, predictions)
        report.update(compare(base, sample_of(model, recent), thresholds_of(model_path)))
        report["since"] = since
    return report
