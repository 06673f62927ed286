"""A card's key, parsed in one place: ``queue:<filing_queue id>`` for a product to file, ``audit:<audit id>:<group>``
for a group of suspect labels. Forms, the API, leases and undo all carry the text; everything that reads it asks
``parse``, so a key the app did not make is refused the same way everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FileItem", "Item", "Queue", "SuspectItem", "parse"]

Queue = Literal["file", "suspect"]


@dataclass(frozen=True)
class FileItem:
    """The card of one filing-queue row."""
    queue_id: int
    queue: Queue = "file"

    def __str__(self) -> str:
        return f"queue:{self.queue_id}"


@dataclass(frozen=True)
class SuspectItem:
    """The card of one group of an audit's suspects."""
    audit_id: int
    group: str
    queue: Queue = "suspect"

    def __str__(self) -> str:
        return f"audit:{self.audit_id}:{self.group}"


Item = FileItem | SuspectItem


def parse(text: str, queue: str | None = None) -> Item:
    """The item ``text`` names (of ``queue``, when given); ``KeyError`` for anything else.

    >>> parse("queue:7"), parse("audit:2:silk blouse/3", "suspect")
    (FileItem(queue_id=7, queue='file'), SuspectItem(audit_id=2, group='silk blouse/3', queue='suspect'))
    """
    kind, _, rest = str(text).partition(":")
    item: Item | None = None
    if kind == "queue" and rest.isascii() and rest.isdigit():
        item = FileItem(int(rest))
    else:
        audit, _, group = rest.partition(":")
        if kind == "audit" and audit.isascii() and audit.isdigit() and group:
            item = SuspectItem(int(audit), group)
    if item is None or (queue is not None and item.queue != queue):
        raise KeyError(text)
    return item
