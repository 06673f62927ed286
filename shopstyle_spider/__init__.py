"""Crawl a ShopStyle API v2 catalog into sqlite and an image store (Scrapy project), plus a local sandbox API."""
