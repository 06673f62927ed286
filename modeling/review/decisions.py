"""Decisions on cards, committed before the caller answers: the review app's only writer of ``reviews``.

A decision is the rows it appends, one per product of its card, sharing one decision id
(``modeling.reviews.record_decision``); which decision is in force is ``modeling.reviews.in_force``'s to say, and
nowhere else. A decision made on an older version of a card (any row touched any of its products since it was
shown, from either queue, an import or the API), or on a card another reviewer holds a live lease on, is refused
with ``Stale`` and changes nothing. An undo withdraws exactly the rows of one of the undoer's own decisions: what
stood before them stands again, and nobody else's decision is touched.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from .. import identity, store
from ..reviews import in_force, latest_decision_of, record_decision, withdraw
from . import leases
from .cards import QUEUES, Card, Catalogue, cards, end_reads, latest_audit
from .items import FileItem, SuspectItem

__all__ = ["KEEP", "DecisionError", "Stale", "decide", "undo_last"]

KEEP = "keep"  # a decision that keeps the label in force of each product


class Stale(Exception):
    """A decision made on a card that changed, or that someone else holds, since it was shown."""


class DecisionError(ValueError):
    """A decision that names no leaf, keeps a label a product does not have, or undoes nothing."""


def _stamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")


def decide(connection: Connection, queue: str, catalogue: Catalogue, item: str, decision: str | None,
           reviewer: str, seen: int, now: float) -> tuple[Card, int]:
    """Record one decision on one card, committed on return: a leaf id, ``store.EXCLUDE``, ``KEEP``, or None to
    withdraw the reviewer's own decisions in force on it. Returns the card as it was decided on and how many
    products the decision settles.

    Raises ``Stale`` (nothing written) when another reviewer holds the card or it changed after version ``seen``,
    ``DecisionError`` for a decision that names no leaf, ``KeyError`` for a card that does not exist.
    """
    if decision is not None and decision not in (KEEP, store.EXCLUDE) and decision not in catalogue.leaves:
        raise DecisionError(f"{decision!r} is not a leaf category (nor {KEEP!r} or {store.EXCLUDE!r})")
    source = QUEUES[queue]
    end_reads(connection)
    try:
        with connection.begin():
            holder = leases.take(connection, item, reviewer, now)
            if holder is not None:
                raise Stale(f"{holder} has this card open; nothing was changed")
            found = cards(connection, queue, catalogue, item)
            if not found:
                raise KeyError(item)
            card = found[0]
            if card.version != seen:
                raise Stale(_changed(connection, card.version, reviewer))
            if decision is None:
                mine = {s.decision_id for s in in_force(connection, card.given).values() if s.reviewer == reviewer}
                if not mine:
                    raise DecisionError("no decision of yours stands on this card: nothing to undo")
                settled = sum(len(withdraw(connection, d, reviewer, _stamp(now))) for d in sorted(mine))
            else:
                if decision == KEEP and None in card.given.values():
                    raise DecisionError("this product has no label to keep: choose a category")
                first = None
                for subject, label in card.given.items():
                    row = record_decision(connection, decision=label if decision == KEEP else decision,
                                          source=source, reviewer=reviewer, subject=subject,
                                          queue_id=card.queue_id, replaces=label, created_at=_stamp(now),
                                          decision_id=first)
                    first = first or row
                settled = len(card.given)
            leases.release(connection, item)
    except IntegrityError as error:  # the lease row appeared between our update and insert
        raise Stale("another reviewer opened this card at the same moment; nothing was changed") from error
    return card, settled


def _changed(connection: Connection, version: int, reviewer: str) -> str:
    """Why a card is stale, naming who changed it: "you" when it was the reviewer asking (in another tab, through
    the API), who would otherwise read their own name as someone else's."""
    row = connection.execute(select(store.reviews.c.reviewer, store.reviews.c.created_at, store.reviews.c.decision)
                             .where(store.reviews.c.id == version)).first()
    if row is None:
        return "this card changed since you opened it; nothing was changed"
    what = "undone" if row.decision is None else f"decided ({row.decision})"
    who = "you (elsewhere: another tab, the API)" if row.reviewer == reviewer else row.reviewer
    return f"this card was {what} by {who} at {row.created_at} since you opened it; nothing was changed"


def undo_last(connection: Connection, queue: str, catalogue: Catalogue, reviewer: str,
              now: float) -> tuple[Card, int] | None:
    """Withdraw ``reviewer``'s latest decision in this queue that no undo withdrew yet (even where a later decision
    of someone else stands: that one stays); the card it was made on and how many products it settled, or None
    when there is none."""
    end_reads(connection)
    with connection.begin():
        decision_id = latest_decision_of(connection, reviewer, QUEUES[queue])
        if decision_id is None:
            return None
        first = connection.execute(select(store.reviews.c.subject, store.reviews.c.queue_id)
                                   .where(store.reviews.c.id == decision_id)).one()
        subjects = withdraw(connection, decision_id, reviewer, _stamp(now))
    item = _card_of(connection, queue, first.subject, first.queue_id)
    found = cards(connection, queue, catalogue, item) if item else []
    card = found[0] if found else Card(item="", queue=queue, name=first.subject, description="", photo=None,
                                       current=None, given={}, subject=first.subject)
    return card, len(subjects)


def _card_of(connection: Connection, queue: str, subject: str, queue_id: int | None) -> str | None:
    """The item of the card a product is on in ``queue`` now, if any."""
    if queue == "file":
        return None if queue_id is None else str(FileItem(queue_id))
    product_id = identity.parse(subject).product_id
    audit_id = latest_audit(connection)
    key = connection.execute(select(store.label_issues.c.group_key).where(
        store.label_issues.c.audit_id == audit_id, store.label_issues.c.product_id == product_id)).scalar()
    return None if key is None else str(SuspectItem(audit_id, key))
