"""The shared request queue of a crawl run by several processes (``REDIS_URL``), on scrapy-redis.

Two changes to scrapy-redis' scheduler and queue. The queue holds requests without the API key, because Redis is a
database like any other: the key (the ``pid`` parameter) is taken out of a request's URL as it is queued and put
back, from the popping process's own ``-a api_key`` or ``SHOPSTYLE_API_KEY``, as it is popped. And a process takes
API requests from the queue only while it has fewer than ``SHOPSTYLE_API_CONCURRENCY`` of them in hand, as a
process crawling alone does (``scheduler.ApiInHandLimit``).
"""

from __future__ import annotations

from scrapy import Request
from scrapy_redis.queue import PriorityQueue
from scrapy_redis.scheduler import Scheduler

from .redaction import redact_url, with_api_key
from .scheduler import ApiInHandLimit


class KeylessPriorityQueue(PriorityQueue):
    # scrapy-redis' private encode/decode: its public SCHEDULER_SERIALIZER never sees the spider, whose key the
    # popping process puts back. tests/test_scrapy_internals.py exercises both; setup.cfg pins scrapy-redis for it.
    def _encode_request(self, request: Request):
        return super()._encode_request(request.replace(url=redact_url(request.url)))

    def _decode_request(self, encoded_request) -> Request:
        request = super()._decode_request(encoded_request)
        return request.replace(url=with_api_key(request.url, self.spider.api_key))

    def requests(self) -> list[Request]:
        """Every request waiting in the queue (for the reconcile step), decoded and left there."""
        return [self._decode_request(encoded) for encoded in self.server.zrange(self.key, 0, -1)]


class FrontierScheduler(ApiInHandLimit, Scheduler):
    """scrapy-redis' scheduler with the API requests in hand limited."""
