"""The filing queue: products the model could not file on its own, waiting for a person in the review app.

``modeling.predict --queue`` writes here; ``modeling.review`` reads. Each row keeps what a person needs to decide
without the model at hand: the product as predict read it (payload) and the line predict wrote for it (prediction,
its suggestions), with the model that made it. A product already queued is not queued again, so running predict
twice over the same crawl or file leaves one card per product.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from sqlalchemy import Connection, insert, select

from . import store

__all__ = ["PAYLOAD_FIELDS", "Writer"]

PAYLOAD_FIELDS = ("name", "description", "image_path")


class Writer:
    """Adds (checked row, prediction line) pairs to a database's queue, a chunk per transaction, so what was queued
    before an interruption stays queued. With no database it does nothing (predict without ``--queue``)."""

    def __init__(self, db: str | Path | None, model_path: str | Path, *, from_crawl: bool):
        self.db, self.model_path, self.from_crawl = db, str(model_path), from_crawl
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
        created_at = datetime.now(UTC).isoformat(timespec="seconds")
        with self.connection.begin():
            ids = [str(row["id"]) for row, _ in pairs]
            queued = set(self.connection.execute(select(table.c.record_id).where(table.c.record_id.in_(ids))).scalars())
            fresh = []
            for row, line in pairs:
                record_id = str(row["id"])
                if record_id in queued:
                    self.already += 1
                    continue
                queued.add(record_id)
                fresh.append({"product_id": int(row["id"]) if self.from_crawl else None, "record_id": record_id,
                              "payload": json.dumps({k: row.get(k) for k in PAYLOAD_FIELDS}),
                              "prediction": json.dumps(line, default=str), "model_path": self.model_path,
                              "created_at": created_at})
            if fresh:
                self.connection.execute(insert(table), fresh)
        self.added += len(fresh)
