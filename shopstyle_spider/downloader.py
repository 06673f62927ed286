"""Scrapy's downloader, holding each download slot to its concurrency when requests wait in the slot's queue.

Scrapy 2.19 under the asyncio reactor starts a queued download as a task and counts it against the slot only
once the task runs, so one pass over a slot's queue starts everything waiting in it. Requests from the scheduler
rarely wait there (the engine feeds the downloader only while it has room), but the images pipeline hands every
photo of the items in progress straight to the downloader: with 32 allowed, about 100 photos were in flight, and
most opened a new connection because the keep-alive pool holds fewer. Counting a download as it is started keeps
``SHOPSTYLE_IMAGE_CONCURRENCY`` a promise to the photo host.

It also counts the requests as they leave their slot, that is as they are sent (retries included), and the API
requests apart, with the moments of the first and the last: the pace the API actually got, which the crawl's
summary reports. These counts stand in for Scrapy's DownloaderStats (off: see settings.py).
"""

from __future__ import annotations

import time

from scrapy.core.downloader import Downloader, Slot

from .slots import API_SLOT

__all__ = ["SlotLimitedDownloader"]


class SlotLimitedDownloader(Downloader):
    # A private method: no public hook runs as a queued download starts. tests/test_scrapy_internals.py exercises
    # this override, and setup.cfg pins Scrapy's minor release for it.
    def _wait_for_download(self, slot: Slot, request, queue_dfd):
        # Called (not awaited) by _process_queue for each request it starts: count the request as transferring
        # now, before the next turn of that loop asks the slot for room; Scrapy's own _download adds it again
        # (a set) and removes it when the download ends.
        slot.transferring.add(request)
        stats = self.crawler.stats
        stats.inc_value("shopstyle/requests_sent")
        if request.meta.get("download_slot") == API_SLOT:
            now = time.time()
            stats.inc_value("shopstyle/api_requests_sent")
            stats.min_value("shopstyle/api_first_sent_at", now)
            stats.max_value("shopstyle/api_last_sent_at", now)
        return super()._wait_for_download(slot, request, queue_dfd)
