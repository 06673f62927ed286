"""Item pipelines, one concern each: validate products, fetch their images, store everything in the crawl database."""

from __future__ import annotations

import io
import logging
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from itemadapter import ItemAdapter
from PIL import Image, ImageOps
from scrapy import Request, signals
from scrapy.exceptions import DropItem
from scrapy.http.request import NO_CALLBACK
from scrapy.pipelines.files import FSFilesStore
from scrapy.pipelines.images import ImageException, ImagesPipeline
from scrapy.pipelines.media import FileException
from scrapy.utils.defer import deferred_from_coro
from sqlalchemy import insert
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from . import cpu, refresh, schema
from .cleaning import clean_field, has_surrogate
from .items import CategoryItem, LeafDoneItem, ProductItem
from .slots import IMAGE_SLOT

logger = logging.getLogger(__name__)
UNUSABLE = "not a usable image"
MISSING = "missing (HTTP 404)"
JPEG_START = b"\xff\xd8\xff"
STORE_FAILED = "image store unwritable"
try:  # Scrapy's S3 store (IMAGES_STORE = s3://...) fails with botocore's errors, the filesystem store with OSError
    from botocore.exceptions import BotoCoreError, ClientError
    STORE_ERRORS: tuple[type[Exception], ...] = (OSError, BotoCoreError, ClientError)
except ImportError:
    STORE_ERRORS = (OSError,)


MAX_PRODUCT_ID = 2**63 - 1  # the products table's BIGINT
OPTIONAL_TEXT = ("description", "brand", "retailer", "currency", "click_url", "image_url")


class ValidationPipeline:
    """Make every stored field what the database expects, so that one odd value never reaches it: text cleaned
    (control characters, lone surrogates), a value of the wrong type emptied, a product without a usable id, name
    or category dropped; each counted by kind and field in the crawl stats.

    A photo URL that is not http(s) text is not fetched: its product is kept with ``image_status`` invalid."""

    REQUIRED = ("id", "name", "category_id")

    def __init__(self, stats, max_description: int):
        self.stats = stats
        self.max_description = max_description

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.stats, crawler.settings.getint("SHOPSTYLE_MAX_DESCRIPTION_CHARS"))

    def process_item(self, item):
        if isinstance(item, CategoryItem):
            item.name = clean_field(item.name) if isinstance(item.name, str) and item.name.strip() else item.id
            return item
        if not isinstance(item, ProductItem):
            return item
        adapter = ItemAdapter(item)
        where = f"product {adapter['id']!r:.100} from leaf {item.crawl_leaf!r}"
        if item.image_urls:
            self._check_photo_url(item)
        for field in ("name", "category_id", *OPTIONAL_TEXT):
            value = adapter[field]
            if value is not None and not isinstance(value, str):
                if field in self.REQUIRED:
                    return self._drop(f"bad_{field}", f"{where}: its {field} {value!r:.100} is not text")
                adapter[field] = None
                self.stats.inc_value(f"shopstyle/cleaned/not_text_{field}")
            elif isinstance(value, str) and (cleaned := clean_field(value)) != value:
                adapter[field] = cleaned
                self.stats.inc_value(f"shopstyle/cleaned/bad_chars_{field}")
        description = adapter["description"]
        if isinstance(description, str) and len(description) > self.max_description:
            adapter["description"] = description[:self.max_description]
            self.stats.inc_value("shopstyle/cleaned/description_truncated")
        if adapter["price"] is not None:
            adapter["price"] = _price(adapter["price"])
            if adapter["price"] is None:
                self.stats.inc_value("shopstyle/cleaned/bad_price")
        if adapter["in_stock"] is not None and not isinstance(adapter["in_stock"], bool):
            adapter["in_stock"] = None
            self.stats.inc_value("shopstyle/cleaned/bad_in_stock")
        for field in self.REQUIRED:
            value = adapter[field]
            if isinstance(value, str):
                value = adapter[field] = value.strip()
            if value in (None, ""):
                return self._drop(f"missing_{field}", f"{where} has no {field}")
        product_id = adapter["id"]
        if not isinstance(product_id, int) or isinstance(product_id, bool) or not 0 < product_id <= MAX_PRODUCT_ID:
            return self._drop("bad_id", f"product id {product_id!r:.100} from leaf {item.crawl_leaf!r} is not a "
                                        "positive 64-bit integer")
        return item

    def _check_photo_url(self, item: ProductItem) -> None:
        """Fetch only a photo URL Scrapy can request as it is: http(s), no lone surrogate."""
        url = item.image_url
        if not isinstance(url, str) or has_surrogate(url) or urlsplit(clean_field(url)).scheme not in ("http",
                                                                                                   "https"):
            shown = clean_field(url) if isinstance(url, str) else url
            item.image_urls = []
            item.image_status = "invalid"
            item.image_error = f"{UNUSABLE}: the photo URL {shown!r:.200} cannot be requested"
            self.stats.inc_value("shopstyle/cleaned/bad_image_url")

    def _drop(self, reason: str, message: str):
        self.stats.inc_value(f"shopstyle/dropped/{reason}")
        raise DropItem(message)


def _price(value) -> float | None:
    """A price as the database's float: a finite number, else None (an integer past a float's range included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        price = float(value)
    except OverflowError:
        return None
    return price if math.isfinite(price) else None


class StoreUnwritable(RuntimeError):
    """The database or the image store refused a write (disk full, read-only, not a folder): the crawl stops."""


def stop_crawl(crawler, reason: str, message: str) -> None:
    """Log why once and close the spider: writing on would lose the work of every request still to come."""
    if crawler.stats.get_value("shopstyle/stopped"):
        return
    crawler.stats.set_value("shopstyle/stopped", reason)
    logger.error("%s; stopping the crawl (what was committed stays; a new run resumes from there)", message)
    deferred_from_coro(crawler.engine.close_spider_async(reason=reason))


def _not_a_recorded_photo_failure(record: logging.LogRecord) -> bool:
    """False for Scrapy's traceback of a photo failure this pipeline already recorded on its product and logged in
    one line (a dead link or a bad image is data, not a crash); True for everything else."""
    # the key redaction turns records into text and keeps what was raised as record.exception
    exception = getattr(record, "exception", None) or (record.exc_info[1] if record.exc_info else None)
    return not isinstance(exception, FileException)


class AtomicFSFilesStore(FSFilesStore):
    """Scrapy's filesystem store, writing each photo to a temporary name and renaming it into place.

    Scrapy writes a photo in place: a crawl killed mid-write left a truncated file that the next run took for a
    stored photo (its checksum and all). A rename is atomic: a photo is there whole or not at all. And Scrapy makes
    a folder after checking it is not there: processes of a shared crawl writing one folder race between the two.
    It uses only the store's public parts (``basedir``, ``persist_file``), so a Scrapy upgrade cannot move them.
    """

    def __init__(self, basedir):
        try:
            super().__init__(basedir)
        except FileExistsError:  # another crawl process made the folder between Scrapy's check and its mkdir
            super().__init__(basedir)

    def persist_file(self, path, buf, info, meta=None, headers=None) -> None:
        """Write the photo, unless the stored file has these very bytes: a photo downloaded again (past
        IMAGES_EXPIRES, or by a refresh) is rewritten only when it changed."""
        # os.path rather than pathlib, and the folder made only when a write finds none: a photo is written for
        # every product with one, and pathlib's objects and a mkdir each time cost 1% of the crawl's CPU
        absolute_path = os.path.join(self.basedir, path)
        body = buf.getvalue()
        try:
            if os.path.getsize(absolute_path) == len(body) and Path(absolute_path).read_bytes() == body:
                return
        except FileNotFoundError:
            pass
        folder, name = os.path.split(absolute_path)
        partial = os.path.join(folder, f".{name}.partial")
        try:
            _write(partial, body)
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            _write(partial, body)
        os.replace(partial, absolute_path)


def _write(path: str, body: bytes) -> None:
    with open(path, "wb") as file:
        file.write(body)


def image_store_location(setting: str) -> str:
    """IMAGES_STORE as the database records it: a local folder (a path or file:// URI) made absolute, so that it
    holds from any working directory; a bucket's URI (s3://, gs://, ftp://) as it is, less any password in it (no
    secret is stored)."""
    parts = urlsplit(setting)
    if parts.scheme not in ("", "file") and len(parts.scheme) > 1:  # one letter: a Windows drive
        if parts.password is not None:
            host = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
            return parts._replace(netloc=f"{parts.username}@{host}").geturl()
        return setting
    return str(Path(setting.removeprefix("file://")).resolve())


def check_photo_header(body: bytes, max_pixels: int) -> None:
    """Raise FileException for a photo refused from its header alone, before any pixel is decoded: not an image
    (an HTML page), or more than ``max_pixels`` pixels (a decompression bomb, or a photo modeling would refuse).
    Bad data to record on the product, not an error for Scrapy to log with a traceback."""
    try:
        with Image.open(io.BytesIO(body)) as image:
            width, height = image.size  # opening parses the header; size is what a bomb lies about
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise FileException(f"{UNUSABLE}: {error}") from None
    if width * height > max_pixels:
        raise FileException(f"{UNUSABLE}: {width}x{height} pixels is over the {max_pixels:,} allowed")


class ProductImagesPipeline(ImagesPipeline):
    """Fetch each product's largest photo into IMAGES_STORE as ``full/<product id>.jpg``.

    Naming by product id keeps the file stable across sandboxes and hosts (the URL's host and port change) and
    lets a re-crawl find it already stored. A photo that is missing, fails or does not decode keeps its product:
    the reason is recorded on the item instead.
    """

    STORE_SCHEMES = {**ImagesPipeline.STORE_SCHEMES, "": AtomicFSFilesStore, "file": AtomicFSFilesStore}

    def __init__(self, store_uri, *, crawler):
        super().__init__(store_uri, crawler=crawler)
        self.max_pixels = crawler.settings.getint("SHOPSTYLE_MAX_IMAGE_PIXELS")

    @classmethod
    def from_crawler(cls, crawler):
        media_log = logging.getLogger("scrapy.pipelines.media")
        if _not_a_recorded_photo_failure not in media_log.filters:
            media_log.addFilter(_not_a_recorded_photo_failure)
        return super().from_crawler(crawler)

    def get_media_requests(self, item, info):
        if not isinstance(item, ProductItem) or not item.image_urls:
            return []
        return [Request(url, callback=NO_CALLBACK, meta={"download_slot": IMAGE_SLOT}) for url in item.image_urls]

    def file_path(self, request, response=None, info=None, *, item=None):
        return f"full/{item.id}.jpg"

    def convert_image(self, image, size=None, *, response_body):
        """Store a JPEG photo byte for byte: re-encoding it would only lose detail (and change its checksum)."""
        if size is None and image.mode == "RGB" and response_body.getvalue()[:3] == JPEG_START:
            return image, response_body
        return super().convert_image(image, size, response_body=response_body)

    async def media_downloaded(self, response, request, info, *, item=None):
        if response.status == 404:
            # A dead link is common and expected: data to record on the product, returned as the photo's result.
            # Raised, each made Scrapy build a Failure, make a log record of it with its traceback (which our
            # filter then dropped) and clean it: 3% of the CPU of a crawl of the fashion catalog by its profile, whose
            # photo URLs are three quarters dead.
            return {"url": request.url, "path": None, "checksum": None, "status": "missing"}
        if response.status == 200:
            with cpu.measured(self.crawler.stats, cpu.PHOTO):
                check_photo_header(response.body, self.max_pixels)
        return await super().media_downloaded(response, request, info, item=item)

    def get_images(self, response, request, info, *, item=None):
        """Scrapy's, but an RGB JPEG (stored byte for byte: see ``convert_image``) is decoded at an eighth of its
        size, JPEG's own scaling: every byte of it is still read, so a truncated or corrupt photo still fails, at
        half the CPU. Scrapy turned it by its EXIF orientation and decoded it whole, only to store the bytes as they
        came; the image given back has the size Scrapy's had (the store records it)."""
        with cpu.measured(self.crawler.stats, cpu.PHOTO):  # decoding the photo and its checksum's input
            body = response.body
            if body[:3] == JPEG_START and not self.thumbs and not (self.min_width or self.min_height):
                with Image.open(io.BytesIO(body)) as check:
                    if check.mode == "RGB":
                        check.draft("RGB", (check.width // 8, check.height // 8))
                        check.load()
                        image = Image.open(io.BytesIO(body))
                        ImageOps.exif_transpose(image, in_place=True)  # turned, as Scrapy turns it: its size
                        path = self.file_path(request, response=response, info=info, item=item)
                        return [(path, image, io.BytesIO(body))]
            return list(super().get_images(response, request, info, item=item))

    async def file_downloaded(self, response, request, info, *, item=None):
        try:
            return await super().file_downloaded(response, request, info, item=item)
        except STORE_ERRORS as error:  # the store, not the photo: ENOSPC, EROFS, EACCES; no bucket, no credentials
            stop_crawl(self.crawler, "image_store_unwritable",
                       f"cannot write photos to IMAGES_STORE {self.crawler.settings['IMAGES_STORE']}: {error}")
            raise FileException(f"{STORE_FAILED}: {error}") from None

    def media_failed(self, failure, request, info):
        """Keep the reason (Scrapy's own handler replaces it with a bare FileException)."""
        error = failure.value
        if isinstance(error, FileException) and str(error):
            logger.warning("photo %s not stored: %s", request.url, error)
            raise error
        return super().media_failed(failure, request, info)

    def item_completed(self, results, item, info):
        if not isinstance(item, ProductItem):
            return item
        for ok, result in results:
            if not ok and str(result.value).startswith(STORE_FAILED):
                # not stored, not counted through: its leaf stays incomplete and the next run fetches it again
                raise StoreUnwritable(f"product {item.id}: {result.value}")
        for ok, result in results:
            if ok and result["status"] == "missing":
                item.image_status, item.image_error = "missing", MISSING
            elif ok:
                item.images = [result]
                item.image_path, item.image_checksum = result["path"], result["checksum"]
                item.image_status, item.image_error = "ok", None
            else:
                error = result.value
                message = str(error) or type(error).__name__
                if isinstance(error, ImageException) or message.startswith(UNUSABLE):
                    item.image_status = "invalid"
                else:
                    item.image_status = "failed"
                item.image_error = message[:500]
        return item


class DatabaseStorePipeline:
    """Upsert categories and products in batched transactions; mark a leaf complete once all of it is stored.

    A leaf counts as complete only when the spider read all its pages and every product it yielded for it has
    been committed (or dropped), as the spider's ledger tells (see ``frontier``): stopped before that, the next run
    (or the reconcile step of a shared crawl) reads it again, and the upserts make the repeat harmless. The leaf's
    row is written in its own transaction right after its last products are committed.

    A batch the database refuses for one of its rows (a constraint, a value the driver cannot bind, PostgreSQL's
    DataError) is written again row by row: the rows it still refuses are dropped alone and counted by reason, and
    count as done for their leaves, as products dropped by validation do. A database that cannot be written at all
    (OperationalError, OSError) stops the crawl instead.
    """

    def __init__(self, db_path: str, batch_size: int, stats, crawler=None):
        self.db_path = db_path
        self.batch_size = batch_size
        self.stats = stats
        self.crawler = crawler
        self.db = None
        self._categories: list[dict] = []
        self._products: list[dict] = []
        self._sources: list[tuple[str, str | None]] = []  # (leaf, ledger key) of each product of the batch

    @classmethod
    def from_crawler(cls, crawler):
        pipeline = cls(crawler.settings.get("SHOPSTYLE_DB"), crawler.settings.getint("SHOPSTYLE_DB_BATCH_SIZE"),
                       crawler.stats, crawler)
        crawler.signals.connect(pipeline.item_dropped, signal=signals.item_dropped)
        crawler.signals.connect(pipeline.item_error, signal=signals.item_error)
        # a process with nothing in progress commits what it holds: products of a leaf another process of a shared
        # crawl finished must not wait in this batch for more to come
        crawler.signals.connect(pipeline.flush, signal=signals.spider_idle)
        return pipeline

    @property
    def ledger(self):
        return self.crawler.spider.ledger

    @property
    def refresh_id(self) -> int | None:
        """The refresh this crawl is (``-a refresh``), None for a plain crawl."""
        return getattr(self.crawler.spider, "refresh_id", None)

    def open_spider(self):
        self.db = schema.connect(self.db_path)
        self._record_image_store()

    def _record_image_store(self) -> None:
        """Record in the database where this crawl stores its photos (products' image_path is relative to it), so
        that modeling finds them from any working directory; a store other than the one recorded before is said."""
        setting = self.crawler.settings.get("IMAGES_STORE")
        location = image_store_location(setting)
        when = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            with self.db.begin():
                before = schema.record_image_store(self.db, location, when)
        except (OperationalError, OSError) as error:
            stop_crawl(self.crawler, "database_unwritable",
                       f"cannot write the crawl database {schema.display_name(self.db_path)}: "
                       f"{getattr(error, 'orig', None) or error}")
            return
        if before is not None and before != location:
            logger.warning("IMAGES_STORE is now %s; the photos of earlier crawls into this database stay in %s",
                           location, before)

    def close_spider(self):
        if self.db is not None:  # None: the database could not be opened, the crawl never started
            self.flush()
            spider = self.crawler.spider
            if self.refresh_id is not None and not self.stats.get_value("shopstyle/stopped"):
                refresh.finish(self.db, self.refresh_id, spider.refresh, spider.root, spider.refresh_leaves)
            self.db.close()

    def process_item(self, item):
        now = datetime.now(UTC).isoformat(timespec="seconds")
        seen = {"now": now, "refresh_id": self.refresh_id, "gone_at": None}  # a row met again is not gone
        if isinstance(item, CategoryItem):
            self._categories.append({**ItemAdapter(item).asdict(), "is_leaf": int(item.is_leaf), **seen})
        elif isinstance(item, ProductItem):
            row = {column: getattr(item, column) for column in schema.PRODUCT_COLUMNS}
            row["in_stock"] = None if item.in_stock is None else int(item.in_stock)
            self._products.append({**row, **seen})
            self._sources.append((item.crawl_leaf, item.crawl_key))
            self.stats.inc_value(f"shopstyle/images/{item.image_status}")
        elif isinstance(item, LeafDoneItem):
            self.ledger.finish(item.category_id, ItemAdapter(item).asdict())
            self.flush()  # its products with it, as far as they came through
            self._check_leaf(item.category_id)
        if len(self._products) + len(self._categories) >= self.batch_size:
            self.flush()
        return item

    def item_dropped(self, item, response, exception, spider=None):
        if isinstance(item, ProductItem):
            self.ledger.stored(item.crawl_leaf, [item.crawl_key])
            self._check_leaf(item.crawl_leaf)

    def item_error(self, item, response, failure, spider=None):
        if isinstance(item, ProductItem):
            self.ledger.stored(item.crawl_leaf, [item.crawl_key], failed=True)
            self._check_leaf(item.crawl_leaf)

    def _check_leaf(self, leaf: str) -> None:
        completion = self.ledger.completion(leaf)
        if completion is None:
            return
        summary, progress = completion
        if progress.failed_pages or progress.errors:
            logger.warning("leaf %s is incomplete (%d pages failed, %d items failed): the next run crawls it again",
                           leaf, progress.failed_pages, progress.errors)
            self.stats.inc_value("shopstyle/leaves/incomplete")
        else:
            row = {**summary, "completed_at": datetime.now(UTC).isoformat(timespec="seconds"),
                   "refresh_id": self.refresh_id}
            sql = schema.LEAF_REFRESHED_SQL if row.pop("newest", False) else schema.LEAF_DONE_SQL
            if not self._write(sql, [row]):
                return
            self.stats.inc_value("shopstyle/leaves/completed")
        self.ledger.forget(leaf)

    def flush(self) -> None:
        """Commit the batch; only then tell the ledger its products are stored (and complete their leaves)."""
        categories, products, sources = self._categories, self._products, self._sources
        self._categories, self._products, self._sources = [], [], []
        if not (categories or products):
            return
        with cpu.measured(self.stats, cpu.PAGE):
            self._flush(categories, products, sources)

    def _flush(self, categories: list[dict], products: list[dict], sources: list[tuple[str, str | None]]) -> None:
        try:
            if not self._write(*self._statements(categories, products)):
                return
            written = len(products)
        except REFUSED:  # one row or more: write them one by one, so that only those are lost
            for category in categories:
                try:
                    if not self._write(*self._statements([category], [])):
                        return
                except REFUSED as error:
                    self._refused("category", category["id"], None, error)
            written = 0
            for product, (leaf, _) in zip(products, sources, strict=True):
                try:
                    if not self._write(*self._statements([], [product])):
                        return
                    written += 1
                except REFUSED as error:
                    self._refused("product", product["id"], leaf, error)
        self.stats.inc_value("shopstyle/products_written", written)
        keys: dict[str, list[str | None]] = {}
        for leaf, key in sources:
            keys.setdefault(leaf, []).append(key)
        for leaf, leaf_keys in keys.items():
            self.ledger.stored(leaf, leaf_keys)
            self._check_leaf(leaf)

    def _statements(self, categories: list[dict], products: list[dict]) -> tuple:
        """The (SQL, rows) pairs that store the rows and, first, what they change of the stored ones (computed in
        the write's transaction: see ``refresh``)."""
        refresh_id, when = self.refresh_id, datetime.now(UTC).isoformat(timespec="seconds")
        return (insert(schema.category_changes), lambda: refresh.category_changes(self.db, categories, refresh_id,
                                                                                  when),
                schema.upsert_sql("categories", (*schema.CATEGORY_COLUMNS, "gone_at", "refresh_id")), categories,
                insert(schema.product_changes), lambda: refresh.product_changes(self.db, products, refresh_id, when),
                schema.upsert_sql("products", (*schema.PRODUCT_COLUMNS, "gone_at", "refresh_id")), products)

    def _refused(self, what: str, row_id, leaf: str | None, error: Exception) -> None:
        """Count and name one row the database refused (the batch's other rows are written)."""
        cause = getattr(error, "orig", None) or error
        self.stats.inc_value(f"shopstyle/dropped/store_{type(cause).__name__}")
        where = f" from leaf {leaf!r}" if leaf is not None else ""
        logger.warning("the database refused %s %r%s, dropped: %s: %s", what, row_id, where, type(cause).__name__,
                       str(cause).splitlines()[0][:300] if str(cause) else "")

    def _write(self, *statements_and_rows) -> bool:
        """Run (SQL, rows) pairs in one transaction (rows may be a function giving them, called in turn); False, and
        the crawl stopped, when the database cannot be written; a row it refuses raises one of ``REFUSED`` (the
        transaction rolled back whole)."""
        if self.stats.get_value("shopstyle/stopped"):
            return False
        try:
            with self.db.begin():  # one transaction: a failed write rolls back whole
                for sql, rows in zip(statements_and_rows[::2], statements_and_rows[1::2], strict=True):
                    if callable(rows):
                        rows = rows()
                    if rows:
                        self.db.execute(sql, rows)
            return True
        except (OperationalError, OSError) as error:  # disk full, read-only file or folder, server gone
            stop_crawl(self.crawler, "database_unwritable",
                       f"cannot write the crawl database {schema.display_name(self.db_path)}: "
                       f"{getattr(error, 'orig', None) or error}")
            return False


# What a database refuses for a row's values rather than for being unwritable: constraint and data errors
# (SQLAlchemy's, PostgreSQL's DataError among them), and what a driver raises binding a value it cannot take (an
# integer past 64 bits, a lone surrogate sqlite cannot encode). OperationalError is caught before these.
REFUSED = (SQLAlchemyError, ValueError, TypeError, OverflowError)
