"""The review app's cards, leases and decisions, read from and written to the crawl database (``modeling.store``).

Two queues hold the cards a person works through:

- ``file``: one card per row of the filing queue (``modeling.predict --queue``): a product the model could not file.
- ``suspect``: one card per group of the latest audit's label issues (same cleaned name), worst first: deciding a
  group settles every product in it.

A decision is the reviews rows it appends (``modeling.reviews.record_decision``), committed before the caller
answers. Each card carries a version (the id of the latest review row touching it): a decision made on an older
version, or on a card another reviewer holds a live lease on, is refused with ``Stale`` and changes nothing. Routes
stay thin: everything the pages and the API do to the database is here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Literal

from sqlalchemy import Connection, and_, case, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from shopstyle_spider import schema

from .. import store
from ..fields import photo_path
from ..reviews import record_decision
from ..text import clean_text

__all__ = ["KEEP", "LEASE_SECONDS", "QUEUES", "Card", "Queue", "Catalogue", "DecisionError", "Progress", "Stale",
           "Suggestion", "cards", "decide", "next_card", "pending", "photo_file", "progress", "undo_last"]

QUEUES = {"file": "unsure", "suspect": "audit"}  # queue -> the review source its decisions are recorded under
Queue = Literal["file", "suspect"]
KEEP = "keep"  # a decision that keeps the label each product already has
LEASE_SECONDS = 300.0  # how long a card stays with the reviewer who opened it
RATE_WINDOW_S = 600  # decisions per minute are counted over the last ten minutes
SUGGESTIONS = 3


class Stale(Exception):
    """A decision made on a card that changed, or that someone else holds, since it was shown."""


class DecisionError(ValueError):
    """A decision that names no leaf, or keeps a label a product does not have."""


@dataclass
class Suggestion:
    category: str
    score: float | None
    path: str
    source: str  # "model" or "audit"


@dataclass
class Card:
    item: str  # "queue:<filing_queue id>" or "audit:<audit id>:<group key>"
    queue: str
    name: str  # cleaned text: the templates escape it, nothing else must
    description: str
    photo: str | None  # "queue/<id>" or "product/<id>", served by the app from the image store only
    current: str | None  # the label the product has now (the crawled or given one), if any
    given: dict  # product id (or None for a new product) -> the label "keep" keeps
    suggestions: list[Suggestion] = field(default_factory=list)
    version: int = 0  # id of the latest review row touching the card, 0 when none
    decision: str | None = None  # the decision in force when every product has one ("mixed" when they differ)
    decided_at: str | None = None
    queue_id: int | None = None
    payload: dict | None = None  # what the model reads, for suggestions made on demand

    @property
    def size(self) -> int:
        return len(self.given)

    @property
    def done(self) -> bool:
        return self.decision is not None


@dataclass
class Catalogue:
    """Every leaf of the crawl, with its path from the root, for the picker and the suggestions. Only these can be
    decided: training and the audit read decisions against the crawl's leaves (as ``modeling.reviews import``
    checks), so a class of a model trained elsewhere is shown by its id, never filed under."""
    leaves: dict[str, str]
    names: dict[str, str] = field(default_factory=dict)  # leaf id -> its name, for the search by name

    @classmethod
    def load(cls, connection: Connection) -> Catalogue:
        categories = schema.categories
        rows = connection.execute(select(categories.c.id, categories.c.path, categories.c.name)
                                  .where(categories.c.is_leaf == 1).order_by(categories.c.path)).all()
        return cls({row.id: row.path for row in rows}, {row.id: row.name for row in rows})

    def path(self, category: str) -> str:
        return self.leaves.get(category, category)


@dataclass
class Progress:
    done: int
    left: int
    per_minute: float


def _latest(connection: Connection, key, keys: Iterable | None = None) -> dict:
    """key value -> (row id, decision, reviewer, created_at) of the latest reviews row of each of ``keys`` (of every
    value of ``key`` when None: a whole queue is read in one pass, whatever its size)."""
    reviews = store.reviews
    query = select(key.label("key"), func.max(reviews.c.id).label("id")).where(key.is_not(None))
    if keys is not None:
        keys = [k for k in set(keys) if k is not None]
        if not keys:
            return {}
        query = query.where(key.in_(keys))
    latest = query.group_by(key).subquery()
    rows = connection.execute(select(latest.c.key, reviews.c.id, reviews.c.decision, reviews.c.reviewer,
                                     reviews.c.created_at).join(latest, reviews.c.id == latest.c.id))
    return {row[0]: tuple(row[1:]) for row in rows}


def _queue_cards(connection: Connection, catalogue: Catalogue, queue_id: int | None = None) -> list[Card]:
    table, products = store.filing_queue, schema.products
    query = (select(table.c.id, table.c.product_id, table.c.payload, table.c.prediction, products.c.category_id)
             .outerjoin(products, products.c.id == table.c.product_id).order_by(table.c.id))
    if queue_id is not None:
        query = query.where(table.c.id == queue_id)
    rows = connection.execute(query).all()
    latest = _latest(connection, store.reviews.c.queue_id, None if queue_id is None else [queue_id])
    made = []
    for row in rows:
        payload, prediction = json.loads(row.payload), json.loads(row.prediction)
        ranked = [{"category": prediction["category"], "score": prediction["score"]},
                  *prediction.get("alternatives", [])][:SUGGESTIONS]
        last = latest.get(row.id)
        card = Card(item=f"queue:{row.id}", queue="file", name=clean_text(payload.get("name")),
                    description=clean_text(payload.get("description")),
                    photo=f"queue/{row.id}" if photo_path(payload.get("image_path")) else None,
                    current=row.category_id, given={row.product_id: row.category_id}, queue_id=row.id,
                    suggestions=[Suggestion(s["category"], s["score"], catalogue.path(s["category"]), "model")
                                 for s in ranked], payload=payload)
        if last is not None:
            card.version, card.decision, card.decided_at = last[0], last[1], last[3] if last[1] else None
        made.append(card)
    return made


def _latest_audit(connection: Connection) -> int | None:
    if not store.has_table(connection, store.label_issues):
        return None
    return connection.execute(select(func.max(store.label_issues.c.audit_id))).scalar()


def _suspect_cards(connection: Connection, catalogue: Catalogue, group: tuple[int, str] | None = None) -> list[Card]:
    issues, products = store.label_issues, schema.products
    audit_id = group[0] if group else _latest_audit(connection)
    if audit_id is None:
        return []
    query = (select(issues.c.product_id, issues.c.given_label, issues.c.suggested_label, issues.c.suggested_score,
                    issues.c.group_key, issues.c.rank, products.c.name, products.c.description,
                    products.c.image_path)
             .join(products, products.c.id == issues.c.product_id).where(issues.c.audit_id == audit_id)
             .order_by(issues.c.rank))
    if group is not None:
        query = query.where(issues.c.group_key == group[1])
    rows = connection.execute(query).all()
    latest = _latest(connection, store.reviews.c.product_id, (r.product_id for r in rows) if group else None)
    groups: dict[str, list] = {}
    for row in rows:  # worst first: a group's place and face are its worst-ranked product's
        groups.setdefault(row.group_key, []).append(row)
    made = []
    for key, members in groups.items():
        face = members[0]
        card = Card(item=f"audit:{audit_id}:{key}", queue="suspect", name=clean_text(face.name),
                    description=clean_text(face.description),
                    photo=f"product/{face.product_id}" if photo_path(face.image_path) else None,
                    current=face.given_label, given={m.product_id: m.given_label for m in members},
                    suggestions=[Suggestion(face.suggested_label, face.suggested_score,
                                            catalogue.path(face.suggested_label), "audit")],
                    payload={"name": face.name, "description": face.description, "image_path": face.image_path})
        lasts = [latest.get(m.product_id) for m in members]
        card.version = max((last[0] for last in lasts if last), default=0)
        decisions = {last[1] if last else None for last in lasts}
        if None not in decisions:
            card.decision = decisions.pop() if len(decisions) == 1 else "mixed"
            card.decided_at = max(last[3] for last in lasts)
        made.append(card)
    return made


def cards(connection: Connection, queue: str, catalogue: Catalogue, item: str | None = None) -> list[Card]:
    """Every card of a queue in the order people work through it, or the one card ``item`` (none if it is gone)."""
    if queue not in QUEUES:
        raise KeyError(queue)
    if item is None:
        return _queue_cards(connection, catalogue) if queue == "file" else _suspect_cards(connection, catalogue)
    kind, _, rest = item.partition(":")
    if queue == "file" and kind == "queue" and rest.isdigit():
        return _queue_cards(connection, catalogue, int(rest))
    audit, _, key = rest.partition(":")
    if queue == "suspect" and kind == "audit" and audit.isdigit() and key:
        return _suspect_cards(connection, catalogue, (int(audit), key))
    return []


def complete_suggestions(found: list[Card], catalogue: Catalogue,
                         predict: Callable[[list[dict]], list[list[tuple[str, float]]]]) -> None:
    """Add the model's ranked categories to suspect cards (after the audit's own suggestion, without the given label
    that "keep" already offers), for all of them in one prediction."""
    wanting = [c for c in found if c.queue == "suspect" and len(c.suggestions) < SUGGESTIONS]
    if not wanting:
        return
    for card, ranked in zip(wanting, predict([c.payload for c in wanting]), strict=True):
        taken = {s.category for s in card.suggestions} | {card.current}
        for category, score in ranked:
            if len(card.suggestions) == SUGGESTIONS:
                break
            if category not in taken:
                card.suggestions.append(Suggestion(category, score, catalogue.path(category), "model"))
                taken.add(category)


def _take_lease(connection: Connection, item: str, holder: str, now: float) -> str | None:
    """Take or extend the lease on ``item`` inside the caller's transaction; the holder of a live lease, if another.

    The first statement is a write, so on sqlite the transaction holds the database's write lock from here on and
    what it reads next cannot change before it commits.
    """
    leases = store.leases
    taken = connection.execute(update(leases).where(leases.c.item == item, or_(
        leases.c.holder == holder, leases.c.expires_at < now)).values(holder=holder, expires_at=now + LEASE_SECONDS))
    if taken.rowcount:
        return None
    other = connection.execute(select(leases.c.holder).where(leases.c.item == item)).scalar()
    if other is not None:
        return other
    connection.execute(insert(leases).values(item=item, holder=holder, expires_at=now + LEASE_SECONDS))
    return None


def next_card(connection: Connection, queue: str, catalogue: Catalogue, holder: str, now: float,
              skip: Iterable[str] = (), prefer: str | None = None) -> Card | None:
    """The first undecided card nobody else holds, leased to ``holder`` (who lets go of any other card); ``prefer``
    goes first when it is free (the card an undo brought back)."""
    skip = set(skip)
    for item in chain([prefer] if prefer else [], pending(connection, queue, catalogue)):
        if item in skip:
            continue
        _end_reads(connection)
        try:
            with connection.begin():
                if _take_lease(connection, item, holder, now) is not None:
                    continue
                connection.execute(delete(store.leases).where(store.leases.c.holder == holder,
                                                              store.leases.c.item != item))
        except IntegrityError:  # another reviewer leased it between our update and insert
            continue
        found = cards(connection, queue, catalogue, item)
        if found and not found[0].done:  # the preferred card may have been decided meanwhile
            return found[0]
    return None


def decide(connection: Connection, queue: str, catalogue: Catalogue, item: str, decision: str | None,
           reviewer: str, seen: int, now: float) -> tuple[Card, int]:
    """Record one decision on one card, committed on return: a leaf id, ``store.EXCLUDE``, ``KEEP``, or None to
    undo the decision in force. Returns the card as it was decided on and how many products the decision settles.

    Raises ``Stale`` (nothing written) when another reviewer holds the card or it changed after version ``seen``,
    ``DecisionError`` for a decision that names no leaf, ``KeyError`` for a card that does not exist.
    """
    if decision is not None and decision not in (KEEP, store.EXCLUDE) and decision not in catalogue.leaves:
        raise DecisionError(f"{decision!r} is not a leaf category (nor {KEEP!r} or {store.EXCLUDE!r})")
    source = QUEUES[queue]
    _end_reads(connection)
    try:
        with connection.begin():
            holder = _take_lease(connection, item, reviewer, now)
            if holder is not None:
                raise Stale(f"{holder} has this card open; nothing was changed")
            found = cards(connection, queue, catalogue, item)
            if not found:
                raise KeyError(item)
            card = found[0]
            if card.version != seen:
                raise Stale(_changed(connection, card.version))
            settled = 0
            for product_id, given in card.given.items():
                current = _in_force(connection, card, product_id)
                if decision is None:  # an undo touches only what has a decision in force
                    if current is None:
                        continue
                    chosen = None
                elif decision == KEEP:
                    if given is None:
                        raise DecisionError("this product has no label to keep: choose a category")
                    chosen = given
                else:
                    chosen = decision
                record_decision(connection, decision=chosen, source=source, reviewer=reviewer,
                                product_id=product_id, queue_id=card.queue_id,
                                replaces=current if current is not None else given,
                                created_at=datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"))
                settled += 1
            connection.execute(delete(store.leases).where(store.leases.c.item == item))
    except IntegrityError as error:  # the lease row appeared between our update and insert
        raise Stale("another reviewer opened this card at the same moment; nothing was changed") from error
    return card, settled


def _end_reads(connection: Connection) -> None:
    """End the transaction SQLAlchemy began for earlier reads (it only read), so a write transaction can begin."""
    if connection.in_transaction():
        connection.rollback()


def _in_force(connection: Connection, card: Card, product_id: int | None) -> str | None:
    """The decision in force for one product of a card (its queue row's, for the filing queue), or None."""
    key, value = ((store.reviews.c.queue_id, card.queue_id) if card.queue_id is not None
                  else (store.reviews.c.product_id, product_id))
    last = _latest(connection, key, [value]).get(value)
    return last[1] if last else None


def _changed(connection: Connection, version: int) -> str:
    row = connection.execute(select(store.reviews.c.reviewer, store.reviews.c.created_at, store.reviews.c.decision)
                             .where(store.reviews.c.id == version)).first()
    if row is None:
        return "this card changed since you opened it; nothing was changed"
    what = "undone" if row.decision is None else f"decided ({row.decision})"
    return f"this card was {what} by {row.reviewer} at {row.created_at} since you opened it; nothing was changed"


def undo_last(connection: Connection, queue: str, catalogue: Catalogue, reviewer: str,
              now: float) -> tuple[Card, int] | None:
    """Undo ``reviewer``'s latest decision in this queue that is still in force; None when there is none."""
    reviews = store.reviews
    mine = connection.execute(select(reviews.c.id, reviews.c.product_id, reviews.c.queue_id)
                              .where(reviews.c.reviewer == reviewer, reviews.c.source == QUEUES[queue],
                                     reviews.c.decision.is_not(None)).order_by(reviews.c.id.desc())).all()
    for row in mine:
        key, value = ((reviews.c.queue_id, row.queue_id) if queue == "file" else (reviews.c.product_id, row.product_id))
        if _latest(connection, key, [value]).get(value, (None,))[0] != row.id:
            continue  # superseded: by an undo or a later decision
        item = f"queue:{row.queue_id}" if queue == "file" else _group_of(connection, row.product_id)
        if item is None:
            continue
        found = cards(connection, queue, catalogue, item)
        if found:
            return decide(connection, queue, catalogue, item, None, reviewer, found[0].version, now)
    return None


def _group_of(connection: Connection, product_id: int) -> str | None:
    audit_id = _latest_audit(connection)
    key = connection.execute(select(store.label_issues.c.group_key).where(
        store.label_issues.c.audit_id == audit_id, store.label_issues.c.product_id == product_id)).scalar()
    return None if key is None else f"audit:{audit_id}:{key}"


def _undecided_file_ids(connection: Connection, after: int, limit: int = 200) -> list[int]:
    """Filing-queue ids after ``after`` with no decision in force, in order: a page of them, read by the database."""
    table, reviews = store.filing_queue, store.reviews
    latest = (select(reviews.c.queue_id, func.max(reviews.c.id).label("id")).where(reviews.c.queue_id.is_not(None))
              .group_by(reviews.c.queue_id).subquery())
    return list(connection.execute(
        select(table.c.id).select_from(table.outerjoin(latest, latest.c.queue_id == table.c.id)
                                       .outerjoin(reviews, reviews.c.id == latest.c.id))
        .where(reviews.c.decision.is_(None), table.c.id > after).order_by(table.c.id).limit(limit)).scalars())


def pending(connection: Connection, queue: str, catalogue: Catalogue) -> Iterator[str]:
    """The items of the cards still to decide, in the queue's order, read as they are wanted: a filing queue
    holding a whole crawl is never read whole to find the next card."""
    if queue != "file":
        yield from (c.item for c in cards(connection, queue, catalogue) if not c.done)
        return
    after = 0
    while ids := _undecided_file_ids(connection, after):
        yield from (f"queue:{i}" for i in ids)
        after = ids[-1]


def progress(connection: Connection, queue: str, catalogue: Catalogue, now: float) -> Progress:
    """Cards done and left, and cards decided per minute over the last ten minutes (since the first of them); the
    filing queue's counted by the database."""
    since = datetime.fromtimestamp(now - RATE_WINDOW_S, UTC).isoformat(timespec="seconds")
    if queue == "file":
        table, reviews = store.filing_queue, store.reviews
        latest = (select(reviews.c.queue_id, func.max(reviews.c.id).label("id"))
                  .where(reviews.c.queue_id.is_not(None)).group_by(reviews.c.queue_id).subquery())
        recently = and_(reviews.c.decision.is_not(None), reviews.c.created_at >= since)
        total, done, recent, first = connection.execute(
            select(func.count(table.c.id), func.count(reviews.c.decision),
                   func.coalesce(func.sum(case((recently, 1), else_=0)), 0),
                   func.min(case((recently, reviews.c.created_at))))
            .select_from(table.outerjoin(latest, latest.c.queue_id == table.c.id)
                         .outerjoin(reviews, reviews.c.id == latest.c.id))).one()
    else:
        found = cards(connection, queue, catalogue)
        decided = [c.decided_at for c in found if c.done and c.decided_at]
        total, done = len(found), sum(c.done for c in found)
        recent_times = [t for t in decided if t >= since]
        recent, first = len(recent_times), min(recent_times, default=None)
    minutes = max((now - datetime.fromisoformat(first).timestamp()) / 60, 1.0) if first else 1.0
    return Progress(done=done, left=total - done, per_minute=round(recent / minutes, 1))


def photo_file(connection: Connection, kind: str, key: int, images: Path) -> Path | None:
    """The stored photo of a queued product or a crawled one, only when it lies inside the image store; None for no
    photo or one outside the store (a queued file may name any path: it is never served)."""
    if kind == "queue":
        queued = connection.execute(select(store.filing_queue.c.payload, store.filing_queue.c.product_id)
                                    .where(store.filing_queue.c.id == key)).first()
        if queued is None:
            return None
        if queued.product_id is not None:  # a crawled product: its photo as the crawl stored it, relative to the store
            return photo_file(connection, "product", queued.product_id, images)
        value = json.loads(queued.payload).get("image_path")
    elif kind == "product":
        value = connection.execute(select(schema.products.c.image_path).where(schema.products.c.id == key)).scalar()
    else:
        return None
    return stored_photo(value, images)


def stored_photo(value: object, images: Path) -> Path | None:
    """The file a stored ``image_path`` (relative to the image store, as the crawl records it) names, only when it
    lies inside the store and exists; None for no photo, a path leading out of the store, or a missing file."""
    try:
        relative = photo_path(value)
        if relative is None:
            return None
        root = images.resolve()
        path = (root / relative).resolve()
    except (TypeError, ValueError):  # not a path at all, or one with a NUL byte: no photo, not a server error
        return None
    return path if path.is_relative_to(root) and path.is_file() else None
