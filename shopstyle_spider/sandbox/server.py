"""The sandbox HTTP server: one Twisted resource per endpoint over a loaded catalog.

Twisted is already here (Scrapy runs on it), serves from one thread without locks, and its reactor stops
cleanly on SIGTERM and SIGINT.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from urllib.parse import quote

from PIL import Image
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from .api import IMAGE_SIZES, ApiError, category_json, product_json
from .catalog import DEFAULT_SORT, FILTERS, ROOT_ID, SORTS, Catalog, Product
from .faults import API_KINDS, IMAGE_KINDS, NOT_AN_IMAGE, SCHEMA_TREE, Faults, decompression_bomb
from .ratelimit import RateLimiter

RESULT_CAP = 5000  # the real API never returns a result past this offset, whatever `total` says (--result-cap)
MAX_LIMIT = 50
DEFAULT_LIMIT = 10


class Sandbox:
    """What the endpoints share: the catalog, the key, the limiter and the URLs the server is reachable at."""

    def __init__(self, catalog: Catalog, api_key: str, limiter: RateLimiter, faults: Faults | None = None,
                 result_cap: int = RESULT_CAP):
        self.catalog = catalog
        self.result_cap = result_cap
        self.api_key = api_key
        self.limiter = limiter
        self.faults = faults or Faults()
        self.base_url = ""  # set once the port is bound
        self._product_json: dict[int, dict] = {}
        self._listings: dict[tuple[str, str], list[Product]] = {}

    @property
    def images_url(self) -> str:
        return f"{self.base_url}/images"

    def product(self, product_id: int, pid: str) -> dict:
        if product_id not in self._product_json:
            product = self.catalog.product(product_id)
            self._product_json[product_id] = product_json(self.catalog, product, self.images_url)
        body = self._product_json[product_id]
        if "retailer" in body:  # as on the real API, the retailer link carries the caller's key
            body = {**body, "clickUrl": f"{self.base_url}/action/apiVisitRetailer?id={product_id}&pid={quote(pid)}"}
        return self.faults.spoil(body)

    def listing(self, category_id: str, sort: str) -> Sequence[Product]:
        """A category's products in ``sort`` order; with the ``duplicate`` fault, its struck products are listed
        again at the end, and so are the struck products of the next leaf (a product in two categories)."""
        products = self.catalog.query(category_id, sort)
        if not self.faults.rates.get("duplicate"):
            return products
        key = (category_id, sort)
        if key not in self._listings:
            leaves = [leaf.id for leaf in self.catalog.leaves()]
            extra = [p for p in products if self.faults.sticks("duplicate", p.id)]
            if category_id in leaves:
                neighbour = leaves[(leaves.index(category_id) + 1) % len(leaves)]
                if neighbour != category_id:
                    extra += [p for p in self.catalog.query(neighbour, sort)
                              if self.faults.sticks("duplicate", p.id)]
            self._listings[key] = [*products, *extra]
        return self._listings[key]


def _write_json(request: Request, status: int, body: dict, headers: dict[str, str] | None = None) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    for name, value in (headers or {}).items():
        request.setHeader(name.encode(), value.encode())
    return json.dumps(body).encode("utf-8")  # ASCII escapes: a lone surrogate (the bad-chars fault) stays valid


def _another_shape(answer: dict) -> dict:
    """The answer with a key of the wrong type (the ``schema`` fault): a total as text, categories as an object."""
    if "categories" in answer:
        return {**answer, "categories": dict(enumerate(answer["categories"]))}
    if "total" in answer.get("metadata", {}):
        return {**answer, "metadata": {**answer["metadata"], "total": str(answer["metadata"]["total"])}}
    return answer


def _params(request: Request) -> dict[str, str]:
    """Query parameters, last value wins but for ``fl`` (every value, joined by commas); bytes that are not UTF-8
    are a client error, not a crash."""
    try:
        return {key.decode(): b",".join(values).decode() if key == b"fl" else values[-1].decode()
                for key, values in request.args.items()}
    except UnicodeDecodeError as error:
        raise ApiError(400, "InvalidParameter", "query parameters must be UTF-8") from error


def _filters(params: dict[str, str]) -> dict[str, set[str]]:
    """The ``fl`` parameters (``fl=b12&fl=p3``) as {filter name: ids}; a malformed one is a 400."""
    by_prefix = {prefix: name for name, (prefix, _) in FILTERS.items()}
    filters: dict[str, set[str]] = {}
    for value in filter(None, params.get("fl", "").split(",")):
        if len(value) < 2 or value[0] not in by_prefix or not value[1:].isdigit():
            raise ApiError(400, "InvalidParameter", f"fl must be a filter prefix ({', '.join(by_prefix)}) and an "
                                                    f"id, got {value!r}")
        filters.setdefault(by_prefix[value[0]], set()).add(value[1:])
    return filters


def _int_param(params: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = params.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "InvalidParameter", f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ApiError(400, "InvalidParameter", f"{name} must be >= {minimum}, got {value}")
    return value


class ApiEndpoint(Resource):
    """Checks the key and the budget, then answers JSON; ``postpath`` is what follows the endpoint's name."""

    isLeaf = True

    def __init__(self, sandbox: Sandbox):
        super().__init__()
        self.sandbox = sandbox

    def render_GET(self, request: Request) -> bytes:
        try:
            params = _params(request)
            pid = params.get("pid", "")
            if not pid:
                raise ApiError(401, "MissingPartnerId", "The pid parameter (your API key) is required.")
            if pid != self.sandbox.api_key:
                raise ApiError(403, "InvalidPartnerId", "The pid parameter is not a valid API key.")
            wait = self.sandbox.limiter.acquire(pid)
            if wait:
                raise ApiError(429, "RateLimitExceeded", "Too many requests for this API key; slow down.",
                               {"Retry-After": RateLimiter.retry_after_header(wait)})
            fault = self.sandbox.faults.strike(API_KINDS)
            if fault == "500":
                raise ApiError(500, "InternalError", "Injected fault: internal error.")
            if fault == "429":
                raise ApiError(429, "RateLimitExceeded", "Injected fault: too many requests.", {"Retry-After": "1"})
            path = [segment.decode("utf-8", "replace") for segment in request.postpath if segment]
            answer = self.answer(path, params, pid)
            if fault == "schema":
                answer = _another_shape(answer)
            body = _write_json(request, 200, answer)
            if fault == "badjson":
                body = body[:len(body) // 2]
            return _faulty(request, body, fault, self.sandbox.faults.slow_seconds)
        except ApiError as error:
            return _write_json(request, error.code, error.body(), error.headers)

    def answer(self, path: list[str], params: dict[str, str], pid: str) -> dict:
        raise NotImplementedError

    def _category(self, params: dict[str, str]):
        category_id = params.get("cat") or ROOT_ID
        category = self.sandbox.catalog.category(category_id)
        if category is None:
            raise ApiError(400, "InvalidCategory", f"Unknown category {category_id!r}.")
        return category


class CategoriesEndpoint(ApiEndpoint):
    def answer(self, path, params, pid):
        if path:
            raise ApiError(404, "NotFound", "No such endpoint.")
        root = self._category(params)
        depth = _int_param(params, "depth", 0, minimum=0) or None
        descendants = self.sandbox.catalog.descendants(root.id, depth)
        categories: list = [category_json(c) for c in descendants]
        if self.sandbox.faults.rates.get("schema"):
            categories += SCHEMA_TREE
        return {"metadata": {"root": category_json(root)}, "categories": categories}


class ProductsEndpoint(ApiEndpoint):
    def answer(self, path, params, pid):
        if path == ["histogram"]:
            return self.histogram(params)
        if len(path) == 1:
            return self.one(path[0], pid)
        if path:
            raise ApiError(404, "NotFound", "No such endpoint.")
        catalog = self.sandbox.catalog
        category = self._category(params)
        sort = params.get("sort") or DEFAULT_SORT
        if sort not in SORTS:
            raise ApiError(400, "InvalidSort", f"Unknown sort {sort!r}; expected one of {', '.join(SORTS)}.")
        if sort.startswith("Price") and not catalog.has_prices:
            raise ApiError(400, "InvalidSort", f"This catalog has no prices, so sort={sort} is not available.")
        offset = _int_param(params, "offset", 0)
        limit = min(_int_param(params, "limit", DEFAULT_LIMIT), MAX_LIMIT)
        products = self._products(category, sort, params)
        cap = self.sandbox.result_cap
        window = products[offset:min(offset + limit, cap)] if offset < cap else []
        return {
            "metadata": {"offset": offset, "limit": limit, "total": len(products),
                         "category": category_json(category)},
            "products": [self.sandbox.product(p.id, pid) for p in window],
        }

    def _products(self, category, sort: str, params: dict[str, str]) -> Sequence[Product]:
        """The category's listing in ``sort`` order, narrowed by ``fl`` filters and ``fts`` words."""
        products = self.sandbox.listing(category.id, sort)
        filters = _filters(params)
        if filters:
            products = self.sandbox.catalog.matching(products, filters)
        if params.get("fts"):
            words = params["fts"].lower().split()
            products = [p for p in products
                        if all(w in f"{p.name} {p.description or ''}".lower() for w in words)]
        return products

    def histogram(self, params: dict[str, str]) -> dict:
        """``/products/histogram?cat=&filters=Brand,Price&fl=...``: for each filter named, how many of the query's
        products have each of its ids (a product without a value is in none)."""
        names = [name.strip() for name in params.get("filters", "").split(",") if name.strip()]
        unknown = [name for name in names if name not in FILTERS]
        if not names or unknown:
            raise ApiError(400, "InvalidParameter", f"filters must name some of {', '.join(FILTERS)}, got "
                                                    f"{params.get('filters', '')!r}")
        category = self._category(params)
        products = self._products(category, DEFAULT_SORT, params)
        body: dict = {"metadata": {"total": len(products), "category": category_json(category)}}
        for name in names:
            body[FILTERS[name][1]] = self.sandbox.catalog.histogram(products, name)
        return body

    def one(self, raw_id: str, pid: str) -> dict:
        product = self.sandbox.catalog.product(int(raw_id)) if raw_id.isdigit() else None
        if product is None:
            raise ApiError(404, "InvalidProductId", f"No product with id {raw_id!r}.")
        return self.sandbox.product(product.id, pid)


class ImagesEndpoint(Resource):
    """``/images/<product id>/<Size>.jpg``: the photo, scaled into the size's box; not rate limited (a CDN)."""

    isLeaf = True

    def __init__(self, sandbox: Sandbox):
        super().__init__()
        self.sandbox = sandbox
        self._scaled: dict[tuple[int, str], bytes] = {}

    def render_GET(self, request: Request) -> bytes:
        path = [segment.decode("utf-8", "replace") for segment in request.postpath]
        data = None
        if len(path) == 2 and path[0].isdigit() and path[1].removesuffix(".jpg") in IMAGE_SIZES:
            product_id, faults = int(path[0]), self.sandbox.faults
            if faults.sticks("not-image", product_id):
                request.setHeader(b"content-type", b"image/jpeg")
                return NOT_AN_IMAGE
            if faults.sticks("bomb", product_id):
                request.setHeader(b"content-type", b"image/png")
                return decompression_bomb()
            data = self._bytes(product_id, path[1].removesuffix(".jpg"))
        if data is None:
            return _write_json(request, 404, ApiError(404, "ImageNotFound", "No such image.").body())
        fault = self.sandbox.faults.strike(IMAGE_KINDS)
        if fault == "500":
            return _write_json(request, 500, ApiError(500, "InternalError", "Injected fault.").body())
        request.setHeader(b"content-type", _mime(data).encode())
        return _faulty(request, data, fault, self.sandbox.faults.slow_seconds)

    def _bytes(self, product_id: int, size: str) -> bytes | None:
        original = self.sandbox.catalog.images.original(product_id)
        box = IMAGE_SIZES[size]
        if original is None or box is None:
            return original
        key = (product_id, size)
        if key not in self._scaled:
            with Image.open(io.BytesIO(original)) as image:
                image.thumbnail(box)
                buffer = io.BytesIO()
                image.convert("RGB").save(buffer, format="JPEG", quality=85)
            self._scaled[key] = buffer.getvalue()
        return self._scaled[key]


def _faulty(request: Request, body: bytes, fault: str | None, slow_seconds: float):
    """The answer as the fault wants it: dropped (``reset``), cut off halfway through with the full length announced
    (``truncated-image``, what a client sees when a connection dies mid-photo), held back (``slow``), or as it is."""
    if fault == "reset":
        request.channel.transport.abortConnection()
        return NOT_DONE_YET
    if fault == "truncated-image":
        request.setHeader(b"content-length", str(len(body)).encode())
        request.write(body[:len(body) // 2])
        request.channel.transport.loseConnection()
        return NOT_DONE_YET
    if fault == "slow":
        from twisted.internet import reactor

        def answer() -> None:
            if not request.finished and request.channel is not None:
                request.write(body)
                request.finish()

        reactor.callLater(slow_seconds, answer)
        return NOT_DONE_YET
    return body


def _mime(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return Image.MIME.get(image.format, "application/octet-stream")
    except OSError:
        return "application/octet-stream"


class NotFoundEndpoint(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return _write_json(request, 404, ApiError(404, "NotFound", "No such endpoint.").body())


class Tree(Resource):
    """A path level whose unknown children answer the API's JSON 404 instead of Twisted's HTML page."""

    def getChild(self, path: bytes, request: Request) -> Resource:
        return NotFoundEndpoint()


class Delayed(Resource):
    """An endpoint whose every answer leaves ``seconds`` late, without holding up the others: the round trip to a
    distant API, for benchmarks that must not flatter a sequential client with loopback's 3 ms."""

    isLeaf = True

    def __init__(self, inner: Resource, seconds: float):
        super().__init__()
        self.inner, self.seconds = inner, seconds

    def render(self, request: Request):
        from twisted.internet import reactor

        def answer() -> None:
            if request.finished or request.channel is None:  # the client gave up meanwhile
                return
            request.write(self.inner.render(request))
            request.finish()

        reactor.callLater(self.seconds, answer)
        return NOT_DONE_YET


class CountingSite(Site):
    """Twisted's site, counting what clients do to it: the connections they open (a client that opens one per
    request instead of reusing its keep-alive pool shows here), the requests they send, and the most it answered
    at once (what a client's concurrency setting promises a server)."""

    noisy = False

    def __init__(self, resource: Resource):
        super().__init__(resource)
        self.connections = self.requests = self.in_flight = self.most_in_flight = 0

    def buildProtocol(self, addr):
        self.connections += 1
        return super().buildProtocol(addr)

    def getResourceFor(self, request: Request) -> Resource:
        self.requests += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        request.notifyFinish().addBoth(self._answered)  # fires when answered, errback when the client went away
        return super().getResourceFor(request)

    def _answered(self, _result) -> None:
        self.in_flight -= 1

    def summary(self) -> str:
        return (f"served {self.requests} requests on {self.connections} connections, "
                f"at most {self.most_in_flight} at once")


def build_site(sandbox: Sandbox, latency: float = 0.0) -> Resource:
    def delayed(resource: Resource) -> Resource:
        return Delayed(resource, latency) if latency > 0 else resource

    root, api, v2 = Tree(), Tree(), Tree()
    endpoints: dict[bytes, Callable[[Sandbox], Resource]] = {
        b"categories": CategoriesEndpoint,
        b"products": ProductsEndpoint,
    }
    for name, endpoint in endpoints.items():
        v2.putChild(name, delayed(endpoint(sandbox)))
    api.putChild(b"v2", v2)
    root.putChild(b"api", api)
    root.putChild(b"images", delayed(ImagesEndpoint(sandbox)))
    return root
