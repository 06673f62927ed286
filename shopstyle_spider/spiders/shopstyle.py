"""``scrapy crawl shopstyle``: walk a ShopStyle API v2 category tree and page through every leaf's products.

Arguments (``-a NAME=VALUE``): ``root`` (default ``women``), ``max_per_category`` (default 1000), ``categories``
(comma-separated leaf ids: only these), ``api_key`` (default: the environment's ``SHOPSTYLE_API_KEY``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from urllib.parse import urlencode

import scrapy
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import CloseSpider

from .. import schema
from ..items import CategoryItem, LeafDoneItem, ProductItem
from ..redaction import redact_url

API_SLOT = "shopstyle-api"
IMAGE_SLOT = "shopstyle-images"  # photo downloads (ProductImagesPipeline) share this slot
RESULT_CAP = 5000  # the API returns nothing past this offset, whatever `total` says
IMAGE_SIZE_PREFERENCE = ("Original", "XLarge", "Large", "Medium", "Small")


@dataclass
class LeafProgress:
    id: str
    total: int = 0
    pending_pages: int = 0
    products: int = 0  # product items yielded
    failed_pages: int = 0
    deep_pass: bool = False
    seen: set = field(default_factory=set)

    def wanted(self, max_per_category: int) -> int:
        """How many products this leaf should yield: all of them, up to the crawl's per-category limit."""
        return min(self.total, max_per_category)


class ShopstyleSpider(scrapy.Spider):
    name = "shopstyle"

    def __init__(self, root: str = "women", max_per_category: str | int = 1000, categories: str = "",
                 api_key: str | None = None, **kwargs):
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
        self.leaves: dict[str, LeafProgress] = {}
        self.products_seen: set[int] = set()  # across leaves: a product listed in two categories is stored once

    @classmethod
    def update_settings(cls, settings):
        """Give API requests their own download slot, paced to the request budget, and photos theirs."""
        super().update_settings(settings)
        per_minute = settings.getfloat("SHOPSTYLE_REQUESTS_PER_MINUTE")
        if per_minute <= 0:
            raise ValueError(f"SHOPSTYLE_REQUESTS_PER_MINUTE must be > 0, got {per_minute}")
        slots = settings.getdict("DOWNLOAD_SLOTS")
        # with REDIS_URL the budget is paced across processes by SharedBudgetMiddleware instead of the slot's delay
        delay = 0.0 if settings.get("REDIS_URL") else 60.0 / per_minute
        slots[API_SLOT] = {"concurrency": settings.getint("SHOPSTYLE_API_CONCURRENCY"), "delay": delay, "jitter": 0}
        slots[IMAGE_SLOT] = {"concurrency": settings.getint("SHOPSTYLE_IMAGE_CONCURRENCY"), "delay": 0}
        settings.set("DOWNLOAD_SLOTS", slots, priority="spider")

    # --- requests ---------------------------------------------------------------------------------------------
    def api_request(self, endpoint: str, params: dict, callback, **cb_kwargs) -> scrapy.Request:
        base = self.settings.get("SHOPSTYLE_API_URL").rstrip("/")
        self.crawler.stats.inc_value("shopstyle/api_requests")
        return scrapy.Request(
            f"{base}/{endpoint}?{urlencode({'pid': self.api_key, **params})}",
            callback=callback, errback=self.page_failed, cb_kwargs=cb_kwargs,
            meta={"download_slot": API_SLOT, "autothrottle_dont_adjust_delay": True,
                  "handle_httpstatus_list": [400, 401, 403, 404]},
        )

    def page_request(self, progress: LeafProgress, offset: int) -> scrapy.Request:
        sorts = self.settings.getlist("SHOPSTYLE_DEEP_SORTS") or [""]
        sort = sorts[-1] if progress.deep_pass else sorts[0]
        params = {"cat": progress.id, "offset": offset, "limit": self.settings.getint("SHOPSTYLE_PAGE_SIZE")}
        if sort:
            params["sort"] = sort
        progress.pending_pages += 1
        return self.api_request("products", params, self.parse_page, leaf=progress.id, offset=offset)

    async def start(self):
        if not self.api_key:
            self.logger.error("no API key: pass -a api_key=KEY or set SHOPSTYLE_API_KEY")
            raise CloseSpider("missing_api_key")
        if hasattr(self, "state"):  # -s JOBDIR: leaves in progress live in the state Scrapy saves on a pause
            self.leaves = self.state.setdefault("leaves", self.leaves)
            if self.leaves:
                self.logger.info("resuming %d leaves in progress from JOBDIR", len(self.leaves))
        yield self.api_request("categories", {"cat": self.root}, self.parse_categories)

    # --- callbacks --------------------------------------------------------------------------------------------
    def parse_categories(self, response):
        body = self.api_json(response)
        if isinstance(body, scrapy.Request):
            yield body
            return
        if body is None:
            raise CloseSpider("category_tree_unavailable")
        root = body["metadata"]["root"]
        categories = {c["id"]: c for c in body["categories"]}
        has_children = {c.get("parentId") for c in categories.values()}
        paths = {root["id"]: root["id"]}

        def path_of(category_id: str) -> str:
            if category_id not in paths:
                paths[category_id] = f"{path_of(categories[category_id]['parentId'])}/{category_id}"
            return paths[category_id]

        yield CategoryItem(id=root["id"], name=root.get("name") or root["id"], parent_id=root.get("parentId"),
                           is_leaf=root["id"] not in has_children, path=root["id"])
        for category in categories.values():
            yield CategoryItem(id=category["id"], name=category.get("name") or category["id"],
                               parent_id=category.get("parentId"), is_leaf=category["id"] not in has_children,
                               path=path_of(category["id"]))

        leaves = [c for c in categories if c not in has_children] or [root["id"]]
        if self.only:
            unknown = sorted(self.only - set(leaves))
            if unknown:
                self.logger.error("-a categories: %s not leaves under %r; crawling the others", unknown, self.root)
            leaves = [leaf for leaf in leaves if leaf in self.only]
        completed = schema.completed_leaves(self.settings.get("SHOPSTYLE_DB"))
        for leaf in leaves:
            if leaf in completed:
                self.crawler.stats.inc_value("shopstyle/leaves/skipped")
                continue
            if leaf in self.leaves:  # resumed from JOBDIR: its pending pages are in the saved queue
                continue
            progress = self.leaves[leaf] = LeafProgress(leaf)
            yield self.page_request(progress, 0)
        self.logger.info("category tree of %r: %d categories, %d leaves to crawl, %d already complete",
                         self.root, len(categories) + 1, len(self.leaves), len(set(leaves) & completed))

    def parse_page(self, response, leaf: str, offset: int):
        progress = self.leaves[leaf]
        body = self.api_json(response)
        if isinstance(body, scrapy.Request):
            yield body  # the same page again: it stays pending
            return
        if body is None:
            progress.failed_pages += 1
        else:
            yield from self.read_page(progress, body, offset)
        progress.pending_pages -= 1
        yield from self.maybe_finish(progress)

    def read_page(self, progress: LeafProgress, body: dict, offset: int):
        page_size = self.settings.getint("SHOPSTYLE_PAGE_SIZE")
        if offset == 0 and not progress.deep_pass:
            progress.total = int(body["metadata"]["total"])
            for next_offset in range(page_size, min(progress.wanted(self.max_per_category), RESULT_CAP), page_size):
                yield self.page_request(progress, next_offset)
        wanted = progress.wanted(self.max_per_category)
        met_first_pass = False
        for product in body["products"]:
            if len(progress.seen) >= self.max_per_category:
                break
            product_id = product.get("id")
            if product_id in progress.seen:
                met_first_pass = progress.deep_pass
                if not progress.deep_pass:  # the second pass meeting the first is expected; this is not
                    self.crawler.stats.inc_value("shopstyle/duplicates")
                continue
            if product_id is not None:
                progress.seen.add(product_id)
                if product_id in self.products_seen:
                    self.crawler.stats.inc_value("shopstyle/duplicates")
                    continue
                self.products_seen.add(product_id)
            progress.products += 1
            yield self.product_item(product, progress.id)
        if progress.deep_pass and body["products"] and not met_first_pass and len(progress.seen) < wanted \
                and offset + page_size < RESULT_CAP:
            yield self.page_request(progress, offset + page_size)

    def maybe_finish(self, progress: LeafProgress):
        if progress.pending_pages:
            return
        wanted = progress.wanted(self.max_per_category)
        if not progress.deep_pass and progress.total > RESULT_CAP and len(progress.seen) < wanted \
                and len(self.settings.getlist("SHOPSTYLE_DEEP_SORTS")) > 1 and not progress.failed_pages:
            progress.deep_pass = True
            yield self.page_request(progress, 0)
            return
        unreachable = max(0, wanted - len(progress.seen)) if not progress.failed_pages else 0
        if unreachable:
            self.crawler.stats.inc_value("shopstyle/unreachable_products", unreachable)
            self.logger.warning("leaf %s: %d of its %d products stayed out of the API's reach", progress.id,
                                unreachable, progress.total)
        del self.leaves[progress.id]
        yield LeafDoneItem(category_id=progress.id, products=progress.products, total=progress.total,
                           reached=len(progress.seen), unreachable=unreachable, failed_pages=progress.failed_pages)

    def page_failed(self, failure):
        request = failure.request
        self.logger.error("giving up on %s: %s", request.url, failure.getErrorMessage())
        if request.callback != self.parse_page:
            raise CloseSpider("category_tree_unavailable")
        progress = self.leaves[request.cb_kwargs["leaf"]]
        progress.failed_pages += 1
        progress.pending_pages -= 1
        yield from self.maybe_finish(progress)

    # --- helpers ----------------------------------------------------------------------------------------------
    def api_json(self, response) -> dict | scrapy.Request | None:
        """The response's JSON body; for a malformed one, a retry of the request while retries last; else None."""
        if response.status in (401, 403):
            self.logger.error("the API rejected the key: %s", _error_message(response))
            raise CloseSpider("api_key_rejected")
        if response.status != 200:
            self.logger.error("API error on %s: %s", response.url, _error_message(response))
            return None
        try:
            body = json.loads(response.text)
            if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
                raise ValueError("no metadata object")
            return body
        except ValueError as error:
            retry = get_retry_request(response.request, spider=self, reason="malformed_json")
            if retry is not None:
                return retry
            self.crawler.stats.inc_value("shopstyle/malformed_pages")
            self.logger.error("malformed JSON from %s after retries: %s", response.url, error)
            return None

    @staticmethod
    def product_item(product: dict, leaf: str) -> ProductItem:
        categories = product.get("categories") or []
        first = categories[0] if categories and isinstance(categories[0], dict) else {}
        image_url = _best_image_url(product.get("image"))
        return ProductItem(
            id=product.get("id"), name=product.get("name"), category_id=first.get("id"), crawl_leaf=leaf,
            description=product.get("description"), brand=_name(product.get("brand")),
            retailer=_name(product.get("retailer")), price=product.get("price"), currency=product.get("currency"),
            in_stock=product.get("inStock"), click_url=redact_url(product.get("clickUrl")), image_url=image_url,
            image_urls=[image_url] if image_url else [],
        )


def _name(value) -> str | None:
    return value.get("name") if isinstance(value, dict) else None


def _best_image_url(image) -> str | None:
    sizes = image.get("sizes") if isinstance(image, dict) else None
    if not isinstance(sizes, dict):
        return None
    for size in IMAGE_SIZE_PREFERENCE:
        if isinstance(sizes.get(size), dict) and sizes[size].get("url"):
            return sizes[size]["url"]
    return None


def _error_message(response) -> str:
    try:
        body = json.loads(response.text)
        return f"{response.status} {body['errorName']}: {body['errorMessage']}"
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"HTTP {response.status}"
