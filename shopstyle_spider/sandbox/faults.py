"""Faults the sandbox can inject (``--faults``), so that the crawler's handling of a misbehaving API is tested.

Transient kinds strike a request at random, so a retry can succeed: ``500``, ``429`` (Retry-After 1), ``slow`` (an
answer held past ``--slow-seconds``), ``reset`` (the connection dropped without an answer), ``badjson`` (a JSON
body cut in half) and ``truncated-image`` (a photo cut off mid-transfer). Draws come from one generator seeded
with ``--fault-seed``, in the order requests arrive.

Data kinds stick to a product, every time it is served, as bad data does: ``not-image`` (an HTML page served as
image/jpeg), ``bomb`` (a PNG whose header claims 40,000 x 40,000 pixels), ``duplicate`` (the product listed twice
in its own leaf and once more in another), ``missing-field`` (no ``name``), ``huge-text`` (a 1 MB description) and
``bad-chars`` (control characters and a lone surrogate in name and description). Which products a kind strikes
is a hash of the fault seed, the kind and the product id.

``schema`` serves bodies of the wrong shape, as a client must survive them: a request it strikes gets an answer
whose ``metadata.total`` is text (products) or whose ``categories`` is not a list (the tree), so a retry can
succeed; a product it sticks to is served in one of ``SCHEMA_VARIANTS`` (not an object, an id as text or past 64
bits, categories not a list, fields of the wrong type, lone surrogates in its URLs); and the category tree gains
entries that are not categories, an orphan and a cycle of two (``SCHEMA_TREE``).
"""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from dataclasses import dataclass, field

# in the order they are drawn for an API request
API_KINDS = ("500", "429", "slow", "reset", "badjson", "schema")
IMAGE_KINDS = ("500", "slow", "reset", "truncated-image")  # the same for a photo (a CDN does not send 429)
TRANSIENT_KINDS = tuple(dict.fromkeys(API_KINDS + IMAGE_KINDS))
DATA_KINDS = ("not-image", "bomb", "duplicate", "missing-field", "huge-text", "bad-chars")
KINDS = TRANSIENT_KINDS + DATA_KINDS
SCHEMA_VARIANTS = ("not-an-object", "id-as-text", "id-past-64-bits", "categories-not-a-list", "mistyped-fields",
                   "surrogate-urls")
# what the category tree gains under the schema fault: two entries that are not categories, an orphan, a cycle
SCHEMA_TREE = ("not a category", {"name": "No id"}, {"id": "schema-orphan", "parentId": "no-such-category"},
               {"id": "schema-cycle-a", "parentId": "schema-cycle-b"},
               {"id": "schema-cycle-b", "parentId": "schema-cycle-a"})

NOT_AN_IMAGE = b"<!DOCTYPE html><html><body><h1>Image temporarily unavailable</h1></body></html>"
HUGE_TEXT_BYTES = 1_000_000
BAD_CHARS = "\x00\x07\x1b[31m\ud800"  # NUL, BEL, an ANSI escape, a lone surrogate


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def decompression_bomb(side: int = 40_000) -> bytes:
    """A valid PNG header for a ``side`` x ``side`` image with one compressed row: tiny on the wire, 1.6 billion
    pixels for a decoder that trusts the header."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    row = zlib.compress(b"\x00" * (side + 1))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", row) + _png_chunk(b"IEND", b"")


class FaultSpecError(ValueError):
    """A ``--faults`` value that does not parse; the message names the part that is wrong."""


def parse_spec(spec: str) -> dict[str, float]:
    """``"500=0.1,badjson=0.05"`` or ``"all=0.1"`` (every kind) -> {kind: rate}; an empty spec means no faults.

    >>> parse_spec("all=0.1,reset=0")["reset"], parse_spec("all=0.1")["badjson"]
    (0.0, 0.1)
    """
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kind, sep, raw = part.partition("=")
        kind = kind.strip()
        if not sep:
            raise FaultSpecError(f"--faults: {part!r} is not kind=rate")
        try:
            rate = float(raw)
        except ValueError:
            raise FaultSpecError(f"--faults: the rate in {part!r} is not a number") from None
        if not 0 <= rate <= 1:
            raise FaultSpecError(f"--faults: the rate in {part!r} is not between 0 and 1")
        if kind == "all":
            rates.update(dict.fromkeys(KINDS, rate))
        elif kind in KINDS:
            rates[kind] = rate
        else:
            raise FaultSpecError(f"--faults: unknown kind {kind!r} (known: all, {', '.join(KINDS)})")
    return rates


@dataclass
class Faults:
    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    slow_seconds: float = 30.0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self.struck: dict[str, int] = dict.fromkeys(TRANSIENT_KINDS, 0)
        self._sticks: dict[tuple[str, int], bool] = {}

    def strike(self, kinds: tuple[str, ...]) -> str | None:
        """The first of ``kinds`` that strikes this request, or None; one draw per kind with a non-zero rate."""
        for kind in kinds:
            rate = self.rates.get(kind, 0.0)
            if rate and self._random.random() < rate:
                self.struck[kind] += 1
                return kind
        return None

    def sticks(self, kind: str, product_id: int) -> bool:
        """Whether a data fault holds for this product: the same answer for the life of the sandbox and per seed."""
        rate = self.rates.get(kind, 0.0)
        if not rate:
            return False
        key = (kind, product_id)
        if key not in self._sticks:
            digest = hashlib.sha256(f"{self.seed}:{kind}:{product_id}".encode()).digest()
            self._sticks[key] = int.from_bytes(digest[:8], "big") / 2**64 < rate
        return self._sticks[key]

    def schema_variant(self, product_id: int) -> str | None:
        """The wrong shape the ``schema`` fault serves this product in, if it sticks to it."""
        if not self.sticks("schema", product_id):
            return None
        digest = hashlib.sha256(f"{self.seed}:schema-variant:{product_id}".encode()).digest()
        return SCHEMA_VARIANTS[digest[0] % len(SCHEMA_VARIANTS)]

    def spoil(self, body: dict):
        """A product's JSON with its sticky faults applied (under ``schema``, maybe not an object at all)."""
        product_id = body["id"]
        variant = self.schema_variant(product_id)
        if variant == "not-an-object":
            return f"product {product_id} unavailable"
        if variant == "id-as-text":
            body = {**body, "id": str(product_id)}
        elif variant == "id-past-64-bits":
            body = {**body, "id": 2**63 + product_id}
        elif variant == "categories-not-a-list":
            body = {**body, "categories": body["categories"][0]["name"]}
        elif variant == "mistyped-fields":
            body = {**body, "brand": "Acme", "price": "12.50", "inStock": "yes", "currency": 840,
                    "description": ["not", "text"], "image": ["not", "an", "object"]}
        elif variant == "surrogate-urls":
            if "image" in body:  # a product that offers no photo has no photo URL to spoil
                sizes = {name: {**size, "url": size["url"].replace("/images/", "/images/\ud800")}
                         for name, size in body["image"]["sizes"].items()}
                body = {**body, "image": {**body["image"], "sizes": sizes}}
            if "clickUrl" in body:
                body["clickUrl"] = body["clickUrl"].replace("apiVisitRetailer", "apiVisitRetailer\ud800")
        if self.sticks("missing-field", product_id):
            body = {k: v for k, v in body.items() if k != "name"}
        if self.sticks("huge-text", product_id):
            body = {**body, "description": ("Soft cotton. " * (HUGE_TEXT_BYTES // 13 + 1))[:HUGE_TEXT_BYTES]}
        if self.sticks("bad-chars", product_id):
            body = {**body, **{k: f"{body[k]}{BAD_CHARS} end" for k in ("name", "description") if k in body}}
        return body
