"""Decisions people make about labels, kept append-only in the ``reviews`` table of ``modeling.store``.

The crawler's label (``products.category_id``) is what the catalog said; a review is what a person decided about it
afterwards. Nothing is updated in place: every decision, confirmation and undo is a new row, so the history of a
product's label can always be read back, and the latest row of a product is the decision in force.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, func, insert, select

from . import store

__all__ = ["latest_decisions", "record_decision"]


def record_decision(connection: Connection, *, decision: str | None, source: str, reviewer: str,
                    product_id: int | None = None, queue_id: int | None = None, replaces: str | None = None,
                    created_at: str | None = None) -> int:
    """Append one decision (a leaf id, ``store.EXCLUDE``, or None to undo) and return its row id.

    The caller owns the transaction: a web page commits before it answers, an import commits its good rows together.
    """
    if source not in store.REVIEW_SOURCES:
        raise ValueError(f"review source {source!r} is not one of {', '.join(store.REVIEW_SOURCES)}")
    if product_id is None and queue_id is None:
        raise ValueError("a review needs the product it decides, or its place in the filing queue")
    if not reviewer or not reviewer.strip():
        raise ValueError("a review needs a reviewer")
    return connection.execute(insert(store.reviews).values(
        product_id=product_id, queue_id=queue_id, decision=decision, replaces=replaces, source=source,
        reviewer=reviewer.strip(), created_at=created_at or datetime.now(UTC).isoformat(timespec="seconds"),
    )).inserted_primary_key[0]


def latest_decisions(connection: Connection) -> dict[int, str]:
    """Crawled product id -> the decision in force (a leaf id or ``store.EXCLUDE``); products whose latest row is
    an undo, and products never reviewed, are absent: their crawled label stands."""
    if not store.has_table(connection, store.reviews):
        return {}
    latest = (select(store.reviews.c.product_id, func.max(store.reviews.c.id).label("id"))
              .where(store.reviews.c.product_id.is_not(None)).group_by(store.reviews.c.product_id).subquery())
    rows = connection.execute(select(store.reviews.c.product_id, store.reviews.c.decision)
                              .join(latest, store.reviews.c.id == latest.c.id))
    return {int(product_id): decision for product_id, decision in rows if decision is not None}
