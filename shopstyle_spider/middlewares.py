"""Downloader middlewares: back off the API when it says so (429 Retry-After) or when it struggles (5xx, errors),
and, with ``REDIS_URL``, pace API requests by the budget every crawl process shares.

Scrapy's RetryMiddleware re-sends such requests at once; BackoffMiddleware, placed just before it, first pushes the
request's download slot into the future, so that nothing more goes to the API until the wait is over. Only
slots with a delay are paced this way: the API slot is (see ``ShopstyleSpider.update_settings``), unless the
budget is shared, in which case the shared schedule is pushed back instead and every process waits.
"""

from __future__ import annotations

import email.utils
import logging
import time

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.misc import load_object

from .shared_budget import SharedBudget, budget_key
from .slots import API_SLOT

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
        shared = self.crawler.get_downloader_middleware(SharedBudgetMiddleware)
        if shared is not None and request.meta.get("download_slot") == API_SLOT:
            shared.hold(wait)
            return
        slot = self.crawler.engine.downloader.slots.get(request.meta.get("download_slot"))
        if slot is None or not slot.delay:
            return
        # The slot sends its next request `delay` after `lastseen`: moving lastseen forward holds the queue (no
        # public way to pause a slot; tests/test_scrapy_internals.py checks this still holds it).
        slot.lastseen = max(slot.lastseen, time.monotonic() + wait)
        logger.debug("holding slot %s for %.1fs after %s", request.meta.get("download_slot"), wait, request)


class SharedBudgetMiddleware:
    """With ``REDIS_URL``: each API request waits for its turn in the budget all crawl processes share."""

    def __init__(self, crawler):
        self.crawler = crawler
        self.budget: SharedBudget | None = None

    @classmethod
    def from_crawler(cls, crawler):
        if not crawler.settings.get("REDIS_URL"):
            raise NotConfigured("no REDIS_URL: this process paces the API budget alone")
        middleware = cls(crawler)
        crawler.signals.connect(middleware.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(middleware.spider_closed, signal=signals.spider_closed)
        return middleware

    def spider_opened(self, spider):
        settings = self.crawler.settings
        self.budget = SharedBudget(settings.get("REDIS_URL"),
                                   budget_key(settings.get("SHOPSTYLE_API_URL"), getattr(spider, "api_key", "")),
                                   settings.getfloat("SHOPSTYLE_REQUESTS_PER_MINUTE"))

    async def spider_closed(self, spider):
        if self.budget is not None:
            await self.budget.close()

    async def process_request(self, request):
        if self.budget is not None and request.meta.get("download_slot") == API_SLOT:
            waited = await self.budget.wait_turn()
            self.crawler.stats.inc_value("shopstyle/shared_budget/requests")
            self.crawler.stats.max_value("shopstyle/shared_budget/max_wait_ms", round(waited * 1000))

    def hold(self, seconds: float) -> None:
        if self.budget is not None:
            deferred_from_coro(self.budget.hold(seconds))
