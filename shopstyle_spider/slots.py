"""The crawl's two download slots, named where every part that routes or counts requests can import them.

The spider puts each request in a slot; the downloader, the middlewares, the schedulers and the images pipeline
read the slot back. The names lived in the spider module, so importing the scheduler imported the spider (and all
it imports), closing the cycle request_queue -> scheduler -> spider -> request_queue: here they depend on nothing.
"""

from __future__ import annotations

API_SLOT = "shopstyle-api"
IMAGE_SLOT = "shopstyle-images"  # photo downloads (ProductImagesPipeline) share this slot
