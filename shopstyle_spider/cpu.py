"""The crawl's CPU, shared out by request: per API page and per photo.

A page and a photo cost the engine, the downloader and Twisted alike; what only a page costs (reading its JSON,
writing its products to the database) and what only a photo costs (its header, its checksum, its file) are
measured where they happen, with ``time.process_time``. The rest is shared out evenly by request, so that
pages x (ms per page) + photos x (ms per photo) is the crawl's whole CPU.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["PAGE", "PHOTO", "measured", "per_request"]

PAGE, PHOTO = "page", "photo"


@contextmanager
def measured(stats, kind: str) -> Iterator[None]:
    """Add the CPU the block takes to the crawl's stats, as work only a ``kind`` (PAGE or PHOTO) request costs."""
    started = time.process_time()
    try:
        yield
    finally:
        stats.inc_value(f"shopstyle/cpu/{kind}_seconds", time.process_time() - started)


def per_request(stats: dict) -> dict[str, float]:
    """CPU milliseconds per request, per API page and per photo, from a crawl's stats (``shopstyle/cpu_seconds``,
    the process's CPU while the spider ran, and what ``measured`` added)."""
    cpu = stats.get("shopstyle/cpu_seconds", 0.0)
    requests = stats.get("shopstyle/requests_sent", 0)
    pages = stats.get("shopstyle/api_requests_sent", 0)
    photos = requests - pages
    page_only, photo_only = (stats.get(f"shopstyle/cpu/{kind}_seconds", 0.0) for kind in (PAGE, PHOTO))
    shared = (cpu - page_only - photo_only) / requests if requests else 0.0
    return {"cpu_seconds": cpu, "requests": requests, "pages": pages, "photos": photos,
            "ms_per_request": 1000 * cpu / requests if requests else 0.0,
            "ms_per_page": 1000 * (shared + page_only / pages) if pages else 0.0,
            "ms_per_photo": 1000 * (shared + photo_only / photos) if photos else 0.0}
