"""Crawl-wide extensions: keep the API key out of the logs, keep Python's garbage collector from costing the crawl
its CPU, keep the processes of a shared crawl up until it is done, and print a summary when the crawl ends."""

from __future__ import annotations

import gc
import logging
import time
from contextlib import closing

from scrapy import signals
from scrapy.exceptions import DontCloseSpider, NotConfigured
from sqlalchemy import text

from . import cpu, refresh, schema
from .redaction import LogRedactor

logger = logging.getLogger(__name__)


class RedactKeyInLogs:
    """Redact every log record for the crawl's lifetime."""

    def __init__(self, settings_secrets: tuple[str, ...] = ()):
        self.settings_secrets = settings_secrets
        self.redactor = LogRedactor(*settings_secrets)

    @classmethod
    def from_crawler(cls, crawler):
        # Scrapy logs every overridden setting (a storage secret given with -s among them) right after this.
        extension = cls((*(str(crawler.settings.get(name) or "")
                               for name in crawler.settings.getlist("SHOPSTYLE_SECRET_SETTINGS")),
                         schema.password_of(crawler.settings.get("SHOPSTYLE_DB")) or ""))
        extension.redactor.install()  # before anything is requested, so no URL with the key is ever logged
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.engine_stopped, signal=signals.engine_stopped)
        return extension

    def spider_opened(self, spider):
        self.redactor.secrets = tuple(s for s in (getattr(spider, "api_key", ""), *self.settings_secrets) if s)

    def engine_stopped(self):
        self.redactor.uninstall()


class GarbageCollection:
    """Collect garbage less often during the crawl: ``SHOPSTYLE_GC_THRESHOLD`` (see ``gc.set_threshold``), and the
    objects of the crawl's start (Scrapy, Twisted, the settings, the category tree) frozen out of every collection.

    With Python's defaults (700, 10, 10) a crawl of the fashion catalog at 100 ms spent 35 of its 80 CPU seconds in
    10,401 collections (2026-12-07): every request and item leaves a burst of Deferreds, coroutines and frames,
    most of them cyclic, and the collector walked the whole heap again and again. Fewer, larger collections still
    free every cycle: the crawl's memory stays where it was (about 300 MB).
    """

    def __init__(self, threshold: tuple[int, ...]):
        self.threshold = threshold
        self.default = gc.get_threshold()

    @classmethod
    def from_crawler(cls, crawler):
        threshold = tuple(int(value) for value in crawler.settings.getlist("SHOPSTYLE_GC_THRESHOLD"))
        if not threshold:
            raise NotConfigured("SHOPSTYLE_GC_THRESHOLD is empty: Python's own")
        if len(threshold) > 3 or threshold[0] < 1:
            raise ValueError(f"SHOPSTYLE_GC_THRESHOLD: one to three counts, the first >= 1; got {threshold}")
        extension = cls(threshold)
        crawler.signals.connect(extension.engine_started, signal=signals.engine_started)
        crawler.signals.connect(extension.engine_stopped, signal=signals.engine_stopped)
        return extension

    def engine_started(self):
        gc.collect()
        gc.freeze()
        gc.set_threshold(*self.threshold)

    def engine_stopped(self):
        gc.set_threshold(*self.default)
        gc.unfreeze()


class SharedFrontierWatch:
    """With ``REDIS_URL``: an idle process stays up while the shared crawl still has leaves in progress (their next
    pages may be queued by another process at any moment), and the last one removes the frontier once it is done.

    Leaves in progress and nothing moving (no page read, no product stored by any process) for
    ``SHOPSTYLE_FRONTIER_IDLE_TIMEOUT`` seconds means their pages went down with a killed process: the process
    stops and says how to recover them.

    An idle process looks at the shared queue every ``SHOPSTYLE_FRONTIER_POLL_INTERVAL`` seconds. Scrapy's engine
    looks again only on its heartbeat, every 5 s: a process joining a crawl whose first pages another process had
    just taken sat idle that long, and so did every process at the end, waiting to see the crawl done (a two-process
    crawl of the fashion catalog ended on the heartbeat's tick, both processes at 50.0 s).
    """

    def __init__(self, crawler, timeout: float, poll_interval: float):
        self.crawler = crawler
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._events: int | None = None
        self._since = 0.0

    @classmethod
    def from_crawler(cls, crawler):
        if not crawler.settings.get("REDIS_URL"):
            raise NotConfigured("no REDIS_URL: the crawl is this process's alone")
        extension = cls(crawler, crawler.settings.getfloat("SHOPSTYLE_FRONTIER_IDLE_TIMEOUT"),
                        crawler.settings.getfloat("SHOPSTYLE_FRONTIER_POLL_INTERVAL"))
        crawler.signals.connect(extension.engine_started, signal=signals.engine_started)
        crawler.signals.connect(extension.spider_idle, signal=signals.spider_idle)
        return extension

    def engine_started(self):
        # The heartbeat (ExecutionEngine._SLOT_HEARTBEAT_INTERVAL, Scrapy's way to revisit a scheduler that had
        # nothing to give) starts right after this signal; the interval has no setting, so the instance's shadows it
        # (tests/test_scrapy_internals.py checks the engine still reads it from the instance).
        self.crawler.engine._SLOT_HEARTBEAT_INTERVAL = self.poll_interval

    def spider_idle(self, spider):
        ledger = spider.ledger
        if not ledger.has_work():
            settings = self.crawler.settings
            ledger.clear(*(settings.get(name) % {"spider": spider.name}
                           for name in ("SCHEDULER_QUEUE_KEY", "SCHEDULER_DUPEFILTER_KEY")))
            return
        events, now = ledger.events(), time.monotonic()
        if events != self._events:
            self._events, self._since = events, now
        if now - self._since < self.timeout:
            raise DontCloseSpider
        leaves = ledger.tracked()
        self.crawler.stats.set_value("shopstyle/frontier/stalled_leaves", len(leaves))
        logger.warning("the shared crawl has not moved for %.0fs with %d leaves in progress (%s): their pending "
                       "pages were lost with a stopped process. Once no crawl process runs, "
                       "`scrapy crawl shopstyle -a reconcile=true` queues them again",
                       now - self._since, len(leaves), ", ".join(leaves[:5]) + (", ..." if len(leaves) > 5 else ""))


class CrawlSummary:
    """What the crawl did, in a few lines: categories, products, images, drops by reason, requests, time."""

    def __init__(self, crawler):
        self.crawler = crawler
        self.cpu_at_start = 0.0

    @classmethod
    def from_crawler(cls, crawler):
        extension = cls(crawler)
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_opened(self, spider):
        self.cpu_at_start = time.process_time()

    def spider_closed(self, spider, reason):
        # the process's CPU while the spider ran (all threads: sqlite and the image store write from Twisted's pool)
        self.crawler.stats.set_value("shopstyle/cpu_seconds", round(time.process_time() - self.cpu_at_start, 3))
        stats = self.crawler.stats.get_stats()
        dropped = {key.removeprefix("shopstyle/dropped/"): value for key, value in stats.items()
                   if key.startswith("shopstyle/dropped/")}
        images = {key.removeprefix("shopstyle/images/"): value for key, value in stats.items()
                  if key.startswith("shopstyle/images/")}
        cleaned = {key.removeprefix("shopstyle/cleaned/"): value for key, value in stats.items()
                   if key.startswith("shopstyle/cleaned/")}
        faults = {key.removeprefix("shopstyle/faults/"): value for key, value in stats.items()
                  if key.startswith("shopstyle/faults/")}
        lines = [
            f"crawl finished ({reason}) in {stats.get('elapsed_time_seconds', 0):.1f}s",
            f"  this run: {stats.get('shopstyle/products_written', 0)} products written, "
            f"{stats.get('shopstyle/leaves/completed', 0)} leaves completed, "
            f"{stats.get('shopstyle/leaves/skipped', 0)} skipped as already complete, "
            f"{stats.get('shopstyle/leaves/incomplete', 0)} incomplete",
            f"  images this run: {_counts(images)}",
            f"  dropped items: {_counts(dropped)}",
            f"  cleaned: {_counts(cleaned)}; duplicate listings skipped {stats.get('shopstyle/duplicates', 0)}",
            f"  answers of the wrong shape: {_counts(faults)}",
            f"  requests: {stats.get('shopstyle/requests_sent', 0)} "
            f"({stats.get('shopstyle/api_requests_sent', 0)} to the API in "
            f"{stats.get('shopstyle/api_last_sent_at', 0) - stats.get('shopstyle/api_first_sent_at', 0):.2f}s, "
            f"{stats.get('retry/count', 0)} retries, {stats.get('shopstyle/backoff/429', 0)} answered 429); "
            f"malformed pages {stats.get('shopstyle/malformed_pages', 0)}, "
            f"unreachable products {stats.get('shopstyle/unreachable_products', 0)}",
            "  CPU: {cpu_seconds:.2f}s, {ms_per_request:.2f} ms per request: {ms_per_page:.2f} ms per API page "
            "({pages}), {ms_per_photo:.2f} ms per photo ({photos})".format(**cpu.per_request(stats)),
        ]
        db_path = self.crawler.settings.get("SHOPSTYLE_DB")
        try:
            with closing(schema.connect(db_path, readonly=True)) as db:
                totals = db.execute(text(
                    "SELECT (SELECT count(*) FROM categories), (SELECT count(*) FROM products), "
                    "(SELECT count(*) FROM products WHERE image_status = 'ok'), "
                    "(SELECT count(*) FROM products WHERE image_status NOT IN ('ok', 'none')), "
                    "(SELECT count(*) FROM products WHERE gone_at IS NOT NULL)")).fetchone()
            lines.append(f"  database {schema.display_name(db_path)}: {totals[0]} categories, {totals[1]} products, "
                         f"{totals[2]} images stored, {totals[3]} images missing or failed, "
                         f"{totals[4]} products gone")
            if (refresh_id := getattr(spider, "refresh_id", None)) is not None:
                lines.append(f"  {refresh.describe(db_path, refresh_id)}")
        except schema.SchemaError as error:
            lines.append(f"  database: {error}")
        logger.info("\n".join(lines))


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counter.items())) or "none"
