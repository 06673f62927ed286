"""Downloader middleware: back off the API when it says so (429 Retry-After) or when it struggles (5xx, errors).

Scrapy's RetryMiddleware re-sends such requests at once; this middleware, placed just before it, first pushes the
request's download slot into the future, so that nothing more goes to the API until the wait is over. Only
slots with a delay are paced this way: the API slot is (see ``ShopstyleSpider.update_settings``).
"""

from __future__ import annotations

import email.utils
import logging
import time

from scrapy.utils.misc import load_object

logger = logging.getLogger(__name__)


def retry_after_seconds(value: bytes | None) -> float | None:
    """A Retry-After header as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class BackoffMiddleware:
    def __init__(self, crawler):
        settings = crawler.settings
        self.crawler = crawler
        self.base = settings.getfloat("SHOPSTYLE_BACKOFF_BASE")
        self.cap = settings.getfloat("SHOPSTYLE_BACKOFF_MAX")
        self.retry_codes = {int(code) for code in settings.getlist("RETRY_HTTP_CODES")}
        self.retry_exceptions = tuple(load_object(path) if isinstance(path, str) else path
                                      for path in settings.getlist("RETRY_EXCEPTIONS"))

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_response(self, request, response):
        if response.status == 429:
            wait = retry_after_seconds(response.headers.get(b"Retry-After"))
            self.crawler.stats.inc_value("shopstyle/backoff/429")
            self._pause(request, wait if wait is not None else self._backoff(request))
        elif response.status in self.retry_codes:
            self.crawler.stats.inc_value(f"shopstyle/backoff/{response.status}")
            self._pause(request, self._backoff(request))
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, self.retry_exceptions):
            self.crawler.stats.inc_value("shopstyle/backoff/exception")
            self._pause(request, self._backoff(request))

    def _backoff(self, request) -> float:
        return min(self.cap, self.base * 2 ** request.meta.get("retry_times", 0))

    def _pause(self, request, wait: float) -> None:
        slot = self.crawler.engine.downloader.slots.get(request.meta.get("download_slot"))
        if slot is None or not slot.delay:
            return
        # The slot sends its next request `delay` after `lastseen`: moving lastseen forward holds the queue.
        slot.lastseen = max(slot.lastseen, time.monotonic() + wait)
        logger.debug("holding slot %s for %.1fs after %s", request.meta.get("download_slot"), wait, request)
