"""``scrapy crawl``, exiting with status 1 when the spider refused to crawl or had to stop on a store failure.

Scrapy's own command exits 0 whatever the close reason, so a script or a scheduler cannot tell a crawl that ran
from one that stopped at once for a missing or rejected API key.
"""

from __future__ import annotations

import logging

from scrapy.commands.crawl import Command as ScrapyCrawlCommand

# close reasons that mean the crawl did not do its job: refused by the spider (CloseSpider), or stopped by the
# store pipelines because the database or the image store cannot be written
FAILED = frozenset({"missing_api_key", "api_key_rejected", "category_tree_unavailable", "database_unwritable",
                    "image_store_unwritable"})


class Command(ScrapyCrawlCommand):
    # A private method (no public hook hands the command its crawler, which the process forgets once it ends):
    # tests/test_scrapy_internals.py names it if it moves, and setup.cfg pins Scrapy's minor release for it.
    def _create_crawler(self, spname):
        self._crawler = super()._create_crawler(spname)
        return self._crawler

    def run(self, args, opts) -> None:
        # Scrapy leaves the root logger at NOTSET, sets its own "scrapy" logger to DEBUG and filters only in its
        # handler, so every request and item makes DEBUG records (and the key redaction looks at each) that nobody
        # emits at INFO: about 3 per request, 3% of a crawl's CPU for the "scrapy" logger alone.
        if self.settings.getbool("LOG_ENABLED"):
            for name in ("", "scrapy"):
                logging.getLogger(name).setLevel(self.settings.get("LOG_LEVEL"))
        super().run(args, opts)
        reason = getattr(self, "_crawler", None) and self._crawler.stats.get_value("finish_reason")
        if reason in FAILED:
            self.exitcode = 1
