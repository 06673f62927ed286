"""Who holds which card: a reviewer who opens a card leases it for ``LEASE_SECONDS``, so two people never decide the
same card at once; a decision on a card someone else holds is refused (``modeling.review.decisions``)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, insert, or_, select, update

from .. import store

__all__ = ["LEASE_SECONDS", "held_by_others", "release", "take"]

LEASE_SECONDS = 300.0  # how long a card stays with the reviewer who opened it


def take(connection: Connection, item: str, holder: str, now: float) -> str | None:
    """Take or extend the lease on ``item`` inside the caller's transaction; the holder of a live lease, if another.

    The first statement is a write, so on sqlite the transaction holds the database's write lock from here on and
    what it reads next cannot change before it commits. A concurrent insert of the same item raises
    ``IntegrityError``: the caller's card was taken at the same moment.
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


def release(connection: Connection, item: str | None = None, *, holder: str | None = None,
            keep: str | None = None) -> None:
    """Drop the lease on ``item``, or every lease of ``holder`` but ``keep``, inside the caller's transaction."""
    leases = store.leases
    if item is not None:
        connection.execute(delete(leases).where(leases.c.item == item))
    else:
        connection.execute(delete(leases).where(leases.c.holder == holder, leases.c.item != keep))


def held_by_others(connection: Connection, holder: str | None, now: float,
                   items: Iterable[str] | None = None) -> set[str]:
    """Which cards (of ``items``, when given) someone other than ``holder`` (anyone, when None) holds a live lease
    on: one row per reviewer at most, so all of them are read at once."""
    leases = store.leases
    query = select(leases.c.item).where(leases.c.expires_at >= now)
    if items is not None:
        query = query.where(leases.c.item.in_(list(items)))
    if holder is not None:
        query = query.where(leases.c.holder != holder)
    return set(connection.execute(query).scalars())
