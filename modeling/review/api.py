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

from . import cards, decisions
from .dependencies import Database, State, api_access
from .predicting import predict_products, ranked_categories

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["api"], dependencies=[Depends(api_access)])




class Review(BaseModel):
    queue: cards.Queue
    item: str = Field(description="the card, as GET /api/queue names it")
    decision: str | None = Field(description="a leaf category id, 'exclude', 'keep' (each product keeps its label), "
                                             "or null to undo the decision in force")
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
    return {"item": card.item, "seen": card.version, "name": card.name, "description": card.description,
            "current": card.current, "products": card.size, "decision": card.decision,
            "suggestions": [vars(s) for s in card.suggestions]}


@router.get("/queue")
def queue(state: State, db: Database,
          queue: Annotated[cards.Queue, Query(description="file: products to file; suspect: suspect labels")] = "file",
          limit: Annotated[int, Query(ge=1, le=1000, description="how many undecided cards to list")] = 50) -> dict:
    """The queue's progress and its first undecided cards, with each card's version (``seen``) for a decision."""
    progress = cards.progress(db, queue, state.catalogue, time.time())
    pending = [cards.cards(db, queue, state.catalogue, item)[0]
               for item in islice(cards.pending(db, queue, state.catalogue), limit)]
    cards.complete_suggestions(pending, state.catalogue,
                               lambda payloads: ranked_categories(state.model, payloads, state.images))
    return {"queue": queue, "progress": vars(progress), "cards": [card_json(c) for c in pending]}


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
