"""Predictions the review app makes: the JSON API's batches, and the model's suggestions for suspect labels.

Both go through ``modeling.predict``'s own record check and prediction lines, so the API answers exactly what
``python -m modeling.predict`` writes, ``decision`` included.
"""

from __future__ import annotations

from pathlib import Path

from ..fields import optional_text
from ..predict import check_record, decision_of, prediction_lines
from .cards import stored_photo

__all__ = ["predict_products", "ranked_categories"]


def predict_products(model, items: list[dict], images: Path,
                     thresholds: dict[str, float | None] | None = None) -> list[dict]:
    """One line per item, in order: its prediction with its ``decision`` by ``thresholds`` (the model card's for the
    app's target accuracy; ``review`` where there are none), or ``{"index", "id", "error"}`` for an item that cannot
    be predicted (the others still are). A photo is looked for in the image store only: a path leading out of it is an
    error of its item."""
    root = images.resolve()
    lines: list[dict | None] = []
    rows = []
    for index, item in enumerate(items):
        row, problem = check_record(item, root)
        if row is not None and row["image_path"] is not None and not Path(row["image_path"]).resolve().is_relative_to(
                root):
            row, problem = None, "image_path leads outside the image store"
        if row is None:
            lines.append({"index": index, "id": item.get("id"), "error": problem})
        else:
            lines.append(None)
            rows.append(row)
    made = iter(prediction_lines(model, rows, thresholds) if rows else ())
    out = []
    for line in lines:
        if line is None:
            line = next(made)
            line["decision"] = decision_of(line)
        out.append(line)
    return out


def ranked_categories(model, payloads: list[dict], images: Path) -> list[list[tuple[str, float]]]:
    """The model's best categories for each product (name, description, and its photo's path in the image store
    ``images`` as the crawl stored it, or None), best first; a photo outside the store or gone is left out."""
    rows = []
    for i, p in enumerate(payloads):
        photo = stored_photo(p.get("image_path"), images)
        rows.append({"id": i, "name": optional_text(p.get("name")), "description": optional_text(p.get("description")),
                     "image_path": None if photo is None else str(photo)})
    return [[(line["category"], line["score"]), *((a["category"], a["score"]) for a in line["alternatives"])]
            for line in prediction_lines(model, rows)]
