"""What the spider yields: categories, products, and a marker that a leaf's pages are all read."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CategoryItem:
    id: str
    name: str
    parent_id: str | None
    is_leaf: bool
    path: str


@dataclass
class ProductItem:
    id: int | None
    name: str | None
    category_id: str | None
    crawl_leaf: str  # the leaf whose listing served it (its own category may differ)
    crawl_key: str | None = None  # how the crawl's ledger knows it (see frontier.product_key)
    description: str | None = None
    brand: str | None = None
    retailer: str | None = None
    price: float | None = None
    currency: str | None = None
    in_stock: bool | None = None
    click_url: str | None = None
    image_url: str | None = None
    # ImagesPipeline's fields (IMAGES_URLS_FIELD, IMAGES_RESULT_FIELD)
    image_urls: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    # filled by the images pipeline
    image_path: str | None = None
    image_checksum: str | None = None
    image_status: str = "none"
    image_error: str | None = None


@dataclass
class LeafDoneItem:
    """Sent after a leaf's last page: the store marks the leaf complete once its products are all stored."""

    category_id: str
    total: int
    reached: int
    unreachable: int
    newest: bool = False  # a refresh=new read only its newest pages: what the last whole read found stays
