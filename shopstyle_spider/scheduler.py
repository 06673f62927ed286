"""The scheduler hands out API requests only while fewer than ``SHOPSTYLE_API_CONCURRENCY`` are in the downloader.

Scrapy pulls requests from its scheduler while the downloader holds fewer than CONCURRENT_REQUESTS, and that limit
is set high so that photos (which the images pipeline hands to the downloader directly) keep coming. API requests
wait for the budget in their download slot, so Scrapy would take up to CONCURRENT_REQUESTS of them out of the
scheduler at once: out of ``-s JOBDIR``'s queue on disk, into memory, where a kill loses them and where Ctrl-C
reads them all before it stops; with ``REDIS_URL``, out of the shared queue where other processes could have had
them. Taking one when a download ends costs nothing: the budget spaces them anyway.
"""

from __future__ import annotations

from scrapy import Request
from scrapy.core.scheduler import Scheduler
from scrapy.squeues import PickleFifoDiskQueue, PickleLifoDiskQueue

from .redaction import redact_url, with_api_key
from .slots import API_SLOT

__all__ = ["ApiInHandLimit", "KeylessFifoDiskQueue", "KeylessLifoDiskQueue", "PacedScheduler"]


class ApiInHandLimit:
    """Mixin for a Scrapy scheduler: ``next_request`` gives nothing while the API requests in hand reach the limit."""

    @classmethod
    def from_crawler(cls, crawler):
        scheduler = super().from_crawler(crawler)
        scheduler.crawler = crawler
        scheduler.api_in_hand = crawler.settings.getint("SHOPSTYLE_API_CONCURRENCY")
        return scheduler

    def next_request(self) -> Request | None:
        active = self.crawler.engine.downloader.active  # from the first middleware to the response
        if sum(request.meta.get("download_slot") == API_SLOT for request in active) >= self.api_in_hand:
            return None  # Scrapy asks again as soon as a download ends
        return super().next_request()


class PacedScheduler(ApiInHandLimit, Scheduler):
    """Scrapy's scheduler (memory and ``JOBDIR`` disk queues) with the API requests in hand limited."""


_KEY_REMOVED = "shopstyle_key_removed"  # meta flag: the URL had the API key, put it back when read from disk


def _keyless(queue_class):
    """A Scrapy disk queue class (``-s JOBDIR``) that pickles requests without the API key: a job folder is a file
    on disk like any other, so its ``pid`` is taken out of the URL as a request is saved and put back, from this
    process's own ``-a api_key`` or ``SHOPSTYLE_API_KEY``, as it is read (as ``request_queue`` does in Redis)."""

    class KeylessDiskQueue(queue_class):
        def push(self, request: Request) -> None:
            url = redact_url(request.url)
            if url != request.url:
                request = request.replace(url=url, meta={**request.meta, _KEY_REMOVED: True})
            super().push(request)

        def _with_key(self, request: Request | None) -> Request | None:
            if request is None or not request.meta.pop(_KEY_REMOVED, False):
                return request
            return request.replace(url=with_api_key(request.url, self.spider.api_key))

        def pop(self) -> Request | None:
            return self._with_key(super().pop())

        def peek(self) -> Request | None:
            return self._with_key(super().peek())

    KeylessDiskQueue.__name__ = KeylessDiskQueue.__qualname__ = f"Keyless{queue_class.__name__}"
    return KeylessDiskQueue


KeylessLifoDiskQueue = _keyless(PickleLifoDiskQueue)
KeylessFifoDiskQueue = _keyless(PickleFifoDiskQueue)
