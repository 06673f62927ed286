"""Who a reviewed product is, decided once: a crawled product by its id, a product from a file by the file's name
and the record id the file gave it. Both live in one text key (the ``subject`` of the filing queue and the reviews)
so the two kinds can never be confused: crawled product 5 and record "5" of ``new.jsonl`` are different products.

The key is ``crawl/<id>`` or ``file/<source>/<record id>`` with source and record id percent-encoded, so a name
holding "/" reads back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

__all__ = ["LEGACY_SOURCE", "Identity", "crawled", "filed", "parse"]

# The source of a file product queued before the queue recorded which file it came from.
LEGACY_SOURCE = "unrecorded"


@dataclass(frozen=True)
class Identity:
    """One product: ``product_id`` for a crawled one, ``source`` and ``record_id`` for one from a file."""
    product_id: int | None = None
    source: str | None = None
    record_id: str | None = None

    @property
    def subject(self) -> str:
        return crawled(self.product_id) if self.product_id is not None else filed(self.source, self.record_id)


def crawled(product_id: int) -> str:
    """A crawled product's key.

    >>> crawled(5)
    'crawl/5'
    """
    return f"crawl/{int(product_id)}"


def filed(source: str, record_id: str) -> str:
    """A file product's key: the file's name and the record id, percent-encoded.

    >>> filed("new.jsonl", "5"), filed("a/b", "x y")
    ('file/new.jsonl/5', 'file/a%2Fb/x%20y')
    """
    if not source or record_id is None or str(record_id) == "":
        raise ValueError("a product from a file needs the file's name and its record id")
    return f"file/{quote(source, safe='')}/{quote(str(record_id), safe='')}"


def parse(subject: str) -> Identity:
    """The identity a key names; ValueError for anything else.

    >>> parse("crawl/5"), parse("file/a%2Fb/x%20y")
    (Identity(product_id=5, source=None, record_id=None), Identity(product_id=None, source='a/b', record_id='x y'))
    """
    kind, _, rest = str(subject).partition("/")
    if kind == "crawl" and rest.isdigit():
        return Identity(product_id=int(rest))
    source, _, record = rest.partition("/")
    if kind == "file" and source and record:
        return Identity(source=unquote(source), record_id=unquote(record))
    raise ValueError(f"{subject!r} names no product (crawl/<id> or file/<source>/<record id>)")
