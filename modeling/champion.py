"""Champion and challenger: is a newly trained model better than the one in service, beyond noise?

Both models predict the same test products. For each set of labels (the crawled ones, and the reviewed ones where a
person decided) each model's accuracy gets an exact 95% interval, and the two are compared product by product with
McNemar's exact test: among the products exactly one model gets right, is the split further from even than chance
allows? (``scipy.stats.binomtest`` on those discordant pairs is the exact McNemar test, so no statsmodels is
needed.) Filing is compared the same way at every target, each model filing by its own card's thresholds: the share
of the products it files at the leaf or the parent, and the paired test on which products each files.

The challenger is refused when, on any label set, it is less accurate with a McNemar p-value under 0.05, or when,
at any target the shop files at (``required``: every target unless told), it files fewer products with a p-value
under 0.05: "not worse beyond noise, files no less". A tie within noise is promoted (the newer model learned from
more decisions). Every target is compared and reported; only the ones filed at can refuse: a model that learned
the leaves a catalog grew files a little less at 99.5% (its probabilities spread over more leaves), and a weekly
cycle filing at 99% refused every retrained model for it while the one in service could not name the new leaves.
Nor does filing less refuse a model whose card makes a stricter promise at that target (``--batch-promise`` added
or lowered: each level held to a higher accuracy): a promise on every batch of 400 files less than one on the
level's accuracy by design, and a shop that chose it would otherwise never see a retrained model in service. A
looser promise that still files less is refused as any model filing less is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from .filing import LEVELS, at_levels, decide, target_key

__all__ = ["ALPHA", "compare", "comparison_table", "interval", "mcnemar"]

ALPHA = 0.05  # a difference with a paired p-value under this is beyond noise


def interval(right: int, n: int) -> tuple[float | None, float | None]:
    """The exact (Clopper-Pearson) two-sided 95% interval of an accuracy of ``right`` of ``n``."""
    if n == 0:
        return None, None
    ci = binomtest(right, n).proportion_ci(0.95, method="exact")
    return float(ci.low), float(ci.high)


def mcnemar(first: np.ndarray, second: np.ndarray) -> dict:
    """McNemar's exact test of two paired yes/no outcomes: ``only_first`` and ``only_second`` count the products
    where only one says yes, ``p`` is the two-sided p-value that the two say yes equally often.

    >>> mcnemar(np.array([1, 1, 1, 0] * 10, bool), np.array([1, 0, 0, 0] * 10, bool))["p"] < 0.05
    True
    """
    only_first, only_second = int((first & ~second).sum()), int((second & ~first).sum())
    p = binomtest(only_first, only_first + only_second).pvalue if only_first + only_second else 1.0
    return {"only_champion": only_first, "only_challenger": only_second, "p": float(p)}


def _accuracy(right: np.ndarray) -> dict:
    low, high = interval(int(right.sum()), len(right))
    return {"n": len(right), "accuracy": float(right.mean()) if len(right) else None, "low": low, "high": high}


def _filed(rows: pd.DataFrame, thresholds: Mapping | None) -> np.ndarray:
    if thresholds is None:
        return np.zeros(len(rows), dtype=bool)
    return decide(rows["score"], rows["parent_score"], thresholds) != "review"


def compare(champion: pd.DataFrame, challenger: pd.DataFrame, labels: Mapping[str, np.ndarray],
            champion_filing: Mapping | None, challenger_filing: Mapping | None, targets,
            required=None, levels: Sequence[str] = LEVELS) -> dict:
    """The comparison of two models' prediction rows (``modeling.train.prediction_rows``) over the same products in
    the same order: per label set (name -> true leaves) both accuracies, their intervals and McNemar's test; per
    target both filed shares at the ``levels`` the shop files at (a leaf-only shop gains nothing from a model that
    files more at the parent) and the test; the verdict (``promote``) and its ``reasons``, to which filing less
    counts at the ``required`` targets only (None: all of ``targets``)."""
    required = {target_key(t) for t in (targets if required is None else required)}
    if not np.array_equal(champion["product_id"].to_numpy(), challenger["product_id"].to_numpy()):
        raise ValueError("the champion and the challenger must be scored on the same products in the same order")
    result: dict = {"labels": {}, "filing": {}, "reasons": [], "levels": list(levels)}
    for name, true in labels.items():
        true = np.asarray(true, dtype=object)
        right = {who: true == rows["predicted_category"].to_numpy(dtype=object)
                 for who, rows in (("champion", champion), ("challenger", challenger))}
        entry = {who: _accuracy(r) for who, r in right.items()}
        entry["mcnemar"] = mcnemar(right["champion"], right["challenger"])
        result["labels"][name] = entry
        if entry["challenger"]["accuracy"] < entry["champion"]["accuracy"] and entry["mcnemar"]["p"] < ALPHA:
            result["reasons"].append(
                f"less accurate on the {name} labels: {entry['challenger']['accuracy']:.4f} against "
                f"{entry['champion']['accuracy']:.4f} (McNemar p = {entry['mcnemar']['p']:.2g})")
    for target in targets:
        key = target_key(target)
        at_target = [(filing or {}).get(key) for filing in (champion_filing, challenger_filing)]
        filed = {who: _filed(rows, None if chosen is None else at_levels(chosen, levels))
                 for who, rows, chosen in (("champion", champion, at_target[0]),
                                           ("challenger", challenger, at_target[1]))}
        entry = {who: float(f.mean()) for who, f in filed.items()}
        entry["mcnemar"] = mcnemar(filed["champion"], filed["challenger"])
        held_to = [((filing or {}).get(key) or {}).get("level_target") or target
                   for filing in (champion_filing, challenger_filing)]
        entry["stricter_promise"] = held_to[1] > held_to[0]
        result["filing"][key] = entry
        if (key in required and not entry["stricter_promise"] and entry["challenger"] < entry["champion"]
                and entry["mcnemar"]["p"] < ALPHA):
            result["reasons"].append(f"files less at {key}: {entry['challenger']:.1%} of the products against "
                                     f"{entry['champion']:.1%} (McNemar p = {entry['mcnemar']['p']:.2g})")
    result["promote"] = not result["reasons"]
    return result


def comparison_table(comparison: Mapping) -> pd.DataFrame:
    """One row per figure compared (accuracy per label set, filed share per target): both models, the paired test."""
    rows = []
    for name, entry in comparison["labels"].items():
        rows.append({"figure": f"accuracy, {name} labels (n={entry['challenger']['n']})",
                     "champion": entry["champion"]["accuracy"],
                     "champion_95%": _span(entry["champion"]), "challenger": entry["challenger"]["accuracy"],
                     "challenger_95%": _span(entry["challenger"]), "mcnemar_p": entry["mcnemar"]["p"]})
    only = "" if set(comparison.get("levels", LEVELS)) == set(LEVELS) else " at the leaf only"
    for key, entry in comparison["filing"].items():
        stricter = " (the challenger's promise is stricter: it may file less)" if entry.get("stricter_promise") else ""
        rows.append({"figure": f"filed at {key}{only}{stricter}", "champion": entry["champion"], "champion_95%": None,
                     "challenger": entry["challenger"], "challenger_95%": None, "mcnemar_p": entry["mcnemar"]["p"]})
    return pd.DataFrame(rows)


def _span(figures: Mapping) -> str | None:
    return f"{figures['low']:.4f}-{figures['high']:.4f}" if figures["low"] is not None else None
