"""``scrapy crawl shopstyle``: walk a ShopStyle API v2 category tree and page through every leaf's products.

Arguments (``-a NAME=VALUE``): ``root`` (default ``women``), ``max_per_category`` (default 1000), ``categories``
(comma-separated leaf ids: only these), ``api_key`` (default: the environment's ``SHOPSTYLE_API_KEY``),
``reconcile`` (default false; with REDIS_URL: first queue again what killed processes of the shared crawl lost),
``refresh`` (default empty: resume the crawl, skipping leaves already complete; ``new``: read each leaf newest first
and stop where its products are known; ``all``: read every leaf again and mark the products not met as gone; see
``shopstyle_spider.refresh``).

What the spider knows of the leaves it reads lives in ``self.ledger`` (see ``frontier``): this process's own, or,
with REDIS_URL, the one every process of a shared crawl reads and writes.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from urllib.parse import urlencode

import scrapy
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import CloseSpider, ScrapyDeprecationWarning

from .. import refresh as refreshes
from .. import schema
from ..cleaning import clean_field
from ..frontier import Claim, LeafLedger, RedisLeafLedger, page_key, parse_page_key, product_key
from ..items import CategoryItem, LeafDoneItem, ProductItem
from ..redaction import redact_url, with_api_key
from ..slots import API_SLOT, IMAGE_SLOT

# The API's filters a slice of a leaf is read by: the name /products/histogram takes, the prefix of its `fl` value.
FILTER_PREFIXES = {"Price": "p", "Brand": "b", "Retailer": "r", "Color": "c"}
# Filters a product may have several values of: their histogram's counts overlap.
MULTI_VALUED_FILTERS = {"Color"}
IMAGE_SIZE_PREFERENCE = ("Original", "XLarge", "Large", "Medium", "Small")


class ShopstyleSpider(scrapy.Spider):
    name = "shopstyle"

    def __init__(self, root: str = "women", max_per_category: str | int = 1000, categories: str = "",
                 api_key: str | None = None, reconcile: str = "false", refresh: str = "", **kwargs):
        super().__init__(**kwargs)
        self.root = root
        try:
            self.max_per_category = int(max_per_category)
        except ValueError:
            raise ValueError(f"-a max_per_category must be an integer, got {max_per_category!r}") from None
        if self.max_per_category < 1:
            raise ValueError(f"-a max_per_category must be >= 1, got {self.max_per_category}")
        self.only = {c.strip() for c in categories.split(",") if c.strip()}
        self.api_key = api_key or os.environ.get("SHOPSTYLE_API_KEY", "")
        if reconcile.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"-a reconcile must be true or false, got {reconcile!r}")
        self.reconcile = reconcile.lower() in ("true", "1", "yes")
        self.refresh = refreshes.parse_mode(refresh)
        self.refresh_id: int | None = None  # the refreshes row this run writes (resumed or new)
        self.refresh_leaves: set[str] = set()  # the leaves the refresh is to read
        self.known: dict[str, set[str]] = {}  # refresh=new: leaf -> products stored in it before the refresh
        self.known_run: dict[str, int] = {}  # refresh=new: leaf read newest first -> known products met in a row
        self.ledger: LeafLedger | RedisLeafLedger = LeafLedger()
        self.tree_claimed = False  # this process fetches the category tree of a shared crawl

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        if (url := crawler.settings.get("REDIS_URL")) and spider.refresh:
            raise ValueError("-a refresh runs in one process: unset REDIS_URL")
        if url:
            try:
                import redis
            except ImportError:
                raise ValueError("REDIS_URL needs the redis client: pip install '.[scale]'") from None
            spider.ledger = RedisLeafLedger(redis.Redis.from_url(url, decode_responses=True), prefix=spider.name)
            # scrapy-redis 0.9's scheduler still passes `spider` to the stats collector, deprecated since Scrapy 2.13
            warnings.filterwarnings("ignore", message="Passing a 'spider' argument to StatsCollector",
                                    category=ScrapyDeprecationWarning, module="scrapy_redis")
        return spider

    @classmethod
    def update_settings(cls, settings):
        """Give API requests their own download slot, paced to the request budget, and photos theirs; with
        REDIS_URL, share the request queue with every process crawling through the same Redis."""
        super().update_settings(settings)
        unknown = [name for name in slice_filters(settings) if name not in FILTER_PREFIXES]
        if unknown:
            raise ValueError(f"SHOPSTYLE_SLICE_FILTERS: unknown filters {unknown} "
                             f"(known: {', '.join(FILTER_PREFIXES)})")
        per_minute = settings.getfloat("SHOPSTYLE_REQUESTS_PER_MINUTE")
        if per_minute <= 0:
            raise ValueError(f"SHOPSTYLE_REQUESTS_PER_MINUTE must be > 0, got {per_minute}")
        slots = settings.getdict("DOWNLOAD_SLOTS")
        # with REDIS_URL the budget is paced across processes by SharedBudgetMiddleware instead of the slot's delay
        delay = 0.0 if settings.get("REDIS_URL") else 60.0 / per_minute
        slots[API_SLOT] = {"concurrency": settings.getint("SHOPSTYLE_API_CONCURRENCY"), "delay": delay, "jitter": 0}
        slots[IMAGE_SLOT] = {"concurrency": settings.getint("SHOPSTYLE_IMAGE_CONCURRENCY"), "delay": 0}
        settings.set("DOWNLOAD_SLOTS", slots, priority="spider")
        # Scrapy sizes its keep-alive pool (idle connections per host) by CONCURRENT_REQUESTS_PER_DOMAIN: at 8,
        # with 32 photos in flight, most photos opened a new connection; at what is in flight, a crawl opens one
        # connection per request in flight and reuses them.
        in_flight = sum(slot["concurrency"] for slot in (slots[API_SLOT], slots[IMAGE_SLOT]))
        if settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN") < in_flight:
            settings.set("CONCURRENT_REQUESTS_PER_DOMAIN", in_flight, priority="spider")
        if settings.get("REDIS_URL"):
            for name, value in settings.getdict("SHOPSTYLE_SHARED_FRONTIER").items():
                settings.set(name, value, priority="spider")

    # --- requests ---------------------------------------------------------------------------------------------
    def api_request(self, endpoint: str, params: dict, callback, dont_filter: bool = False,
                    **cb_kwargs) -> scrapy.Request:
        base = self.settings.get("SHOPSTYLE_API_URL").rstrip("/")
        self.crawler.stats.inc_value("shopstyle/api_requests")
        return scrapy.Request(
            with_api_key(f"{base}/{endpoint}?{urlencode(params, doseq=True)}", self.api_key),
            callback=callback, errback=self.page_failed, cb_kwargs=cb_kwargs, dont_filter=dont_filter,
            meta={"download_slot": API_SLOT, "autothrottle_dont_adjust_delay": True,
                  "handle_httpstatus_list": [400, 401, 403, 404]},
        )

    def tree_request(self, dont_filter: bool = False) -> scrapy.Request:
        return self.api_request("categories", {"cat": self.root}, self.parse_categories, dont_filter)

    def page_request(self, leaf: str, offset: int, fl: str = "", dont_filter: bool = False,
                     newest: bool = False, **counting) -> scrapy.Request:
        """A page of the leaf, or of a slice of it (``fl``: filter values joined by '+'); ``newest``: of the leaf
        listed newest first (refresh=new); ``counting``: ``cut`` and ``cut_total`` when the page is the first of a
        cut's union, read to count what the cut reaches (see ``parse_histogram``)."""
        params: dict = {"cat": leaf, "offset": offset, "limit": self.settings.getint("SHOPSTYLE_PAGE_SIZE")}
        if fl:
            params["fl"] = fl.split("+")
        if newest:
            params["sort"] = "Recency"
        self.ledger.page_queued(leaf, page_key(offset, fl))
        return self.api_request("products", params, self.parse_page, dont_filter, leaf=leaf, offset=offset, fl=fl,
                                newest=newest, **counting)

    def histogram_request(self, leaf: str, fl: str = "", dont_filter: bool = False) -> scrapy.Request | None:
        """The counts a slice of the leaf (the whole leaf: ``fl`` empty) can be cut by, under the filters it is not
        cut by yet; None when none is left."""
        used = {value[0] for value in fl.split("+") if value}
        filters = [name for name in slice_filters(self.settings) if FILTER_PREFIXES[name] not in used]
        if not filters:
            return None
        params: dict = {"cat": leaf, "filters": ",".join(filters)}
        if fl:
            params["fl"] = fl.split("+")
        self.ledger.page_queued(leaf, page_key(None, fl))
        return self.api_request("products/histogram", params, self.parse_histogram, dont_filter, leaf=leaf, fl=fl)

    async def start(self):
        if not self.api_key:
            self.logger.error("no API key: pass -a api_key=KEY or set SHOPSTYLE_API_KEY")
            raise CloseSpider("missing_api_key")
        if isinstance(self.ledger, RedisLeafLedger):
            if self.reconcile:
                for request in self.lost_requests():
                    yield request
            if self.ledger.claim_tree():
                self.tree_claimed = True
                yield self.tree_request(dont_filter=True)  # the claim makes it once; a released claim, again
            elif not self.reconcile:
                self.logger.info("joining the crawl shared through REDIS_URL (%d leaves in progress)",
                                 len(self.ledger.tracked()))
            return
        if self.reconcile:
            raise ValueError("-a reconcile=true recovers a crawl shared through REDIS_URL; set REDIS_URL")
        if self.refresh and hasattr(self, "state"):
            raise ValueError("-a refresh resumes without -s JOBDIR: run the same refresh again")
        if self.refresh:
            self.refresh_id, resumed = refreshes.begin(self.settings.get("SHOPSTYLE_DB"), self.refresh)
            self.logger.info("%s refresh %d (%s)", "resuming" if resumed else "starting", self.refresh_id,
                             self.refresh)
        if hasattr(self, "state"):  # -s JOBDIR: leaves in progress live in the state Scrapy saves on a pause
            self.ledger = self.state.setdefault("ledger", self.ledger)
            if self.ledger.tracked():
                self.logger.info("resuming %d leaves in progress from JOBDIR", len(self.ledger.tracked()))
        yield self.tree_request()

    def lost_requests(self):
        """Queue again what killed processes of a shared crawl took with them (see ``frontier``): the category
        tree if it was never read, the pages of a leaf still pending and not queued, and the pages of products
        yielded and never stored; a leaf whose pages were all read is finished again."""
        from ..request_queue import KeylessPriorityQueue

        queue = KeylessPriorityQueue(self.ledger.server, self, self.settings.get("SCHEDULER_QUEUE_KEY"))
        queued: dict[str, set[str]] = {}
        tree_queued = False
        for request in queue.requests():
            if request.callback in (self.parse_page, self.parse_histogram):
                kwargs = request.cb_kwargs
                queued.setdefault(kwargs["leaf"], set()).add(page_key(kwargs.get("offset"), kwargs["fl"]))
            tree_queued |= request.callback == self.parse_categories
        if self.ledger.tree_lost() and not tree_queued:
            self.logger.warning("reconcile: the category tree was never read; queueing it again")
            yield self.tree_request(dont_filter=True)
        for leaf in self.ledger.tracked():
            lost = self.ledger.lost_pages(leaf, queued.get(leaf, set()))
            if lost:
                self.logger.warning("reconcile: leaf %s: queueing %d lost pages again", leaf, len(lost))
                self.crawler.stats.inc_value("shopstyle/reconcile/pages", len(lost))
                for offset, fl in map(parse_page_key, lost):
                    if offset is None:  # None: SHOPSTYLE_SLICE_FILTERS has no filter left for it, nor pages
                        if (histogram := self.histogram_request(leaf, fl, dont_filter=True)) is not None:
                            yield histogram
                        else:
                            self.ledger.page_read(leaf, page_key(None, fl), failed=True)
                    else:
                        yield self.page_request(leaf, offset, fl, dont_filter=True)
            elif not queued.get(leaf):  # no page pending: it was read whole, its end never recorded
                yield from self.maybe_finish(leaf)

    def closed(self, reason: str) -> None:
        if self.tree_claimed and self.ledger.tree_lost():
            self.ledger.release_tree()

    # --- callbacks --------------------------------------------------------------------------------------------
    def parse_categories(self, response):
        body = self.api_json(response, _tree_shape)
        if isinstance(body, scrapy.Request):
            yield body
            return
        if body is None:
            raise CloseSpider("category_tree_unavailable")
        root = body["metadata"]["root"]
        tree = _read_tree(root, body["categories"])
        for fault, bad in tree.faults.items():
            self.crawler.stats.inc_value(f"shopstyle/faults/{fault}", len(bad))
            self.logger.error("category tree of %r: %d categories left out (%s): %s", self.root, len(bad),
                              fault.replace("_", " "), ", ".join(bad[:10]) + (" ..." if len(bad) > 10 else ""))
        for category_id, (name, parent_id, path) in tree.categories.items():
            yield CategoryItem(id=category_id, name=name, parent_id=parent_id,
                               is_leaf=category_id not in tree.parents, path=path)

        leaves = [c for c in tree.categories if c not in tree.parents]
        if self.only:
            unknown = sorted(self.only - set(leaves))
            if unknown:
                self.logger.error("-a categories: %s not leaves under %r; crawling the others", unknown, self.root)
            leaves = [leaf for leaf in leaves if leaf in self.only]
        db = self.settings.get("SHOPSTYLE_DB")
        if self.refresh:
            completed = refreshes.completed_leaves(db, self.refresh_id)
            self.refresh_leaves = set(leaves)
            if self.refresh == "new":
                self.known = refreshes.known_products(db, self.refresh_id)
        else:
            completed = schema.completed_leaves(db, self.max_per_category)
        started = 0
        for leaf in leaves:
            if leaf in completed:
                self.crawler.stats.inc_value("shopstyle/leaves/skipped")
            elif self.ledger.track(leaf):  # not when resumed: its pending pages are in the saved queue
                started += 1
                if self.known.get(leaf):  # a leaf never read is read whole
                    self.known_run[leaf] = 0
                    yield self.page_request(leaf, 0, newest=True)
                else:
                    yield self.page_request(leaf, 0)
        if isinstance(self.ledger, RedisLeafLedger):
            self.ledger.tree_read()
        self.logger.info("category tree of %r: %d categories, %d leaves to crawl, %d already complete",
                         self.root, len(tree.categories), started, len(set(leaves) & completed))

    def parse_page(self, response, leaf: str, offset: int, fl: str = "", newest: bool = False,
                   cut: str | None = None, cut_total: int = 0):
        body = self.api_json(response, _page_shape)
        if isinstance(body, scrapy.Request):
            yield body  # the same page again: it stays pending
            return
        failed = body is None
        if body is not None:
            unreadable = [i for i, product in enumerate(body["products"]) if not isinstance(product, dict)]
            if unreadable:  # nothing to key or store: the page counts as failed, so that its leaf stays incomplete
                failed = True
                self.crawler.stats.inc_value("shopstyle/faults/product_not_an_object", len(unreadable))
                self.logger.error("leaf %s: page at offset %d lists %d products that are not JSON objects (at %s); "
                                  "the leaf stays incomplete", leaf, offset, len(unreadable), unreadable[:10])
                body["products"] = [product for product in body["products"] if isinstance(product, dict)]
            yield from self.read_page(leaf, body, offset, fl, newest, counting=cut is not None)
            if cut is not None and body["metadata"]["total"] < cut_total:
                yield from self.remainder(leaf, cut, cut_total, body["metadata"]["total"])
        if self.ledger.page_read(leaf, page_key(offset, fl), failed=failed) == 0:
            yield from self.maybe_finish(leaf)

    def read_page(self, leaf: str, body: dict, offset: int, fl: str, newest: bool = False, counting: bool = False):
        """Claim the page's products; on the first page of the leaf or of a slice, queue the rest of it: its pages
        while the API's cap reaches them, else its histogram, to read it in slices under the cap. Read newest
        first, the leaf's next page is queued only while this one's products are not all known; ``counting``, the page
        is read for its total alone."""
        total = body["metadata"]["total"]
        if newest and offset == 0:
            self.ledger.set_total(leaf, total)
        elif offset == 0 and not counting:
            yield from self.plan(leaf, fl, total)
        products = body["products"]
        keys = [product_key(product.get("id")) for product in products]
        if newest:
            yield from self.next_newest(leaf, keys, offset, total)
        claims = self.ledger.claim(leaf, page_key(offset, fl), keys, self.max_per_category)
        for product, key, claim in zip(products, keys, claims, strict=False):
            if claim is Claim.NEW:
                yield self.product_item(product, leaf, key)
            elif claim is Claim.SEEN_IN_LEAF and fl:
                self.crawler.stats.inc_value("shopstyle/slices/overlap")  # met already on the leaf's first page
            else:
                self.crawler.stats.inc_value("shopstyle/duplicates")

    def next_newest(self, leaf: str, keys: list[str | None], offset: int, total: int):
        """The next newest page of the leaf, unless SHOPSTYLE_REFRESH_OVERLAP known products in a row were met:
        everything older is known too (the overlap guards against products listed a little out of date order)."""
        known, run = self.known[leaf], self.known_run[leaf]
        for key in keys:
            run = run + 1 if key in known else 0
        self.known_run[leaf] = run
        page_size = self.settings.getint("SHOPSTYLE_PAGE_SIZE")
        end = min(total, self.settings.getint("SHOPSTYLE_RESULT_CAP"), self.max_per_category)
        if run < self.settings.getint("SHOPSTYLE_REFRESH_OVERLAP") and offset + page_size < end:
            yield self.page_request(leaf, offset + page_size, newest=True)

    def plan(self, leaf: str, fl: str, total: int):
        """What to read of a leaf (``fl`` empty) or of a slice of it holding ``total`` products."""
        page_size, cap = self.settings.getint("SHOPSTYLE_PAGE_SIZE"), self.settings.getint("SHOPSTYLE_RESULT_CAP")
        if not fl:
            self.ledger.set_total(leaf, total)
            total = min(total, self.max_per_category)
        elif self.ledger.progress(leaf).reached >= self.max_per_category:
            return  # the leaf got what was asked of it from other slices
        if total > cap and (histogram := self.histogram_request(leaf, fl)) is not None:
            self.crawler.stats.inc_value("shopstyle/slices/split")
            yield histogram
            return
        for next_offset in range(page_size, min(total, cap), page_size):
            yield self.page_request(leaf, next_offset, fl)

    def parse_histogram(self, response, leaf: str, fl: str = ""):
        """Cut a slice of the leaf (or the leaf) by the filter whose histogram covers most of it: the first page of
        each part is queued, and a part still over the cap is cut again by another filter."""
        body = self.api_json(response, _histogram_shape)
        if isinstance(body, scrapy.Request):
            yield body
            return
        if body is not None:
            name, parts, covered = _best_cut(body, [name for name in slice_filters(self.settings)
                                                    if f"{name.lower()}Histogram" in body],
                                             self.settings.getint("SHOPSTYLE_RESULT_CAP"))
            total = body["metadata"]["total"]
            if name in MULTI_VALUED_FILTERS and covered < total:
                # overlapping counts: the first page of the parts' union (fl values of one kind are ORed) says how
                # many distinct products the cut reaches; the rest of the slice is read only if that is short
                union = "+".join([*filter(None, [fl]), *(value for value, _ in parts)])
                yield self.page_request(leaf, 0, union, cut=fl, cut_total=total)
            elif covered < total:
                yield from self.remainder(leaf, fl, total, covered)
            for value, _ in parts:
                self.crawler.stats.inc_value("shopstyle/slices/read")
                yield self.page_request(leaf, 0, f"{fl}+{value}" if fl else value)
        if self.ledger.page_read(leaf, page_key(None, fl), failed=body is None) == 0:
            yield from self.maybe_finish(leaf)

    def remainder(self, leaf: str, fl: str, total: int, covered: int):
        """A cut of a slice (the whole leaf: ``fl`` empty) covers ``covered`` of its ``total`` products: read what
        the API's cap reaches of the slice itself as well (its first page is read already)."""
        self.logger.warning("leaf %s%s: %d of its %d products are in no slice the API can filter", leaf,
                            f" ({fl})" if fl else "", total - covered, total)
        page_size = self.settings.getint("SHOPSTYLE_PAGE_SIZE")
        for offset in range(page_size, min(total, self.settings.getint("SHOPSTYLE_RESULT_CAP")), page_size):
            yield self.page_request(leaf, offset, fl)

    def maybe_finish(self, leaf: str):
        """Every page of the leaf is read: tell the store it is finished, with what stayed out of reach."""
        progress = self.ledger.progress(leaf)
        if leaf in self.known_run:  # read newest first: the older products were not to be read
            yield LeafDoneItem(category_id=leaf, total=progress.total, reached=progress.reached, unreachable=0,
                               newest=True)
            return
        wanted = min(progress.total, self.max_per_category)
        unreachable = max(0, wanted - progress.reached) if not progress.failed_pages else 0
        if unreachable:
            self.crawler.stats.inc_value("shopstyle/unreachable_products", unreachable)
            self.logger.warning("leaf %s: %d of its %d products stayed out of the API's reach", leaf,
                                unreachable, progress.total)
        yield LeafDoneItem(category_id=leaf, total=progress.total, reached=progress.reached,
                           unreachable=unreachable)

    def page_failed(self, failure):
        request = failure.request
        self.logger.error("giving up on %s: %s", request.url, failure.getErrorMessage())
        if request.callback not in (self.parse_page, self.parse_histogram):
            raise CloseSpider("category_tree_unavailable")
        kwargs = request.cb_kwargs
        if self.ledger.page_read(kwargs["leaf"], page_key(kwargs.get("offset"), kwargs["fl"]), failed=True) == 0:
            yield from self.maybe_finish(kwargs["leaf"])

    # --- helpers ----------------------------------------------------------------------------------------------
    def api_json(self, response, shape) -> dict | scrapy.Request | None:
        """The response's JSON body if ``shape(body)`` finds nothing wrong with it; for a malformed body or one of
        another shape, a retry of the request while retries last; else None (counted, logged)."""
        if response.status in (401, 403):
            self.logger.error("the API rejected the key: %s", _error_message(response))
            raise CloseSpider("api_key_rejected")
        if response.status != 200:
            self.logger.error("API error on %s: %s", response.url, _error_message(response))
            return None
        try:
            body = json.loads(response.text)
        except ValueError as error:
            what, detail, reason, stat = "malformed JSON", error, "malformed_json", "malformed_pages"
        else:
            detail = shape(body)
            if detail is None:
                return body
            what, reason, stat = "an answer of another shape", "unexpected_schema", "faults/unexpected_schema"
        retry = get_retry_request(response.request, spider=self, reason=reason)
        if retry is not None:
            return retry
        self.crawler.stats.inc_value(f"shopstyle/{stat}")
        self.logger.error("%s from %s after retries: %s", what, response.url, detail)
        return None

    @staticmethod
    def product_item(product: dict, leaf: str, key: str | None) -> ProductItem:
        """The product as an item, whatever the types of its fields: ValidationPipeline judges the values."""
        categories = product.get("categories")
        first = categories[0] if isinstance(categories, list) and categories else None
        click_url = product.get("clickUrl")
        image_url = _best_image_url(product.get("image"))
        return ProductItem(
            id=product.get("id"), name=product.get("name"),
            category_id=first.get("id") if isinstance(first, dict) else None, crawl_leaf=leaf, crawl_key=key,
            description=product.get("description"), brand=_name(product.get("brand")),
            retailer=_name(product.get("retailer")), price=product.get("price"), currency=product.get("currency"),
            in_stock=product.get("inStock"),
            click_url=redact_url(clean_field(click_url)) if isinstance(click_url, str) else click_url,
            image_url=image_url, image_urls=[image_url] if image_url else [],
        )


def slice_filters(settings) -> list[str]:
    """SHOPSTYLE_SLICE_FILTERS, without empty names (``-s SHOPSTYLE_SLICE_FILTERS=`` turns slicing off)."""
    return [name.strip() for name in settings.getlist("SHOPSTYLE_SLICE_FILTERS") if name.strip()]


def _name(value) -> str | None:
    return value.get("name") if isinstance(value, dict) else None


def _best_image_url(image) -> str | None:
    sizes = image.get("sizes") if isinstance(image, dict) else None
    if not isinstance(sizes, dict):
        return None
    for size in IMAGE_SIZE_PREFERENCE:
        if isinstance(sizes.get(size), dict) and sizes[size].get("url"):
            return sizes[size]["url"]  # of any type: ValidationPipeline refuses what is not an http(s) URL
    return None


def _is_id(value) -> bool:
    """A category id the crawl can store and put in a URL."""
    return isinstance(value, str) and bool(value.strip()) and clean_field(value) == value


def _tree_shape(body) -> str | None:
    """What is wrong with a categories answer that no category can be read from; None when nothing is."""
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
        return "no metadata object"
    root = body["metadata"].get("root")
    if not isinstance(root, dict) or not _is_id(root.get("id")):
        return "no metadata.root with an id"
    if not isinstance(body.get("categories"), list):
        return "no categories list"
    return None


def _histogram_shape(body) -> str | None:
    """What is wrong with a histogram answer; None when nothing is (entries are checked one by one)."""
    problem = _page_shape({**body, "products": []}) if isinstance(body, dict) else "not an object"
    if problem is None and not any(isinstance(body.get(f"{name.lower()}Histogram"), list) for name in FILTER_PREFIXES):
        return "no histogram"
    return problem


def _best_cut(body: dict, names: list[str], cap: int) -> tuple[str | None, list[tuple[str, int]], int]:
    """The filter, among ``names``, whose histogram surely covers most products, its ``fl`` values and counts, and
    how many distinct products it surely covers; of the best, the one with the fewest parts still over ``cap``
    (each costs another histogram), then the fewest parts (each costs a request at least). Entries that are not
    {id, count} are left out.

    A product has one price, brand and retailer, so those counts add up to the distinct products the cut reaches;
    it may carry several colours, so colour counts overlap and their sum says nothing of how many products the
    colours reach: only the largest count is sure (the cut's union tells the rest: see ``parse_histogram``).
    Summed, 7,000 colours of a 6,000-product leaf whose 500 products have no colour looked like the whole leaf,
    and those 500 were never read."""
    def covered(name, parts):
        counts = [c for _, c in parts]
        return max(counts, default=0) if name in MULTI_VALUED_FILTERS else sum(counts)

    def cost(name, parts):
        return -covered(name, parts), sum(c > cap for _, c in parts), len(parts)

    best: tuple[str, list[tuple[str, int]]] | None = None
    for name in names:
        entries = body[f"{name.lower()}Histogram"]
        if not isinstance(entries, list):
            continue
        parts = [(f"{FILTER_PREFIXES[name]}{entry['id']}", entry["count"]) for entry in entries
                 if isinstance(entry, dict) and str(entry.get("id", "")).isdigit()
                 and isinstance(entry.get("count"), int) and not isinstance(entry["count"], bool)
                 and entry["count"] > 0]
        if best is None or cost(name, parts) < cost(*best):
            best = name, parts
    return (best[0], best[1], covered(*best)) if best else (None, [], 0)


def _page_shape(body) -> str | None:
    """What is wrong with a products answer; None when nothing is."""
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
        return "no metadata object"
    total = body["metadata"].get("total")
    if not isinstance(total, int) or isinstance(total, bool) or not 0 <= total < 2**31:  # the leaves table's INTEGER
        return f"metadata.total {total!r:.50} is not a count"
    if not isinstance(body.get("products"), list):
        return "no products list"
    return None


@dataclass
class Tree:
    """A category tree as read: every category reachable from the root, and what was left out, by fault."""

    categories: dict[str, tuple[str, str | None, str]]  # id -> (name, parent id, path from the root)
    parents: set[str]  # categories that have children
    faults: dict[str, list[str]]


def _read_tree(root: dict, listed: list) -> Tree:
    """The categories whose parents lead to ``root``. An entry that is not an object with an id, a category whose
    parent is not in the tree (an orphan) or whose parents loop back to it (a cycle) is left out, with its
    descendants, under its fault; a duplicate id keeps its first entry."""
    faults: dict[str, list[str]] = {}
    parent_of: dict[str, str | None] = {}
    names: dict[str, str] = {}
    for entry in listed:
        if not isinstance(entry, dict) or not _is_id(entry.get("id")):
            faults.setdefault("bad_category", []).append(repr(entry)[:80])
        elif entry["id"] in parent_of or entry["id"] == root["id"]:
            faults.setdefault("duplicate_category", []).append(entry["id"])
        else:
            parent = entry.get("parentId")
            parent_of[entry["id"]] = parent if _is_id(parent) else None
            names[entry["id"]] = entry.get("name") if isinstance(entry.get("name"), str) else entry["id"]
    root_id = root["id"]
    paths = {root_id: root_id}
    for category_id in parent_of:
        chain, current = [], category_id
        while current not in paths and current in parent_of and current not in chain:
            chain.append(current)
            current = parent_of[current]
        if current in paths:
            for member in reversed(chain):
                paths[member] = f"{paths[parent_of[member]]}/{member}"
        else:
            fault = "cyclic_category" if current in chain else "orphan_category"
            faults.setdefault(fault, []).append(category_id)
    name = root.get("name") if isinstance(root.get("name"), str) else root_id
    parent = root.get("parentId") if _is_id(root.get("parentId")) else None
    categories = {root_id: (name, parent, root_id)}
    categories.update((c, (names[c], parent_of[c], paths[c])) for c in parent_of if c in paths)
    parents = {parent_of[c] for c in categories if c != root_id}
    return Tree(categories, parents, faults)


def _error_message(response) -> str:
    try:
        body = json.loads(response.text)
        return f"{response.status} {body['errorName']}: {body['errorMessage']}"
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"HTTP {response.status}"
