"""The filing queue: products the model could not file on its own, waiting for a person in the review app.

``modeling.predict --queue`` and the review app's ``POST /api/queue`` write here; ``modeling.review`` reads. Each row
keeps what a person needs to decide without the model at hand: the product as predict read it (payload) and the line
predict wrote for it (prediction, its suggestions), with the model that made it. Every row carries the product's
identity (``modeling.identity``): a crawled product by its id, a product from a file by the file's name and its
record id, so a file's record "5" never stands for crawled product 5. A product already queued is not queued again,
so running predict twice over the same crawl or file leaves one card per product; queued again, its card is a
person's work again even if a model filed it in between (its ``filed`` cleared). A file product's photo is copied
into the image store the review app serves (named by its content), so the card and training still have it when the
file's folder is gone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from sqlalchemy import Connection, insert, select, update

from . import identity, store
from .fields import photo_path

__all__ = ["PAYLOAD_FIELDS", "QUEUED_PHOTOS", "Writer", "differences", "queue_products", "queued_payload",
           "store_photo"]

PAYLOAD_FIELDS = ("name", "description", "image_path")
QUEUED_PHOTOS = "queued"  # the image store's folder of queued file products' photos


def store_photo(path: object, photo_store: Path | None) -> str | None:
    """A file product's photo as a path relative to the image store: copied in under its content's hash when it
    lies elsewhere (kept as is when it already lies inside); None for no photo, or a photo that cannot be read."""
    value = photo_path(path)
    if value is None or photo_store is None:
        return value
    source, root = Path(value), photo_store.resolve()
    if not source.is_absolute():
        source = root / source
    source = source.resolve()
    if not source.is_file():
        return None
    if source.is_relative_to(root):
        return str(source.relative_to(root))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    relative = Path(QUEUED_PHOTOS) / f"{digest}{source.suffix.lower()}"
    target = root / relative
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".part")
        shutil.copyfile(source, partial)
        partial.replace(target)  # never a half-copied photo under its final name
    return str(relative)


def queued_payload(row: dict, *, from_crawl: bool, photo_store: Path | None) -> dict:
    """What the queue keeps of a checked row for a person to decide by: its name, description and photo (a file
    product's as ``store_photo`` places it in the image store)."""
    payload = {k: row.get(k) for k in PAYLOAD_FIELDS}
    if not from_crawl:
        payload["image_path"] = store_photo(payload["image_path"], photo_store)
    return payload


def differences(queued: dict, row: dict, *, from_crawl: bool, photo_store: Path | None) -> list[str]:
    """The fields (of ``PAYLOAD_FIELDS``) where a checked row posted again differs from the payload ``queued`` for
    it: the queue never rewrites a queued product (a person may have its card open), so its caller says what stands.
    A photo is compared by where the store keeps it (``POST /api/queue`` takes photos inside the store only, so
    comparing copies nothing)."""
    posted = queued_payload(row, from_crawl=from_crawl, photo_store=photo_store)
    return [k for k in PAYLOAD_FIELDS if queued.get(k) != posted[k]]


def queue_products(connection: Connection, pairs: list[tuple[dict, dict]], *, source: str, model_path: str,
                   from_crawl: bool, photo_store: Path | None = None) -> list[int]:
    """Queue (checked row, prediction line) pairs inside the caller's transaction; the queue id of each pair, in
    order (the existing row's for a product already queued). ``from_crawl``: the rows' ids are crawled products'."""
    table = store.filing_queue
    subjects = [identity.crawled(row["id"]) if from_crawl else identity.filed(source, str(row["id"]))
                for row, _ in pairs]
    queued = dict(connection.execute(select(table.c.subject, table.c.id).where(table.c.subject.in_(set(subjects))))
                  .all())
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    ids = []
    again = [queued[s] for s in set(subjects) if s in queued]
    if again:  # queued again: for a person, whatever a model filed since the first time (content never rewritten)
        connection.execute(update(table).where(table.c.id.in_(again)).values(filed=None))
    for subject, (row, line) in zip(subjects, pairs, strict=True):
        if subject not in queued:
            payload = queued_payload(row, from_crawl=from_crawl, photo_store=photo_store)
            queued[subject] = connection.execute(insert(table).values(
                product_id=int(row["id"]) if from_crawl else None, record_id=str(row["id"]), subject=subject,
                payload=json.dumps(payload), prediction=json.dumps(line, default=str), model_path=model_path,
                created_at=created_at)).inserted_primary_key[0]
        ids.append(queued[subject])
    return ids


class Writer:
    """Adds (checked row, prediction line) pairs to a database's queue, a chunk per transaction, so what was queued
    before an interruption stays queued. With no database it does nothing (predict without ``--queue``).
    ``source`` names the file the rows came from (their identity with their ids); ``photo_store`` is the image store
    their photos are copied into."""

    def __init__(self, db: str | Path | None, model_path: str | Path, *, from_crawl: bool, source: str = "",
                 photo_store: Path | None = None):
        self.db, self.model_path, self.from_crawl = db, str(model_path), from_crawl
        self.source, self.photo_store = source, photo_store
        self.connection: Connection | None = None
        self.added = self.already = 0

    def __enter__(self) -> Writer:
        if self.db is not None:
            self.connection = store.connect(self.db)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.connection is not None:
            self.connection.close()

    def add(self, pairs: list[tuple[dict, dict]]) -> None:
        if self.connection is None or not pairs:
            return
        table = store.filing_queue
        with self.connection.begin():
            before = self.connection.execute(select(table.c.id).order_by(table.c.id.desc()).limit(1)).scalar() or 0
            ids = queue_products(self.connection, pairs, source=self.source, model_path=self.model_path,
                                 from_crawl=self.from_crawl, photo_store=self.photo_store)
        fresh = len({i for i in ids if i > before})
        self.added += fresh
        self.already += len(ids) - fresh
