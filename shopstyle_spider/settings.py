"""Settings of the shopstyle crawl; every one can be overridden with ``scrapy crawl shopstyle -s NAME=VALUE``.

Only values we choose are here; the rest are Scrapy's defaults.
"""

from shopstyle_spider import config

BOT_NAME = "shopstyle_spider"
SPIDER_MODULES = ["shopstyle_spider.spiders"]
NEWSPIDER_MODULE = "shopstyle_spider.spiders"

# --- The API --------------------------------------------------------------------------------------------------
# Base URL of the ShopStyle API v2; point it at a sandbox (python -m shopstyle_spider.sandbox) to crawl locally.
SHOPSTYLE_API_URL = "https://api.shopstyle.com/api/v2"
# The API's budget per key. API requests are paced to stay under it: one every 60/N seconds, never in bursts.
SHOPSTYLE_REQUESTS_PER_MINUTE = 750
# API requests in flight at once (pacing still holds); more hides the API's latency.
SHOPSTYLE_API_CONCURRENCY = 4
# Products per page (the API's maximum).
SHOPSTYLE_PAGE_SIZE = 50
# The API returns no result past this offset, whatever `total` says.
SHOPSTYLE_RESULT_CAP = 5000
# A leaf (or a slice of it) holding more than the cap is read in slices the API can filter (fl=...), cut by the
# filter of these whose /products/histogram covers most of it; a slice still over the cap is cut again by another.
# Products in no slice (no price, no brand...) stay out of reach and are reported. Empty: no slicing.
SHOPSTYLE_SLICE_FILTERS = ["Price", "Brand", "Retailer", "Color"]
# -a refresh=new reads each leaf newest first (sort=Recency) and stops after the page on which it met this many
# known products in a row (stored in that leaf before the refresh): everything older is known. More than one
# guards against products listed a little out of date order; a page (SHOPSTYLE_PAGE_SIZE) or less keeps a leaf
# without news to one request.
SHOPSTYLE_REFRESH_OVERLAP = 10

# --- Where results go -----------------------------------------------------------------------------------------
# The database of categories, products and crawl state (shared with `modeling`): a sqlite file, or a PostgreSQL
# URL (postgresql://user@host:5432/db; pip install '.[scale]') that crawl processes on any number of machines share.
# Give its password in PGPASSWORD or ~/.pgpass rather than in the URL (a URL's password is redacted from the logs,
# but a command line shows it to `ps`).
SHOPSTYLE_DB = str(config.crawl_db())
# Rows written per transaction; a leaf's completion is written right after its last products are committed.
SHOPSTYLE_DB_BATCH_SIZE = 500
# Descriptions longer than this many characters are cut (and counted): a 1 MB description is an API fault, not text.
SHOPSTYLE_MAX_DESCRIPTION_CHARS = 20_000
# Where product photos are stored, as full/<product id>.jpg: a folder, or s3://bucket/prefix/ through Scrapy's S3
# store (credentials and AWS_ENDPOINT_URL from the environment, or the AWS_* settings).
IMAGES_STORE = str(config.images_dir())
# Settings whose values are redacted from every log line, like the API key (Scrapy logs overridden settings).
SHOPSTYLE_SECRET_SETTINGS = ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
# Photos with more pixels than this are refused from their header (kept as image_status invalid): modeling refuses
# them too (modeling.image.MAX_PIXELS), and Pillow's own limit (179 MP) would let a 170 MP photo be stored.
SHOPSTYLE_MAX_IMAGE_PIXELS = 40_000_000
# Re-download a stored photo after this many days (0: always).
IMAGES_EXPIRES = 90

# --- Several crawl processes ---------------------------------------------------------------------------------
# A Redis server (redis://host:6379/0) through which any number of crawl processes, on any number of machines,
# run one crawl: one request queue (scrapy-redis), one record of the leaves in progress (shopstyle_spider.frontier)
# and one API budget (together they send at most SHOPSTYLE_REQUESTS_PER_MINUTE). One crawl per Redis database.
# Empty: this process crawls alone.
REDIS_URL = ""
# What REDIS_URL switches on (pip install '.[scale]'): scrapy-redis' scheduler and dupefilter, the scheduler taking
# only the requests this process can send now, the queue keeping no API key (shopstyle_spider.request_queue). The
# queue persists when the processes stop, so that the next ones resume it; the last process of a complete crawl
# removes it.
SHOPSTYLE_SHARED_FRONTIER = {
    "SCHEDULER": "shopstyle_spider.request_queue.FrontierScheduler",
    "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
    "SCHEDULER_QUEUE_CLASS": "shopstyle_spider.request_queue.KeylessPriorityQueue",
    "SCHEDULER_QUEUE_KEY": "%(spider)s:requests",
    "SCHEDULER_DUPEFILTER_KEY": "%(spider)s:dupefilter",
    "SCHEDULER_PERSIST": True,
}
# An idle process of a shared crawl waits while other processes still read leaves; when nothing has moved for this
# many seconds, the pages still pending were lost with a killed process: it stops and says so (recover them with
# `scrapy crawl shopstyle -a reconcile=true`).
SHOPSTYLE_FRONTIER_IDLE_TIMEOUT = 300
# How often (seconds) an idle process of a shared crawl looks for work in the shared queue and for the crawl's end
# (Scrapy's engine would look every 5 s): a few Redis round trips each time.
SHOPSTYLE_FRONTIER_POLL_INTERVAL = 0.5

# --- Politeness and robustness --------------------------------------------------------------------------------
ROBOTSTXT_OBEY = False  # an API with a documented budget, not a web site
USER_AGENT = "shopstyle-categorizer (+https://github.com/shopstyle-categorizer)"
# The API is keyed by pid, not by a session: no cookies to keep (cookie handling cost 1% of a crawl's CPU).
COOKIES_ENABLED = False
# Photo downloads in flight at once: they come from the API's CDN, which is not budgeted and is built for this.
# With answers 100 ms away one process handles about 450 photos a second; 96 in flight keep it from waiting on the
# network (the fashion catalog's 10,102 photos and 27,720 dead links: 92 s with 64, 80 s with 96).
SHOPSTYLE_IMAGE_CONCURRENCY = 96
# Requests the downloader may hold, in flight or waiting in their slot (photos wait there): well above the photo
# concurrency, so that the next pages are read while photos download.
CONCURRENT_REQUESTS = 192
# Scrapy also keeps this many idle connections per host: the spider raises it to the API and photo requests in
# flight (unless set with -s), so that a download finds a kept-alive connection instead of opening one.
CONCURRENT_REQUESTS_PER_DOMAIN = 8
# aiohttp's HTTP client (its parser in C) rather than Twisted's: Scrapy ships both (aiohttp is one of its
# dependencies, and its own choice without a Twisted reactor), and a request cost about 14% less CPU through it,
# stored rows and photos identical. Scrapy still calls this handler experimental and says so once at start.
DOWNLOAD_HANDLERS = {
    "http": "scrapy.core.downloader.handlers._aiohttp.AiohttpDownloadHandler",
    "https": "scrapy.core.downloader.handlers._aiohttp.AiohttpDownloadHandler",
}
# Scrapy's downloader, counting each download against its slot as it starts (see downloader.py): without it,
# photos were not held to SHOPSTYLE_IMAGE_CONCURRENCY.
DOWNLOADER = "shopstyle_spider.downloader.SlotLimitedDownloader"
# Scrapy's scheduler, handing out API requests only while fewer than SHOPSTYLE_API_CONCURRENCY are in the
# downloader (see scheduler.py): the others stay in the queue (JOBDIR's on disk, or the shared one in Redis).
SCHEDULER = "shopstyle_spider.scheduler.PacedScheduler"
# Scrapy's disk queues (-s JOBDIR), pickling requests without the API key (see scheduler.py): pending requests
# are saved on disk, where the key must never be.
SCHEDULER_DISK_QUEUE = "shopstyle_spider.scheduler.KeylessLifoDiskQueue"
SCHEDULER_START_DISK_QUEUE = "shopstyle_spider.scheduler.KeylessFifoDiskQueue"
DOWNLOAD_TIMEOUT = 30
# 5xx, 408, 429 and network errors are retried this many times...
RETRY_TIMES = 5
# ...after holding the API for BASE * 2**attempt seconds (capped at MAX), or for Retry-After on a 429.
SHOPSTYLE_BACKOFF_BASE = 0.5
SHOPSTYLE_BACKOFF_MAX = 60.0
# AutoThrottle may adapt the image downloads to the CDN's latency; the API keeps its fixed pace either way.
AUTOTHROTTLE_ENABLED = False
AUTOTHROTTLE_TARGET_CONCURRENCY = 8.0
AUTOTHROTTLE_START_DELAY = 0.0

# Python's garbage collector during the crawl (gc.set_threshold: allocations between young collections, then
# collections between older ones); empty: Python's defaults (700, 10, 10), with which the collector took 44% of a
# crawl's CPU (see shopstyle_spider.extensions.GarbageCollection).
SHOPSTYLE_GC_THRESHOLD = [50_000, 20, 100]

# Scrapy's DownloaderStats (counts and bytes of every request and response, by method and status) cost 8% of a
# crawl's CPU, for figures nobody read: the downloader counts the requests it sends (see downloader.py), the
# crawl's own stats count what matters of the answers (photos missing, 429s, retries by reason).
DOWNLOADER_STATS = False
# Scrapy's in-memory stats, without the deprecation check it ran on every call (see shopstyle_spider.stats)
STATS_CLASS = "shopstyle_spider.stats.CrawlStats"
DOWNLOADER_MIDDLEWARES = {
    # just before RetryMiddleware (550), so the wait is set before the retry is queued
    "shopstyle_spider.middlewares.BackoffMiddleware": 560,
    # the last step before the download slot: an API request waits for its turn in the shared budget
    "shopstyle_spider.middlewares.SharedBudgetMiddleware": 950,
    # the spider follows only the API's own links and the photo URLs it names, and sets no allowed_domains: the
    # offsite check would parse every URL to let it through (1.4% of a crawl's CPU)
    "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware": None,
    # Each of these costs every request (photos are 98% of them) and does nothing here: no HTTP auth (the API is
    # keyed by pid); no default Accept headers (text/html, for an API of JSON and a CDN of JPEGs).
    "scrapy.downloadermiddlewares.httpauth.HttpAuthMiddleware": None,
    "scrapy.downloadermiddlewares.defaultheaders.DefaultHeadersMiddleware": None,
}
# Each of these looks at every product and request the spider yields, and does nothing here. Referer: no Referer
# header is ever sent (the previous API URL, key included, would travel with every request and into a shared
# queue). UrlLength: the spider builds every URL itself; one past 2,083 characters (a slice with many filter values)
# must be sent, not dropped with its leaf left pending. Depth: no depth limit or priority. MetaCopyDetection: the
# spider copies no response meta into its requests.
SPIDER_MIDDLEWARES = {
    "scrapy.spidermiddlewares.referer.RefererMiddleware": None,
    "scrapy.spidermiddlewares.urllength.UrlLengthMiddleware": None,
    "scrapy.spidermiddlewares.depth.DepthMiddleware": None,
    "scrapy.spidermiddlewares.metacopy.MetaCopyDetectionMiddleware": None,
}
ITEM_PIPELINES = {
    "shopstyle_spider.pipelines.ValidationPipeline": 100,
    "shopstyle_spider.pipelines.ProductImagesPipeline": 200,
    "shopstyle_spider.pipelines.DatabaseStorePipeline": 300,
}
EXTENSIONS = {
    "shopstyle_spider.extensions.RedactKeyInLogs": 0,
    "shopstyle_spider.extensions.GarbageCollection": 50,
    "shopstyle_spider.extensions.SharedFrontierWatch": 100,
    "shopstyle_spider.extensions.CrawlSummary": 500,
}

# `scrapy crawl` exits 1 when the spider refused to crawl (no key, rejected key, no category tree).
COMMANDS_MODULE = "shopstyle_spider.commands"

LOG_LEVEL = "INFO"
# No telnet console or remote control port: a crawl opens no listening socket of its own.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
FEED_EXPORT_ENCODING = "utf-8"
