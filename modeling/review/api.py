"""The JSON API beside the pages: predictions as ``modeling.predict`` writes them, the queues, and decisions.

Every route needs the app's token when it has one (``Authorization: Bearer TOKEN``), and with a token per reviewer a
decision is recorded for the token's owner. Bodies are read only when sent as ``application/json`` (415 otherwise).
No route predicts or reads the database on the event loop: plain ``def`` routes run in FastAPI's thread pool, and
``/api/predict``, the one an import job calls in a stream, hands its prediction to a thread with
``asyncio.to_thread``, a cheaper hop than FastAPI's (``bench/api.py``).
"""

from __future__ import annotations

import asyncio
import json
import time
from itertools import islice
from pathlib import Path
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from typing_extensions import TypedDict

from .. import identity, store
from ..filing_queue import differences, queue_products
from ..predict import check_record
from . import cards, decisions, items, leases
from .dependencies import ApiReviewer, Database, Model, State, api_access, json_body
from .items import FileItem, SuspectItem
from .predicting import predict_products, ranked_categories, rescore

__all__ = ["DESCRIPTION_MAX_CHARS", "NAME_MAX_CHARS", "router"]

NAME_MAX_CHARS = 1_000  # the real catalogs' longest names have under 100
DESCRIPTION_MAX_CHARS = 20_000  # the ShopStyle sample's longest description (HTML) has 5,156
SCORE_DECIMALS = 4  # a card's scores in the API (/api/predict keeps modeling.predict's lines as they are)


class Detail(BaseModel):
    detail: str


NOT_JSON = {415: {"model": Detail, "description": "the body was not sent as Content-Type: application/json"}}

router = APIRouter(prefix="/api", tags=["api"], dependencies=[Depends(api_access)],
                   responses={401: {"model": Detail, "description": "the app's token is missing or wrong"}})


class Product(TypedDict, total=False):
    """A product to predict, as ``python -m modeling.predict`` reads a record; a product it cannot predict (no id or
    name, a photo outside the image store) gets an error line of its own and the others are predicted. A TypedDict:
    pydantic validates it into the dict ``predict`` reads, with no model object made and dumped again."""
    id: str | int | None
    name: Annotated[str | None, Field(max_length=NAME_MAX_CHARS)]
    description: Annotated[str | None, Field(max_length=DESCRIPTION_MAX_CHARS)]
    image_path: Annotated[str | None, Field(description="a photo inside the app's image store")]


class Alternative(BaseModel):
    category: str
    score: float


class PredictionLine(BaseModel):
    """A product's prediction, as ``python -m modeling.predict`` writes it."""
    id: str | int
    category: str
    score: float
    parent: str | None
    parent_score: float
    alternatives: list[Alternative]
    photo_used: bool
    decision: Literal["leaf", "parent", "review"] = Field(description="file it at its leaf, at its parent, or send "
                                                                      "it to a person, at the app's target accuracy")


class PredictionError(BaseModel):
    """A product that could not be predicted, at its index in the request."""
    index: int
    id: str | int | None
    error: str


class Review(BaseModel):
    queue: cards.Queue
    item: str = Field(max_length=200, description="the card, as GET /api/queue names it")
    decision: str | None = Field(max_length=200, description="a leaf category id, 'exclude', 'keep' (each product "
                                                             "keeps its label), or null to withdraw your own "
                                                             "decisions in force on this card")
    reviewer: str | None = Field(None, min_length=1, max_length=100,
                                 description="who decides: required with a shared token or none; with a token per "
                                             "reviewer, the token's owner (another name is refused)")
    seen: int = Field(description="the card's version when it was read: a card that changed since is refused")


class Conflict(BaseModel):
    """Why a product posted to the queue again was not taken as posted."""
    fields: list[Literal["name", "description", "image_path"]] = Field(
        description="where the product posted differs from the one queued (a photo by its place in the image "
                    "store)")
    queued_name: str | None = Field(description="the name it is queued with: what its card shows")
    detail: str


class Queued(BaseModel):
    """A product of ``POST /api/queue`` and its card."""
    index: int
    id: str | int
    item: str = Field(description="its card, as GET /api/queue names it")
    added: bool = Field(description="false: it was queued already, by an earlier request or earlier in this one "
                                    "(the identical record posted again is a plain success)")
    conflict: Conflict | None = Field(None, description="present only when it was queued already with another "
                                                        "name, description or photo: the queue never rewrites a "
                                                        "queued product (a person may have its card open), so the "
                                                        "queued one stands and nothing was changed")


class Recorded(BaseModel):
    item: str
    decision: str | None
    settled: int = Field(description="how many products the decision settles")


class ServedModel(BaseModel):
    """The model the app serves now (a promotion reaches the app within a few seconds unless --model pinned it)."""
    experiment_id: int | None = Field(description="its experiment in this database (None: a --model file this "
                                                  "database's registry does not know)")
    path: str = Field(description="its file")
    promoted_at: str | None = Field(description="when it was last put in service (None: never promoted)")
    promoted_by: str | None
    pinned: bool = Field(description="given by --model: the app does not follow promotions")
    target_accuracy: float = Field(description="the accuracy /api/predict's decisions reach (--target-accuracy)")
    levels: list[Literal["leaf", "parent"]] = Field(description="where /api/predict may file a product (--levels): "
                                                                "['leaf'] never files at the parent")
    thresholds: dict[str, float | int | str | None] | None = Field(
        description="the auto-filing thresholds /api/predict decides by, at the app's target accuracy and levels (a "
                    "level left out has none; None: the model's card has none, and every product goes to review)")


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request) -> dict:
    """The API's schema, behind the token like every other route."""
    return request.app.openapi()


@router.post("/predict", dependencies=[Depends(json_body)],
             responses={200: {"model": list[PredictionLine | PredictionError],
                              "description": "one line per product, in order"}, **NOT_JSON})
async def predict(products: Annotated[list[Product], Body()], state: State, served: Model) -> Response:
    """One line per product, in order, as ``python -m modeling.predict`` writes them, ``decision`` included; an
    item that cannot be predicted gets ``{"index", "id", "error"}`` and the others are predicted. The lines are
    written once (orjson): they come from the model, not from a client, so they are not validated again. Predicted
    and written in a worker thread (asyncio's default executor): a batch never holds up the event loop, so other
    requests are answered meanwhile."""
    lines = await asyncio.to_thread(_lines_json, served.model, products, state.images, served.thresholds)
    return Response(lines, media_type="application/json")


def _lines_json(model, products: list[Product], images: Path, thresholds: dict[str, float | None] | None) -> bytes:
    return orjson.dumps(predict_products(model, products, images, thresholds))


@router.get("/model")
def model(served: Model) -> ServedModel:
    """The model the app serves: the one ``/api/predict``, the suggestions and the drift page use."""
    return ServedModel(experiment_id=served.experiment_id, path=str(served.path), promoted_at=served.promoted_at,
                       promoted_by=served.promoted_by, pinned=served.pinned, target_accuracy=served.target_accuracy,
                       levels=list(served.levels), thresholds=served.thresholds)


def score(value: float | None) -> float | None:
    """A card's score as the API gives it: a float of 4 decimals, the precision a person or a client acts on (an
    audit's raw 8.947971844021966e-05 says no more than 0.0001)."""
    return None if value is None else round(float(value), SCORE_DECIMALS)


def card_json(card: cards.Card) -> dict:
    """A card as the API lists it: its product's identity (``modeling.identity``: product_id for a crawled one,
    record_source and record_id for one from a file), its photo's URL, the current label's own score and where
    each score comes from: ``scored_by`` is the model file that scored a card to file, and the audit whose
    out-of-fold probabilities score a suspect card (each suggestion says its own, the model's completing an
    audit's)."""
    who = identity.parse(card.subject)
    key = items.parse(card.item, card.queue)
    return {"item": card.item, "seen": card.version, "name": card.name, "description": card.description,
            "product_id": who.product_id, "record_source": who.source, "record_id": who.record_id,
            "photo_url": f"/photos/{card.photo}" if card.photo else None,
            "current": card.current, "current_score": score(card.current_score),
            "current_score_source": card.current_score_source, "products": card.size, "decision": card.decision,
            "suggestions": [{**vars(s), "score": score(s.score)} for s in card.suggestions],
            "unadvised": card.unadvised,
            "scored_by": cards.audit_label(key.audit_id) if isinstance(key, SuspectItem) else card.scored_by}


@router.get("/queue")
def queue(state: State, db: Database, served: Model, owner: ApiReviewer,
          queue: Annotated[cards.Queue, Query(description="file: products to file; suspect: suspect labels")] = "file",
          limit: Annotated[int, Query(ge=1, le=1000, description="how many undecided cards to list")] = 50,
          reviewer: Annotated[str | None, Query(max_length=100, description="who asks: cards another reviewer "
                                                                            "has open are left out (all open cards "
                                                                            "when not given; with a token per "
                                                                            "reviewer, the token's owner)")] = None
          ) -> dict:
    """The queue's progress and its first undecided cards nobody else has open, with each card's version (``seen``)
    for a decision."""
    now = time.time()
    progress = cards.progress(db, queue, state.catalogue, now)
    held = leases.held_by_others(db, owner or reviewer, now)
    pending = [cards.cards(db, queue, state.catalogue, item)[0]
               for item in islice((i for i in cards.pending(db, queue, state.catalogue) if i not in held), limit)]
    rescore(db, pending, served, state.catalogue, state.images)
    cards.complete_suggestions(pending, state.catalogue,
                               lambda payloads: ranked_categories(served.model, payloads, state.images),
                               str(served.path))
    return {"queue": queue, "progress": vars(progress), "cards": [card_json(c) for c in pending]}


@router.post("/queue", dependencies=[Depends(json_body)],
             responses={200: {"model": list[Queued | PredictionError],
                              "description": "one line per product, in order"}, **NOT_JSON})
def add_to_queue(products: Annotated[list[Product], Body()], state: State, db: Database, served: Model,
                 source: Annotated[str, Query(min_length=1, max_length=200,
                                              description="the name the products' ids belong to (a file, a feed): "
                                                          "with the id, their identity")] = "api") -> list[dict]:
    """Add products to the filing queue, as ``modeling.predict --queue`` does for a file (known by ``source`` and
    their id; one already queued is not added twice): one line per product, in order, with its card's ``item``
    and whether it was ``added``, or ``{"index", "id", "error"}`` for a product that cannot be predicted (the
    others are queued). A product queued already is never rewritten (a person may have its card open): posted
    again as it was, that is a plain success; posted with another name, description or photo, its line says so in
    ``conflict`` (which fields, the name it is queued with), so a client never takes the old card for its new
    record."""
    lines = predict_products(served.model, products, state.images, served.thresholds)
    good = [(index, check_record(products[index], state.images.resolve())[0], line)
            for index, line in enumerate(lines) if "error" not in line]
    table = store.filing_queue
    cards.end_reads(db)
    with db.begin():
        before = db.execute(select(func.max(table.c.id))).scalar() or 0
        ids = queue_products(db, [(row, line) for _, row, line in good], source=source,
                             model_path=str(served.path), from_crawl=False, photo_store=state.images)
        kept = {queue_id: json.loads(payload) for queue_id, payload in
                db.execute(select(table.c.id, table.c.payload).where(table.c.id.in_(set(ids))))}
    answered: set[int] = set()
    for (index, row, _), queue_id in zip(good, ids, strict=True):
        item = str(FileItem(queue_id))
        line = {"index": index, "id": lines[index]["id"], "item": item,
                "added": queue_id > before and queue_id not in answered}
        answered.add(queue_id)
        fields = [] if line["added"] else differences(kept[queue_id], row, from_crawl=False,
                                                      photo_store=state.images)
        if fields:
            name = kept[queue_id].get("name")
            line["conflict"] = {"fields": fields, "queued_name": name,
                                "detail": f"{item} was queued already as {name!r}, and this product differs in "
                                          f"{', '.join(fields)}: the queue never rewrites a queued product (a "
                                          "person may have its card open), so nothing was changed"}
        lines[index] = line
    return lines


@router.post("/reviews", dependencies=[Depends(json_body)], responses={
    403: {"model": Detail, "description": "the body names another reviewer than the token's owner"},
    404: {"model": Detail, "description": "no such card in the queue"},
    409: {"model": Detail, "description": "the card changed since `seen`, or another reviewer holds it: nothing "
                                          "was changed, and the detail says by whom"},
    **NOT_JSON})
def review(body: Review, state: State, db: Database, owner: ApiReviewer) -> Recorded:
    """Record a decision on one card, committed before the answer; 409 with the reason when the card changed since
    ``seen`` or another reviewer holds it."""
    if owner is not None and body.reviewer not in (None, owner):
        raise HTTPException(403, f"this token is {owner}'s: it cannot decide as {body.reviewer}")
    reviewer = owner or body.reviewer
    if reviewer is None:
        raise HTTPException(422, "say who decides: reviewer")
    try:
        card, settled = decisions.decide(db, body.queue, state.catalogue, body.item, body.decision, reviewer,
                                         body.seen, time.time())
    except decisions.Stale as error:
        raise HTTPException(409, str(error)) from error
    except decisions.DecisionError as error:
        raise HTTPException(422, str(error)) from error
    except KeyError as error:
        raise HTTPException(404, f"no card {body.item!r} in the {body.queue} queue") from error
    return Recorded(item=card.item, decision=body.decision, settled=settled)
