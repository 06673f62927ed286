"""A local, ShopStyle API v2-compatible server over a catalog, for development, tests, benchmarks and the demo.

Run it with ``python -m shopstyle_spider.sandbox --help``; from Python, ``SandboxProcess`` starts one in a
subprocess and tells its URL (``RedisServerProcess`` a throwaway Redis, for crawls shared by several processes).
"""

from .catalog import Catalog, CatalogError, Category, Product, slug
from .loading import load_catalog
from .process import RedisServerProcess, SandboxProcess

__all__ = ["Catalog", "CatalogError", "Category", "Product", "RedisServerProcess", "SandboxProcess", "load_catalog",
           "slug"]
