"""The review app's cards: what each queue shows, read from the crawl database (``modeling.store``).

Two queues hold the cards a person works through:

- ``file``: one card per row of the filing queue (``modeling.predict --queue``, ``POST /api/queue``): a product the
  model could not file. A product a model filed itself after it was queued (its newest filing since, at the leaf
  or the parent, ``modeling.filings``) waits for nobody: it leaves the queue's work unless a person decided it, and
  comes back if a still newer model sends it to a person again. A decision on it (the API, an import) still stands
  over every model's filing.
- ``suspect``: one card per group of the latest audit's label issues (copies of one product), worst first: deciding
  a group settles every product in it. Products of the test split are never shown here (see ``modeling.audit``).

A card shows each product's label in force (``modeling.reviews.in_force``: the one definition of it) and carries a
version: the id of the latest review row that touched any of its products, whichever queue, import or API wrote
it. ``modeling.review.decisions`` refuses a decision made on an older version; ``modeling.review.leases`` says who
holds a card. Routes stay thin: everything the pages and the API read is here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path

from sqlalchemy import ColumnElement, Connection, case, func, select
from sqlalchemy.exc import IntegrityError

from shopstyle_spider import schema

from .. import filings, identity, store
from ..data import split_of, subject_split
from ..fields import photo_path
from ..reviews import in_force, in_force_query, touched
from ..text import clean_text
from . import leases
from .items import FileItem, Queue, SuspectItem, parse

__all__ = ["QUEUES", "Card", "Catalogue", "Progress", "Queue", "Suggestion", "audit_label", "cards",
           "complete_suggestions", "end_reads", "latest_audit", "next_card", "pending", "photo_file", "progress",
           "queue_suggestions", "stored_photo"]

QUEUES = {"file": "unsure", "suspect": "audit"}  # queue -> the review source its decisions are recorded under
RATE_WINDOW_S = 600  # decisions per minute are counted over the last ten minutes
SUGGESTIONS = 3
MODEL, AUDIT = "model", "audit (out-of-fold)"  # where a score comes from


@dataclass
class Suggestion:
    category: str
    score: float | None
    path: str
    source: str  # MODEL or AUDIT
    scored_by: str  # the model file that scored it, or the audit whose out-of-fold probability it is (audit_label)


@dataclass
class Card:
    item: str  # a key of ``modeling.review.items``
    queue: str
    name: str  # cleaned text: the templates escape it, nothing else must
    description: str
    photo: str | None  # "queue/<id>" or "product/<id>", served by the app from the image store only
    current: str | None  # the face product's label in force (its decision, else its crawled label), if any
    given: dict  # subject -> its label in force (None for an undecided new product): what "keep" keeps
    suggestions: list[Suggestion] = field(default_factory=list)
    version: int = 0  # id of the latest review row touching any of the card's products, 0 when none
    decision: str | None = None  # the decision in force when every product has one ("mixed" when they differ)
    decided_at: str | None = None
    queue_id: int | None = None
    payload: dict | None = None  # what the model reads, for suggestions made on demand
    subject: str = ""  # the face product's identity (``modeling.identity``)
    current_score: float | None = None  # the current label's own score, and where it comes from
    current_score_source: str | None = None
    # a product of the test split: shown without the model's advice, so that a label a person gives it is not the
    # model's own choice scored against the model (the suspect queue leaves such products out altogether)
    unadvised: bool = False
    scored_by: str | None = None  # the file of the model that scored a filing-queue card's suggestions
    filed: str | None = None  # a filing-queue card's product filed by a later model: "leaf" or "parent"

    @property
    def size(self) -> int:
        return len(self.given)

    @property
    def done(self) -> bool:
        return self.decision is not None

    @property
    def waiting(self) -> bool:
        """Whether the card is a person's work: undecided, and not filed by a model since it was queued."""
        return not self.done and self.filed is None


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


def _settle(card: Card, standing: dict, versions: dict, crawled: dict[str, str | None]) -> Card:
    """Fill a card's labels in force, version and decision from its products' subjects (``crawled``: subject ->
    crawled label, None for a new product)."""
    for subject, label in crawled.items():
        now = standing.get(subject)
        card.given[subject] = now.decision if now else label
    card.current = card.given[card.subject]
    card.version = max((versions.get(s, 0) for s in crawled), default=0)
    decided = [standing.get(s) for s in crawled]
    if decided and None not in decided:
        decisions = {d.decision for d in decided}
        card.decision = decisions.pop() if len(decisions) == 1 else "mixed"
        card.decided_at = max(d.created_at for d in decided)
    return card


def _queue_cards(connection: Connection, catalogue: Catalogue, queue_id: int | None = None) -> list[Card]:
    table, products = store.filing_queue, schema.products
    query = (select(table.c.id, table.c.subject, table.c.payload, table.c.prediction, table.c.model_path,
                    products.c.category_id, filings.queued_filing(table).label("filed"))
             .outerjoin(products, products.c.id == table.c.product_id).order_by(table.c.id))
    if queue_id is not None:
        query = query.where(table.c.id == queue_id)
    rows = connection.execute(query).all()
    subjects = None if queue_id is None else [row.subject for row in rows]
    standing = in_force(connection, subjects)
    versions = touched(connection, subjects)
    made = []
    for row in rows:
        payload = json.loads(row.payload)
        unadvised = subject_split(row.subject) == "test"
        card = Card(item=str(FileItem(row.id)), queue="file", name=clean_text(payload.get("name")),
                    description=clean_text(payload.get("description")),
                    photo=f"queue/{row.id}" if photo_path(payload.get("image_path")) else None,
                    current=None, given={}, queue_id=row.id, subject=row.subject,
                    suggestions=[] if unadvised else queue_suggestions(json.loads(row.prediction), catalogue,
                                                                       row.model_path),
                    payload=payload, scored_by=row.model_path, unadvised=unadvised,
                    filed=row.filed if row.filed in filings.AUTOMATIC else None)
        made.append(_settle(card, standing, versions, {row.subject: row.category_id}))
    return made


def queue_suggestions(prediction: dict, catalogue: Catalogue, scored_by: str) -> list[Suggestion]:
    """A filing-queue card's suggestions: the best categories of the prediction line stored with it (none for a line
    without one, as a restored backup's), by the model file ``scored_by``."""
    ranked = ([{"category": prediction["category"], "score": prediction["score"]},
               *prediction.get("alternatives", [])] if "category" in prediction else [])[:SUGGESTIONS]
    return [Suggestion(s["category"], s["score"], catalogue.path(s["category"]), MODEL, scored_by) for s in ranked]


def audit_label(audit_id: int) -> str:
    """How the API names the audit that scored a suspect card (``audit 3``): its out-of-fold probabilities are the
    card's own scores, as the page says beside each."""
    return f"audit {audit_id}"


def latest_audit(connection: Connection) -> int | None:
    if not store.has_table(connection, store.label_issues):
        return None
    return connection.execute(select(func.max(store.label_issues.c.audit_id))).scalar()


def _suspect_cards(connection: Connection, catalogue: Catalogue, group: SuspectItem | None = None) -> list[Card]:
    issues, products = store.label_issues, schema.products
    audit_id = group.audit_id if group else latest_audit(connection)
    if audit_id is None:
        return []
    query = (select(issues.c.product_id, issues.c.given_label, issues.c.suggested_label, issues.c.suggested_score,
                    issues.c.given_score, issues.c.group_key, issues.c.rank, products.c.name,
                    products.c.description, products.c.image_path, products.c.category_id)
             .join(products, products.c.id == issues.c.product_id).where(issues.c.audit_id == audit_id)
             .order_by(issues.c.rank))
    if group is not None:
        query = query.where(issues.c.group_key == group.group)
    # a test product relabelled toward the audit's suggestion would score the model against its own advice
    rows = [row for row in connection.execute(query).all() if split_of(row.product_id) != "test"]
    subjects = [identity.crawled(row.product_id) for row in rows] if group else None
    standing, versions = in_force(connection, subjects), touched(connection, subjects)
    groups: dict[str, list] = {}
    for row in rows:  # worst first: a group's place and face are its worst-ranked product's
        groups.setdefault(row.group_key, []).append(row)
    made = []
    for key, members in groups.items():
        face = members[0]
        card = Card(item=str(SuspectItem(audit_id, key)), queue="suspect", name=clean_text(face.name),
                    description=clean_text(face.description),
                    photo=f"product/{face.product_id}" if photo_path(face.image_path) else None,
                    current=None, given={}, subject=identity.crawled(face.product_id),
                    suggestions=[Suggestion(face.suggested_label, face.suggested_score,
                                            catalogue.path(face.suggested_label), AUDIT, audit_label(audit_id))],
                    payload={"name": face.name, "description": face.description, "image_path": face.image_path})
        _settle(card, standing, versions, {identity.crawled(m.product_id): m.category_id for m in members})
        if card.current == face.given_label:
            card.current_score, card.current_score_source = face.given_score, AUDIT
        made.append(card)
    return made


def cards(connection: Connection, queue: str, catalogue: Catalogue, item: str | None = None) -> list[Card]:
    """Every card of a queue in the order people work through it, or the one card ``item`` (none if it is gone)."""
    if queue not in QUEUES:
        raise KeyError(queue)
    if item is None:
        return _queue_cards(connection, catalogue) if queue == "file" else _suspect_cards(connection, catalogue)
    try:
        key = parse(item, queue)
    except KeyError:
        return []
    if isinstance(key, FileItem):
        return _queue_cards(connection, catalogue, key.queue_id)
    return _suspect_cards(connection, catalogue, key)


def complete_suggestions(found: list[Card], catalogue: Catalogue,
                         predict: Callable[[list[dict]], list[list[tuple[str, float]]]], scored_by: str) -> None:
    """Add the ranked categories of the model (its file ``scored_by``) to suspect cards (after the audit's own
    suggestion, without the current label that "keep" already offers), and the model's score of the current label
    where the audit has none, for all of them in one prediction."""
    wanting = [c for c in found if c.queue == "suspect" and len(c.suggestions) < SUGGESTIONS]
    if not wanting:
        return
    for card, ranked in zip(wanting, predict([c.payload for c in wanting]), strict=True):
        taken = {s.category for s in card.suggestions} | {card.current}
        for category, score in ranked:
            if category == card.current and card.current_score is None:
                card.current_score, card.current_score_source = score, MODEL
            if len(card.suggestions) < SUGGESTIONS and category not in taken:
                card.suggestions.append(Suggestion(category, score, catalogue.path(category), MODEL, scored_by))
                taken.add(category)


def end_reads(connection: Connection) -> None:
    """End the transaction SQLAlchemy began for earlier reads (it only read), so a write transaction can begin."""
    if connection.in_transaction():
        connection.rollback()


def next_card(connection: Connection, queue: str, catalogue: Catalogue, holder: str, now: float,
              skip: Iterable[str] = (), prefer: str | None = None) -> Card | None:
    """The first undecided card nobody else holds, leased to ``holder`` (who lets go of any other card); ``prefer``
    goes first when it is free (the card an undo brought back)."""
    skip = set(skip)
    for item in chain([prefer] if prefer else [], pending(connection, queue, catalogue)):
        if item in skip:
            continue
        end_reads(connection)
        try:
            with connection.begin():
                if leases.take(connection, item, holder, now) is not None:
                    continue
                leases.release(connection, holder=holder, keep=item)
        except IntegrityError:  # another reviewer leased it between our update and insert
            continue
        found = cards(connection, queue, catalogue, item)
        if found and found[0].waiting:  # the preferred card may have been decided (or filed) meanwhile
            return found[0]
    return None


def _filed_by_a_model(table) -> ColumnElement:
    """Whether a filing-queue row's product was filed by a model since it was queued (at the leaf or parent)."""
    return func.coalesce(filings.queued_filing(table), "").in_(filings.AUTOMATIC)


def _undecided_file_ids(connection: Connection, after: int, limit: int = 200) -> list[int]:
    """Filing-queue ids after ``after`` waiting for a person (no decision in force, not filed by a model since), in
    order: a page of them, read by the database."""
    table, standing = store.filing_queue, in_force_query().subquery()
    return list(connection.execute(
        select(table.c.id).select_from(table.outerjoin(standing, standing.c.subject == table.c.subject))
        .where(standing.c.id.is_(None), ~_filed_by_a_model(table), table.c.id > after).order_by(table.c.id)
        .limit(limit)).scalars())


def pending(connection: Connection, queue: str, catalogue: Catalogue) -> Iterator[str]:
    """The items of the cards still to decide, in the queue's order, read as they are wanted: a filing queue
    holding a whole crawl is never read whole to find the next card."""
    if queue != "file":
        yield from (c.item for c in cards(connection, queue, catalogue) if not c.done)
        return
    after = 0
    while ids := _undecided_file_ids(connection, after):
        yield from (str(FileItem(i)) for i in ids)
        after = ids[-1]


def progress(connection: Connection, queue: str, catalogue: Catalogue, now: float) -> Progress:
    """Cards done and left, and cards decided per minute over the last ten minutes (since the first of them); the
    filing queue's counted by the database."""
    since = datetime.fromtimestamp(now - RATE_WINDOW_S, UTC).isoformat(timespec="seconds")
    if queue == "file":  # the decided are read from the decisions in force, not by scanning the whole queue
        table, standing = store.filing_queue, in_force_query().subquery()
        recently = standing.c.created_at >= since
        done, recent, first, decided_and_filed = connection.execute(
            select(func.count(standing.c.id), func.coalesce(func.sum(case((recently, 1), else_=0)), 0),
                   func.min(case((recently, standing.c.created_at))),
                   func.coalesce(func.sum(case((_filed_by_a_model(table), 1), else_=0)), 0))
            .select_from(standing.join(table, table.c.subject == standing.c.subject))).one()
        # a person's work: every card but those a model filed since, unless a person decided them anyway (one scan
        # of the queue's own column, the decided ones read from the decisions in force)
        total = connection.execute(select(func.count()).select_from(table).where(~_filed_by_a_model(table))).scalar()
        total += decided_and_filed
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
