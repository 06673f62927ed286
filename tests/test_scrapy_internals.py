"""The Scrapy and scrapy-redis internals the crawler still relies on, each exercised exactly as it is used.

Each has no public hook in Scrapy 2.19 / scrapy-redis 0.9 (the reasons are at each use and at the pins in
setup.cfg), so an upgrade that renames or changes one must fail here, by name, rather than quietly change how the
crawl paces the API or keeps its key out of Redis. What had a public way was moved to it (the photo store uses
``FSFilesStore.basedir``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
import time

import pytest
import scrapy
from scrapy.core.downloader import Slot
from scrapy.core.engine import ExecutionEngine
from scrapy.statscollectors import StatsCollector
from scrapy.utils.test import get_crawler
from twisted.internet.defer import Deferred

from shopstyle_spider.config import PROJECT_ROOT
from shopstyle_spider.downloader import SlotLimitedDownloader
from shopstyle_spider.slots import API_SLOT
from shopstyle_spider.stats import CrawlStats

KEY = "s3cret-key"


def run_slot(concurrency: int, delay: float, lastseen_ago: float, queued: int) -> dict:
    """Queue ``queued`` API requests in a slot of a real ``SlotLimitedDownloader`` whose ``lastseen`` was
    ``lastseen_ago`` seconds ago (negative: ahead) and let it process its queue once, as Scrapy does when a request
    reaches the slot. Runs inside an asyncio loop, as a crawl does; the loop ends before any download task runs,
    so nothing is sent. Returns what stayed queued, what is counted as transferring, and the sent count."""

    async def run() -> dict:
        downloader = SlotLimitedDownloader(get_crawler(scrapy.Spider))
        slot = Slot(concurrency=concurrency, delay=delay, jitter=0)
        slot.lastseen = time.monotonic() - lastseen_ago
        for n in range(queued):
            request = scrapy.Request(f"http://api.invalid/v2/products?offset={n}", meta={"download_slot": API_SLOT})
            slot.queue.append((request, Deferred()))
        downloader._process_queue(slot)
        if slot.latercall:
            slot.latercall.cancel()
        downloader.close()
        return {"queued": len(slot.queue), "transferring": len(slot.transferring),
                "sent": downloader.crawler.stats.get_value("shopstyle/api_requests_sent", 0)}

    return asyncio.run(run())


def in_fresh_interpreter(**kwargs) -> dict:
    """``run_slot`` in a new Python: this test process may already hold Twisted's default reactor, under which
    Scrapy starts downloads differently from a crawl (which runs the asyncio reactor)."""
    code = f"import json; from tests.test_scrapy_internals import run_slot; print(json.dumps(run_slot(**{kwargs!r})))"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_the_downloader_counts_a_download_as_it_starts_so_a_slot_keeps_its_concurrency():
    """``SlotLimitedDownloader`` overrides ``Downloader._wait_for_download`` (no hook runs as a queued request
    starts): Scrapy 2.19 alone starts every request queued in a slot in one pass."""
    assert in_fresh_interpreter(concurrency=2, delay=0.0, lastseen_ago=0.0, queued=5) == \
        {"queued": 3, "transferring": 2, "sent": 2}


def test_moving_a_slots_lastseen_ahead_holds_its_queue():
    """``BackoffMiddleware`` holds a slot after a 429 by moving ``Slot.lastseen`` ahead (no public way to pause a
    slot): its next request waits until ``delay`` after it, and goes once that has passed."""
    assert in_fresh_interpreter(concurrency=1, delay=1.0, lastseen_ago=-30.0, queued=1) == \
        {"queued": 1, "transferring": 0, "sent": 0}
    assert in_fresh_interpreter(concurrency=1, delay=1.0, lastseen_ago=2.0, queued=1) == \
        {"queued": 0, "transferring": 1, "sent": 1}


def test_the_engine_reads_its_heartbeat_interval_from_the_instance():
    """``FrontierIdleExtension`` shadows ``ExecutionEngine._SLOT_HEARTBEAT_INTERVAL`` on the engine (the interval
    has no setting) so an idle process of a shared crawl looks at the queue every poll interval, not every 5 s."""
    assert isinstance(ExecutionEngine._SLOT_HEARTBEAT_INTERVAL, float)
    assert "heartbeat.start(self._SLOT_HEARTBEAT_INTERVAL)" in inspect.getsource(ExecutionEngine)


def test_the_crawl_command_creates_its_crawler_through_the_method_it_overrides():
    """``commands.crawl.Command`` overrides ``ScrapyCommand._create_crawler`` to keep the crawler (the process
    forgets it once it finishes) and read its close reason for the exit status; no public hook hands the command
    its crawler. ``test_crawl``'s refused-key tests see the exit status; this names the method if it moves."""
    from scrapy.commands.crawl import Command as ScrapyCrawlCommand

    from shopstyle_spider.commands.crawl import Command

    assert list(inspect.signature(ScrapyCrawlCommand._create_crawler).parameters) == ["self", "spidercls"]
    assert "self._create_crawler(spname)" in inspect.getsource(ScrapyCrawlCommand.run)
    assert issubclass(Command, ScrapyCrawlCommand)


def test_the_redis_queue_stores_requests_without_the_key_and_gives_them_back_with_it():
    """``KeylessPriorityQueue`` overrides scrapy-redis' ``_encode_request``/``_decode_request`` (its serializer
    setting never sees the spider, whose key the popping process puts back)."""
    redis = pytest.importorskip("redis", reason="the scale-out extra is not installed: pip install '.[scale]'")
    from shopstyle_spider.request_queue import KeylessPriorityQueue
    from shopstyle_spider.sandbox import RedisServerProcess

    spider = scrapy.Spider(name="shopstyle")
    spider.api_key = KEY
    url = f"http://api.invalid/v2/products?cat=boots&offset=50&pid={KEY}"
    try:
        server_process = RedisServerProcess()
        server_process.__enter__()
    except FileNotFoundError as error:
        pytest.skip(f"{error} (.ci/run installs it)")
    try:
        server = redis.Redis.from_url(server_process.url)
        queue = KeylessPriorityQueue(server, spider, "shopstyle:requests")
        queue.push(scrapy.Request(url, meta={"download_slot": API_SLOT}))
        stored = server.zrange("shopstyle:requests", 0, -1)
        assert len(stored) == 1 and KEY.encode() not in stored[0]
        assert [request.url for request in queue.requests()] == [url]
        assert queue.pop().url == url and len(queue) == 0
    finally:
        server_process.__exit__(None, None, None)


def test_the_crawl_stats_skip_the_per_call_check_scrapys_collector_still_runs_and_still_take_a_spider():
    """``CrawlStats`` undoes ``StatsCollector.__getattribute__`` (Scrapy's deprecation check, run on every stats call):
    the base must still define it, else the override is dead; and the methods work as Scrapy's, ``spider`` included
    (scrapy-redis passes it)."""
    assert "__getattribute__" in vars(StatsCollector)
    crawler = get_crawler(scrapy.Spider)
    stats = CrawlStats(crawler)
    assert type(stats).__getattribute__ is object.__getattribute__
    stats.inc_value("requests")
    stats.inc_value("requests", 2, spider=scrapy.Spider("s"))
    stats.max_value("latest", 5)
    stats.min_value("first", 3)
    stats.set_value("reason", "finished")
    assert stats.get_stats() == {"requests": 3, "latest": 5, "first": 3, "reason": "finished"}
    assert stats.get_value("missing", 0) == 0
