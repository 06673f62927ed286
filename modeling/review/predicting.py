"""Predictions the review app makes: the JSON API's batches, the model's suggestions for suspect labels, and the
filing queue's suggestions scored again by a newly served model.

All go through ``modeling.predict``'s own record check and prediction lines, so the API answers exactly what
``python -m modeling.predict`` writes, ``decision`` included.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Connection, update

from .. import identity, store
from ..fields import optional_text
from ..predict import check_record, decision_of, prediction_lines
from .cards import Card, Catalogue, end_reads, queue_suggestions, stored_photo
from .serving import Served

__all__ = ["predict_products", "ranked_categories", "rescore"]


def predict_products(model, items: list[dict], images: Path,
                     thresholds: dict[str, float | None] | None = None) -> list[dict]:
    """One line per item, in order: its prediction with its ``decision`` by ``thresholds`` (the model card's for the
    app's target accuracy; ``review`` where there are none), or ``{"index", "id", "error"}`` for an item that cannot
    be predicted (the others still are). A photo is looked for in the image store only: a path leading out of it is an
    error of its item. The store's real path is looked up only for a batch naming photos (a request's stat calls)."""
    root = images.resolve() if any(item.get("image_path") is not None for item in items) else None
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


def _stored_rows(payloads: list[dict], images: Path, ids: list | None = None) -> list[dict]:
    """Rows for ``prediction_lines`` from stored products (name, description, and the photo's path in the image
    store ``images`` as the crawl or the queue stored it, or None); a photo outside the store or gone is left out."""
    rows = []
    for i, p in enumerate(payloads):
        photo = stored_photo(p.get("image_path"), images)
        rows.append({"id": i if ids is None else ids[i], "name": optional_text(p.get("name")),
                     "description": optional_text(p.get("description")),
                     "image_path": None if photo is None else str(photo)})
    return rows


def ranked_categories(model, payloads: list[dict], images: Path) -> list[list[tuple[str, float]]]:
    """The model's best categories for each stored product, best first."""
    return [[(line["category"], line["score"]), *((a["category"], a["score"]) for a in line["alternatives"])]
            for line in prediction_lines(model, _stored_rows(payloads, images))]


def rescore(connection: Connection, found: list[Card], served: Served, catalogue: Catalogue, images: Path) -> None:
    """Score again, with the model served, the filing-queue cards another model scored, as they are shown (a card
    nobody opens costs nothing, and a queue of a whole crawl is never predicted at once): their stored prediction
    and model are replaced, committed, and the cards' suggestions with them. A card's version is its reviews', so a
    card shown before stays open and decidable. The update names the model it replaces: two requests scoring one
    card at once write the same line once."""
    stale = [c for c in found if c.queue == "file" and c.queue_id is not None and not c.unadvised
             and c.scored_by != str(served.path)]
    if not stale:
        return
    ids = []
    for card in stale:
        who = identity.parse(card.subject)
        ids.append(who.product_id if who.product_id is not None else who.record_id)
    lines = list(prediction_lines(served.model, _stored_rows([c.payload for c in stale], images, ids),
                                  served.thresholds))
    table = store.filing_queue
    end_reads(connection)
    with connection.begin():
        for card, line in zip(stale, lines, strict=True):
            connection.execute(update(table).where(table.c.id == card.queue_id, table.c.model_path == card.scored_by)
                               .values(prediction=json.dumps(line, default=str), model_path=str(served.path)))
    for card, line in zip(stale, lines, strict=True):
        card.suggestions, card.scored_by = queue_suggestions(line, catalogue, str(served.path)), str(served.path)
