"""The crawl's stats collector: Scrapy's in-memory one, without the check Scrapy 2.19 runs on every call to it.

Scrapy's ``StatsCollector`` defines ``__getattribute__`` to wrap its methods, on every access, in a check that
warns a caller still passing the deprecated ``spider`` argument; each attribute the collector reads of itself goes
through it too. A stats call took 2 µs instead of 0.1, and a crawl makes about ten per request (Scrapy's engine and
pipelines, and ours): 2% of its CPU by that count, 6% in a pair of crawls of the fashion catalog. The methods
still take ``spider``, so scrapy-redis' calls with it keep working (without the warning, which the spider filters
out anyway).
"""

from __future__ import annotations

from scrapy.statscollectors import MemoryStatsCollector

__all__ = ["CrawlStats"]


class CrawlStats(MemoryStatsCollector):
    __getattribute__ = object.__getattribute__
