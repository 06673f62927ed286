"""PNG charts of ``modeling.analyze``, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402

__all__ = ["accuracy_coverage_chart", "category_f1_chart", "confusion_chart"]


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def accuracy_coverage_chart(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """Accuracy of the auto-filed products against the share filed, one line per experiment."""
    figure, axes = plt.subplots(figsize=(7, 5))
    for label, (coverage, accuracy) in curves.items():
        axes.plot(coverage, accuracy, label=label)
    for target in (0.95, 0.98):
        axes.axhline(target, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("coverage (share of products auto-filed, most confident first)")
    axes.set_ylabel("accuracy of the auto-filed products")
    axes.set_xlim(0, 1)
    axes.legend(loc="lower left", fontsize="small")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def category_f1_chart(table: pd.DataFrame, path: Path, most: int = 60) -> Path:
    """F1 per category, the worst ``most`` when there are more."""
    shown = table.head(most).iloc[::-1]
    figure, axes = plt.subplots(figsize=(7, max(3, 0.22 * len(shown) + 1)))
    axes.barh(shown["category"].astype(str), shown["f1"])
    axes.set_xlim(0, 1)
    axes.set_xlabel("F1")
    axes.tick_params(axis="y", labelsize=7)
    axes.set_title(f"F1 per category (worst {len(shown)} of {len(table)})" if len(table) > most else
                   "F1 per category")
    return _save(figure, path)


def confusion_chart(true: pd.Series, predicted: pd.Series, path: Path, most: int = 12) -> Path:
    """Confusion counts among the ``most`` categories involved in the most errors."""
    wrong = true != predicted
    involvement = pd.concat([true[wrong], predicted[wrong]]).value_counts()
    labels = list(involvement.index[:most]) or list(true.value_counts().index[:most])
    matrix = confusion_matrix(true, predicted, labels=labels)
    figure, axes = plt.subplots(figsize=(1.0 + 0.55 * len(labels), 0.8 + 0.5 * len(labels)))
    image = axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    axes.set_yticks(range(len(labels)), labels, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            axes.text(j, i, str(count), ha="center", va="center", fontsize=6,
                      color="white" if count > matrix.max() / 2 else "black")
    figure.colorbar(image, ax=axes, shrink=0.7)
    return _save(figure, path)
