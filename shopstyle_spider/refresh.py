"""Refreshes of a crawled catalog (``scrapy crawl shopstyle -a refresh=new|all``): what they read and what changed.

A refresh is a row of ``refreshes``; whatever it stores carries its id (``refresh_id``), so that a killed refresh
is resumed by the next one of its mode (``begin``): the leaves it completed are skipped, the others read again.
``refresh=new`` reads each leaf newest first and stops where the products it meets are known (``known_products``);
``refresh=all`` reads every leaf again and, once all are done, marks the products it did not meet as gone
(``finish``): never deleted, so that a model trained on them stays reproducible.

What changed is appended to ``product_changes`` and ``category_changes`` as the store writes (``product_changes``,
``category_changes`` below compare a batch with the stored rows) and counted in the refresh's summary.
"""

from __future__ import annotations

import json
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, func, insert, or_, select, update

from . import schema
from .frontier import product_key

MODES = ("new", "all")
# Product fields whose change is recorded; image_checksum is the stored photo's md5 (a new photo's bytes).
TRACKED_FIELDS = ("category_id", "price", "in_stock", "image_checksum")
PHOTO_FIELDS = ("image_url", "image_path", "image_checksum", "image_status", "image_error")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def parse_mode(value: str) -> str:
    """An ``-a refresh`` value: new, all, or empty for a plain (resuming) crawl."""
    if value not in ("", *MODES):
        raise ValueError(f"-a refresh must be one of {', '.join(MODES)}, got {value!r}")
    return value


def begin(target: str | Path, mode: str) -> tuple[int, bool]:
    """The refresh to run: the last unfinished one if it is of ``mode`` (resumed: True), else a new one; an
    unfinished refresh of the other mode is closed as superseded."""
    with closing(schema.connect(target)) as db, db.begin():
        last = db.execute(select(schema.refreshes.c.id, schema.refreshes.c.mode)
                          .where(schema.refreshes.c.finished_at.is_(None))
                          .order_by(schema.refreshes.c.id.desc())).first()
        if last is not None and last.mode == mode:
            return last.id, True
        if last is not None:
            db.execute(update(schema.refreshes).where(schema.refreshes.c.id == last.id)
                       .values(finished_at=now(), summary=json.dumps({"superseded": True})))
        created = db.execute(insert(schema.refreshes).values(mode=mode, started_at=now()))
        return created.inserted_primary_key[0], False


def completed_leaves(target: str | Path, refresh_id: int) -> set[str]:
    """Leaves this refresh already completed (before it was killed): a resumed refresh skips them."""
    with closing(schema.connect(target, readonly=True)) as db:
        return set(db.execute(select(schema.leaves.c.category_id)
                              .where(schema.leaves.c.refresh_id == refresh_id)).scalars())


def known_products(target: str | Path, refresh_id: int) -> dict[str, set[str]]:
    """Leaf -> ledger keys of the products stored in it and not gone, as before this refresh: what a resumed
    refresh stored itself does not count as known, so that it reads again as far as the killed one had to."""
    products = schema.products
    with closing(schema.connect(target, readonly=True)) as db:
        rows = db.execute(select(products.c.category_id, products.c.id).where(
            products.c.gone_at.is_(None),
            or_(products.c.refresh_id.is_(None), products.c.refresh_id != refresh_id)))
        known: dict[str, set[str]] = {}
        for leaf, product_id in rows:
            known.setdefault(leaf, set()).add(product_key(product_id))
        return known


def _text(value) -> str | None:
    if value is None:
        return None
    return str(int(value)) if isinstance(value, bool | int) else str(value)


def product_changes(db: Connection, rows: list[dict], refresh_id: int | None, when: str) -> list[dict]:
    """The changes a batch of product rows makes to the stored ones, as ``product_changes`` rows; a product a
    refresh meets first is ``added`` (a plain crawl records none: it is building the catalog, not watching it).

    A photo that failed to download this time keeps the stored one (``rows`` are updated in place): a fault on the
    way is not a change of the catalog."""
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    names = dict.fromkeys(("id", *TRACKED_FIELDS, *PHOTO_FIELDS, "gone_at"))
    stored = {row.id: row for row in db.execute(select(*(schema.products.c[name] for name in names))
                                                .where(schema.products.c.id.in_(ids)))}
    changes = []
    for row in rows:
        old = stored.get(row["id"])
        if old is None:
            if refresh_id is not None:
                changes.append(_change(row["id"], "added", None, row["category_id"], when, refresh_id))
            continue
        if row["image_status"] == "failed" and old.image_status == "ok":
            row.update({name: getattr(old, name) for name in PHOTO_FIELDS})
        for field in TRACKED_FIELDS:
            if row[field] != getattr(old, field):
                changes.append(_change(row["id"], field, _text(getattr(old, field)), _text(row[field]), when,
                                       refresh_id))
        if old.gone_at is not None:
            changes.append(_change(row["id"], "gone_at", old.gone_at, None, when, refresh_id))
    return changes


def category_changes(db: Connection, rows: list[dict], refresh_id: int | None, when: str) -> list[dict]:
    """The changes a batch of category rows makes: a category added (by a refresh), moved, or back."""
    if not rows:
        return []
    categories = schema.categories
    stored = {row.id: row for row in db.execute(select(categories.c.id, categories.c.parent_id,
                                                       categories.c.gone_at)
                                                .where(categories.c.id.in_([row["id"] for row in rows])))}
    changes = []
    for row in rows:
        old = stored.get(row["id"])
        change = dict(category_id=row["id"], changed_at=when, refresh_id=refresh_id)
        if old is None:
            if refresh_id is not None:
                changes.append({**change, "field": "added", "old": None, "new": row["parent_id"]})
            continue
        if old.parent_id != row["parent_id"]:
            changes.append({**change, "field": "parent_id", "old": old.parent_id, "new": row["parent_id"]})
        if old.gone_at is not None:
            changes.append({**change, "field": "gone_at", "old": old.gone_at, "new": None})
    return changes


def _change(product_id: int, field: str, old: str | None, new: str | None, when: str,
            refresh_id: int | None) -> dict:
    return dict(product_id=product_id, field=field, old=old, new=new, changed_at=when, refresh_id=refresh_id)


def finish(db: Connection, refresh_id: int, mode: str, root: str, leaves: set[str]) -> dict | None:
    """Close the refresh once it completed every one of ``leaves`` (the leaves it was to read): categories of the
    tree under ``root`` it did not meet are gone; with ``all``, so are the products of the leaves it read whole (or
    of gone leaves) that it did not meet. Returns the summary, or None while leaves are left (a later run resumes)."""
    leaf_rows, categories, products = schema.leaves, schema.categories, schema.products
    when = now()
    with db.begin():
        done = {row.category_id: row
                for row in db.execute(select(leaf_rows).where(leaf_rows.c.refresh_id == refresh_id))}
        if not leaves or not leaves <= set(done):
            return None
        unseen = or_(categories.c.refresh_id.is_(None), categories.c.refresh_id != refresh_id)
        in_tree = or_(categories.c.id == root, categories.c.path.startswith(f"{root}/", autoescape=True))
        gone_categories = list(db.execute(select(categories.c.id).where(unseen, in_tree,
                                                                         categories.c.gone_at.is_(None))).scalars())
        if gone_categories:
            db.execute(update(categories).where(categories.c.id.in_(gone_categories)).values(gone_at=when))
            db.execute(insert(schema.category_changes), [
                dict(category_id=c, field="gone_at", old=None, new=when, changed_at=when, refresh_id=refresh_id)
                for c in gone_categories])
        if mode == "all":
            # a leaf cut short (max_per_category, the API's cap) says nothing of the products it did not list
            whole = [leaf for leaf, row in done.items() if leaf in leaves and row.unreachable == 0
                     and row.reached >= row.total]
            where = (products.c.category_id.in_([*whole, *gone_categories]), products.c.gone_at.is_(None),
                     or_(products.c.refresh_id.is_(None), products.c.refresh_id != refresh_id))
            gone = list(db.execute(select(products.c.id).where(*where)).scalars())
            if gone:
                db.execute(update(products).where(products.c.id.in_(gone)).values(gone_at=when))
                db.execute(insert(schema.product_changes),
                           [_change(product_id, "gone_at", None, when, when, refresh_id) for product_id in gone])
        summary = counts(db, refresh_id)
        db.execute(update(schema.refreshes).where(schema.refreshes.c.id == refresh_id)
                   .values(finished_at=when, summary=json.dumps(summary)))
    return summary


def counts(db: Connection, refresh_id: int) -> dict[str, int]:
    """What a refresh found changed, by kind."""
    found: dict[str, int] = {}
    for table, prefix in ((schema.product_changes, ""), (schema.category_changes, "categories_")):
        cleared = table.c.new.is_(None)
        for field, back, count in db.execute(select(table.c.field, cleared, func.count())
                                             .where(table.c.refresh_id == refresh_id)
                                             .group_by(table.c.field, cleared)):
            name = f"{prefix}{field}{':back' if field == 'gone_at' and back else ''}"
            found[name] = found.get(name, 0) + count
    return found


def describe(target: str | Path, refresh_id: int) -> str:
    """One line on a refresh: finished with what changed, or how far it got."""
    with closing(schema.connect(target, readonly=True)) as db:
        row = db.execute(select(schema.refreshes).where(schema.refreshes.c.id == refresh_id)).first()
        if row is None:
            return f"refresh {refresh_id}: not in the database"
        if row.finished_at is None:
            done = db.execute(select(func.count()).where(schema.leaves.c.refresh_id == refresh_id)).scalar()
            return (f"refresh {refresh_id} ({row.mode}) not finished: {done} leaves done so far; run it again to "
                    "resume")
        found = json.loads(row.summary or "{}")
    changed = ", ".join(f"{found.get(key, 0)} {label}" for key, label in (
        ("added", "new"), ("gone_at", "gone"), ("gone_at:back", "back"), ("category_id", "re-filed"),
        ("price", "prices changed"), ("in_stock", "stock changed"), ("image_checksum", "photos changed")))
    tree = ", ".join(f"{found.get(key, 0)} {label}" for key, label in (
        ("categories_added", "added"), ("categories_parent_id", "moved"), ("categories_gone_at", "gone")))
    return f"refresh {refresh_id} ({row.mode}) finished: products {changed}; categories {tree}"
