"""The JSON API beside the pages: predictions as ``modeling.predict`` writes them, the queues, and decisions.

Every route needs the app's token when it has one (``Authorization: Bearer TOKEN``). Routes are plain ``def``:
FastAPI runs them in its thread pool, so predicting a batch never blocks the server's event loop.
"""

from __future__ import annotations

import time
from itertools import islice
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from .. import identity
from ..filing_queue import queue_products
from ..predict import check_record
from . import cards, decisions, leases
from .dependencies import Database, State, api_access
from .items import FileItem
from .predicting import predict_products, ranked_categories

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["api"], dependencies=[Depends(api_access)])




class Review(BaseModel):
    queue: cards.Queue
    item: str = Field(description="the card, as GET /api/queue names it")
    decision: str | None = Field(description="a leaf category id, 'exclude', 'keep' (each product keeps its label), "
                                             "or null to withdraw your own decisions in force on this card")
    reviewer: str = Field(min_length=1, max_length=100)
    seen: int = Field(description="the card's version when it was read: a card that changed since is refused")


@router.post("/predict")
def predict(products: Annotated[list[Any], Body(description="products as modeling.predict reads them: id, name, "
                                                           "description, image_path (inside the image store)")],
            state: State) -> list[dict]:
    """One line per product, in order, as ``python -m modeling.predict`` writes them, ``decision`` included; an
    item that cannot be predicted gets ``{"index", "id", "error"}`` and the others are predicted."""
    return predict_products(state.model, products, state.images, state.thresholds)


def card_json(card: cards.Card) -> dict:
    """A card as the API lists it: its product's identity (``modeling.identity``: product_id for a crawled one,
    record_source and record_id for one from a file), its photo's URL, the current label's own score and where
    each score comes from."""
    who = identity.parse(card.subject)
    return {"item": card.item, "seen": card.version, "name": card.name, "description": card.description,
            "product_id": who.product_id, "record_source": who.source, "record_id": who.record_id,
            "photo_url": f"/photos/{card.photo}" if card.photo else None,
            "current": card.current, "current_score": card.current_score,
            "current_score_source": card.current_score_source, "products": card.size, "decision": card.decision,
            "suggestions": [vars(s) for s in card.suggestions]}


@router.get("/queue")
def queue(state: State, db: Database,
          queue: Annotated[cards.Queue, Query(description="file: products to file; suspect: suspect labels")] = "file",
          limit: Annotated[int, Query(ge=1, le=1000, description="how many undecided cards to list")] = 50,
          reviewer: Annotated[str | None, Query(max_length=100, description="who asks: cards another reviewer "
                                                                            "has open are left out (all open cards "
                                                                            "when not given)")] = None) -> dict:
    """The queue's progress and its first undecided cards nobody else has open, with each card's version (``seen``)
    for a decision."""
    now = time.time()
    progress = cards.progress(db, queue, state.catalogue, now)
    held = leases.held_by_others(db, reviewer, now)
    pending = [cards.cards(db, queue, state.catalogue, item)[0]
               for item in islice((i for i in cards.pending(db, queue, state.catalogue) if i not in held), limit)]
    cards.complete_suggestions(pending, state.catalogue,
                               lambda payloads: ranked_categories(state.model, payloads, state.images))
    return {"queue": queue, "progress": vars(progress), "cards": [card_json(c) for c in pending]}


@router.post("/queue")
def add_to_queue(products: Annotated[list[Any], Body(description="products as modeling.predict reads them: id, "
                                                                "name, description, image_path (inside the image "
                                                                "store)")],
                 state: State, db: Database,
                 source: Annotated[str, Query(min_length=1, max_length=200,
                                              description="the name the products' ids belong to (a file, a feed): "
                                                          "with the id, their identity")] = "api") -> list[dict]:
    """Add products to the filing queue, as ``modeling.predict --queue`` does for a file (known by ``source`` and
    their id; one already queued is not added twice): one line per product, in order, with its card's ``item``,
    or ``{"index", "id", "error"}`` for a product that cannot be predicted (the others are queued)."""
    lines = predict_products(state.model, products, state.images, state.thresholds)
    good = [(index, check_record(products[index], state.images.resolve())[0], line)
            for index, line in enumerate(lines) if "error" not in line]
    cards.end_reads(db)
    with db.begin():
        ids = queue_products(db, [(row, line) for _, row, line in good], source=source,
                             model_path=str(state.model_path), from_crawl=False, photo_store=state.images)
    for (index, _, _), queue_id in zip(good, ids, strict=True):
        lines[index] = {"index": index, "id": lines[index]["id"], "item": str(FileItem(queue_id))}
    return lines


@router.post("/reviews")
def review(body: Review, state: State, db: Database) -> dict:
    """Record a decision on one card; 409 with the reason when the card changed since ``seen`` or another reviewer
    holds it. Committed before the answer."""
    try:
        card, settled = decisions.decide(db, body.queue, state.catalogue, body.item, body.decision, body.reviewer,
                                     body.seen, time.time())
    except decisions.Stale as error:
        raise HTTPException(409, str(error)) from error
    except decisions.DecisionError as error:
        raise HTTPException(422, str(error)) from error
    except KeyError as error:
        raise HTTPException(404, f"no card {body.item!r} in the {body.queue} queue") from error
    return {"item": card.item, "decision": body.decision, "settled": settled}
