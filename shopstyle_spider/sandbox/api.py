"""ShopStyle API v2 JSON shapes: categories, products and error bodies, as the real API spelled them."""

from __future__ import annotations

import hashlib

from .catalog import Catalog, Category, Product

# The real API's image sizes and the box each is scaled into; Original is the photo as stored.
IMAGE_SIZES: dict[str, tuple[int, int] | None] = {
    "Small": (32, 40),
    "Medium": (112, 140),
    "Large": (164, 205),
    "XLarge": (328, 410),
    "Original": None,
}


class ApiError(Exception):
    """An error the API answers with its JSON body ``{"errorCode", "errorName", "errorMessage"}``."""

    def __init__(self, code: int, name: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code, self.name, self.message = code, name, message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"errorCode": self.code, "errorName": self.name, "errorMessage": self.message}


def category_json(category: Category) -> dict:
    body = {"id": category.id, "name": category.name, "shortName": category.name, "localizedId": category.id}
    if category.parent_id is not None:
        body["parentId"] = category.parent_id
    return body


def image_id(product_id: int) -> str:
    """A stable hex id like the real CDN's, derived from the product id."""
    return hashlib.md5(str(product_id).encode(), usedforsecurity=False).hexdigest()


def scaled(dimensions: tuple[int, int], box: tuple[int, int] | None) -> tuple[int, int]:
    """The size a photo has once fitted into ``box`` (never enlarged), as Pillow's thumbnail computes it."""
    width, height = dimensions
    if box is None or (width <= box[0] and height <= box[1]):
        return width, height
    ratio = min(box[0] / width, box[1] / height)
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def image_json(catalog: Catalog, product: Product, images_url: str) -> dict:
    dimensions = catalog.images.dimensions(product.id)
    sizes = {}
    for size_name, box in IMAGE_SIZES.items():
        size = {"sizeName": size_name, "url": f"{images_url}/{product.id}/{size_name}.jpg"}
        if dimensions is not None:  # unknown for a photo that is gone: left out, not invented
            size["width"], size["height"] = scaled(dimensions, box)
        sizes[size_name] = size
    return {"id": image_id(product.id), "sizes": sizes}


def product_json(catalog: Catalog, product: Product, images_url: str) -> dict:
    """The product as the API serves it, without ``clickUrl`` (which carries the caller's key)."""
    category = catalog.category(product.category_id)
    body: dict = {"id": product.id, "name": product.name}
    optional = {
        "brandedName": product.branded_name,
        "unbrandedName": product.unbranded_name,
        "description": product.description,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    body["categories"] = [{"id": category.id, "name": category.name}]
    if product.brand is not None:
        body["brand"] = {"id": catalog.brand_id(product.brand), "name": product.brand}
    if product.retailer is not None:
        body["retailer"] = {"id": catalog.retailer_id(product.retailer), "name": product.retailer}
    if product.colors:
        body["colors"] = [{"name": color} for color in product.colors]
    if product.price is not None:
        body["price"] = product.price
        body["priceLabel"] = f"${product.price:,.2f}"
    if product.currency is not None:
        body["currency"] = product.currency
    if product.in_stock is not None:
        body["inStock"] = product.in_stock
    if product.has_image:
        body["image"] = image_json(catalog, product, images_url)
    return body
