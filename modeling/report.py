"""The report's HTML pages: the most confident errors and an index that brings the report together
(``modeling.analyze``), and the suspect labels of an audit, grouped (``modeling.audit``).

Both are rendered by the Jinja2 templates the review app uses (``modeling.templating``): written as files by
``modeling.analyze`` (the style sheet inside, photos as data URIs, so a copied page still works) and served as pages
of the app (``/report``, photos from the image store). Autoescaping shows every piece of product text as text;
figures get readable headings, and shares are shown as percentages.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from .fields import is_missing
from .templating import STATIC, environment, percent
from .text import clean_text

__all__ = ["HEADINGS", "embedded_photo", "error_rows", "errors_page", "index_context", "index_page", "suspects_page",
           "table"]

# column -> what a reader calls it
HEADINGS = {
    "branch": "Branch", "n": "Products", "accuracy": "Accuracy",
    "coverage_95": "Filed alone at 95% accuracy", "threshold_95": "Score needed (95%)",
    "coverage_98": "Filed alone at 98% accuracy", "threshold_98": "Score needed (98%)",
    "parent_accuracy": "Parent accuracy", "parent_coverage_95": "Parent filed alone at 95%",
    "parent_coverage_98": "Parent filed alone at 98%", "macro_f1": "Macro-F1", "ece": "Calibration error (ECE)",
    "category": "Category", "precision": "Precision", "recall": "Recall", "f1": "F1", "support": "Products",
    "true": "True category", "predicted": "Predicted", "count": "Errors", "share_of_true": "Share of the true category",
    "mcnemar_p": "McNemar p", "target": "Target accuracy", "leaf_threshold": "Score to file at the leaf",
    "parent_threshold": "Parent score to file at the parent", "leaf_share": "Filed at the leaf",
    "leaf_accuracy": "Leaf accuracy", "parent_share": "Filed at the parent", "review_share": "Sent to a person",
    "validation_filed": "Filed (validation split)", "recent_filed": "Filed (recent products)", "p_value": "p-value",
    "fell": "Fell beyond noise", "validation_share": "Share (validation split)", "recent_share": "Share (recent)",
    "held_to": "Held to", "leaf_bound": "Leaf accuracy promised", "parent_bound": "Parent accuracy promised",
}
PERCENT = {"accuracy", "coverage_95", "coverage_98", "parent_accuracy", "parent_coverage_95", "parent_coverage_98",
           "macro_f1", "ece", "precision", "recall", "f1", "share_of_true", "target", "leaf_share", "leaf_accuracy",
           "parent_share", "review_share", "validation_filed", "recent_filed", "validation_share", "recent_share",
           "held_to", "leaf_bound", "parent_bound"}
# scores, not shares: three decimals tell neighbours apart; none means that nothing is filed alone there
THRESHOLDS = {"threshold_95", "threshold_98", "leaf_threshold", "parent_threshold"}
# a figure that does not apply (a branch without a parent figure, a level that files nothing): the console's "-"
NONE = "–"
# a threshold column -> the column of the same row saying why it has none (a filing level that never files)
NEVER = {"leaf_threshold": "leaf_never", "parent_threshold": "parent_never"}


def _value(column: str, value: object, row: dict) -> tuple[str, bool]:
    """(text, numeric) of one cell of ``row``. A missing threshold says "never" (a blank reads as a figure left
    out), with the reason the row holds for it where it has one."""
    if hasattr(value, "item"):
        value = value.item()
    if value is None or (isinstance(value, float) and value != value):
        if column not in THRESHOLDS:
            return NONE, True
        reason = row.get(NEVER[column]) if column in NEVER else None
        return ("never" if is_missing(reason) else f"never: {reason}"), False
    if column in PERCENT:
        return percent(value), True
    if column in THRESHOLDS:
        return f"{value:.3f}", True
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value), False
    return f"{value:,}" if isinstance(value, int) else f"{value:.3f}", True


def table(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> dict:
    """A frame as the templates' table: readable headings, and cells as (text, numeric). ``columns``: the ones
    shown (default: all); the others can still explain a cell (``NEVER``)."""
    shown = list(frame.columns if columns is None else columns)
    names = [str(c) for c in shown]
    return {"headings": [HEADINGS.get(c, c.replace("_", " ").capitalize()) for c in names],
            "rows": [[_value(name, row[c], row) for c, name in zip(shown, names, strict=True)]
                     for row in frame.to_dict("records")]}


def _render(name: str, **context) -> str:
    return environment().get_template(name).render(inline_style=(STATIC / "style.css").read_text(encoding="utf-8"),
                                                   **context)


def embedded_photo(images: Path | None) -> Callable[[object, object], str | None]:
    """(product id, photo path) -> the photo as a data URI (for a page written as a file), or None."""
    def source(_product_id: object, relative: object) -> str | None:
        if is_missing(relative) or images is None:
            return None
        try:
            return "data:image/jpeg;base64," + base64.b64encode((images / str(relative)).read_bytes()).decode("ascii")
        except OSError:
            return None
    return source


def error_rows(errors: pd.DataFrame, photo: Callable[[object, object], str | None]) -> list[dict]:
    """The errors page's rows; ``photo`` gives the image's source from (product id, photo path), or None."""
    return [{"photo": photo(e.product_id, e.image_path) if "image_path" in errors else None, "product_id": e.product_id,
             "name": clean_text(e.name), "description": clean_text(e.description), "true": e.true_category,
             "predicted": e.predicted_category, "score": percent(e.score)} for e in errors.itertuples(index=False)]


def errors_page(errors: pd.DataFrame, images: Path | None, title: str) -> str:
    """The most confident errors as a file: photo, name, cleaned description (shown as text), true and predicted
    category, score."""
    return _render("report_errors.html", title=title, rows=error_rows(errors, embedded_photo(images)))


def index_context(title: str, sections: Iterable[tuple[str, dict]], charts: Iterable[str],
                  errors_file: str | None, notes: Iterable[str] = ()) -> dict:
    """What ``report_index.html`` shows, for a file or a page of the app."""
    return {"title": title, "notes": list(notes), "sections": list(sections), "errors_file": errors_file,
            "charts": [(c, Path(c).stem.replace("_", " ").capitalize()) for c in charts]}


def index_page(title: str, sections: Iterable[tuple[str, dict]], charts: Iterable[str], errors_file: str | None,
               notes: Iterable[str] = ()) -> str:
    """Notes (a paragraph each), sections of (heading, ``table(...)``), then the charts (file names beside the
    page), then a link to the errors."""
    return _render("report_index.html", **index_context(title, sections, charts, errors_file, notes))


def suspects_page(suspects: pd.DataFrame, title: str, images: Path | None = None) -> str:
    """An audit's suspects as a file, one row per product, grouped by cleaned name, the group holding the worst
    suspect first: photo, name, cleaned description, the given label and the suggested one with their out-of-fold
    probabilities, and cleanlab's label quality. Photo paths are the local ones ``load_products`` resolved, or
    relative to ``images``."""
    photo = embedded_photo(images if images is not None else Path())
    order = suspects.groupby("group_key", sort=False)["rank"].transform("min")
    rows = [{"photo": photo(s.product_id, s.image_path), "rank": s.rank, "product_id": s.product_id,
             "name": clean_text(s.name), "group": s.group_key, "description": clean_text(s.description),
             "given": s.given_label, "given_score": percent(s.given_score), "suggested": s.suggested_label,
             "suggested_score": percent(s.suggested_score), "quality": f"{s.quality:.4f}"}
            for s in suspects.assign(_group=order).sort_values(["_group", "rank"]).itertuples(index=False)]
    groups = suspects["group_key"].nunique() if len(suspects) else 0
    return _render("report_suspects.html", title=title, rows=rows, groups=groups)
