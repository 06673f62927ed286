"""What the crawl knows about the leaves it is reading, in this process or shared by every process through Redis.

A leaf is read page by page; it is finished when no page of it is pending, and complete when, besides, every
product it yielded has been stored (or dropped). Only then does the store mark it complete, so a crawl stopped
anywhere re-reads what it had not stored, and nothing else.

``LeafLedger`` keeps this in memory (and in the spider state ``-s JOBDIR`` saves on a pause). With ``REDIS_URL``,
``RedisLeafLedger`` keeps the same in Redis, beside scrapy-redis' request queue, so that any number of crawl
processes read one crawl: pages a process queues, another fetches; products another process already yielded are
skipped; whichever process stores a leaf's last product marks it complete. Every step that decides something
(a page's products claimed, a leaf's last page, a leaf's completion) is one Lua script, atomic across processes.

scrapy-redis pops a request without an acknowledgement: a killed process loses what it had in flight. The ledger
still lists those pages as pending, and the products it had yielded but not stored as unstored, with their page:
``lost_pages`` gives them back to be queued again (``scrapy crawl shopstyle -a reconcile=true``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum


class Claim(IntEnum):
    """What became of one product listed on a page."""

    NEW = 0  # first met: yield it
    SEEN_IN_LEAF = 1  # this leaf listed it before (a duplicate listing, or a slice of the leaf meeting its first page)
    ELSEWHERE = 2  # another leaf yielded it: a product is stored once
    OVER_LIMIT = 3  # the leaf already reached max_per_category: this and the rest of the page are skipped


@dataclass
class LeafProgress:
    """A leaf's counts, as ``progress`` reports them."""

    total: int = 0  # what the API said the leaf holds
    failed_pages: int = 0
    errors: int = 0  # products that failed in a pipeline
    reached: int = 0  # distinct products the leaf listed


def page_key(offset: int | None, fl: str = "") -> str:
    """How the ledger knows a request of a leaf: the page at ``offset`` of a slice of the leaf (``fl``: its filter
    values joined by '+', empty for the whole leaf), or with ``offset`` None the slice's histogram."""
    return f"{fl}@{'histogram' if offset is None else offset}"


def parse_page_key(page: str) -> tuple[int | None, str]:
    """(offset or None for a histogram, fl) of a ``page_key``."""
    fl, _, offset = page.rpartition("@")
    return (None if offset == "histogram" else int(offset)), fl


def product_key(product_id) -> str | None:
    """A product id as ledgers key it: ``repr`` keeps 1 and "1" apart; a product without id is not tracked (the
    validation drops it)."""
    return None if product_id is None else repr(product_id)


@dataclass
class _Leaf:
    progress: LeafProgress = field(default_factory=LeafProgress)
    pending: set[str] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)
    unstored: dict[str, str] = field(default_factory=dict)  # product key -> the page that listed it
    finished: dict | None = None  # the spider's summary once every page is read


class LeafLedger:
    """The ledger of one crawl process (picklable: ``-s JOBDIR`` saves it with the spider state)."""

    def __init__(self):
        self._leaves: dict[str, _Leaf] = {}
        self._products: set[str] = set()  # across leaves: a product listed in two categories is stored once

    def track(self, leaf: str) -> bool:
        """Start reading a leaf; False when it is already being read (a resumed crawl)."""
        if leaf in self._leaves:
            return False
        self._leaves[leaf] = _Leaf()
        return True

    def tracked(self) -> list[str]:
        return list(self._leaves)

    def progress(self, leaf: str) -> LeafProgress:
        state = self._leaves[leaf]
        state.progress.reached = len(state.seen)
        return state.progress

    def set_total(self, leaf: str, total: int) -> None:
        self._leaves[leaf].progress.total = total

    def page_queued(self, leaf: str, page: str) -> None:
        self._leaves[leaf].pending.add(page)

    def page_read(self, leaf: str, page: str, *, failed: bool = False) -> int:
        """Pages of the leaf still pending after this one."""
        state = self._leaves[leaf]
        state.pending.discard(page)
        state.progress.failed_pages += failed
        return len(state.pending)

    def claim(self, leaf: str, page: str, keys: list[str | None], limit: int) -> list[Claim]:
        state = self._leaves[leaf]
        claims = []
        for key in keys:
            if len(state.seen) >= limit:
                claims.append(Claim.OVER_LIMIT)
                break
            if key is None:
                claims.append(Claim.NEW)
            elif key in state.seen:
                claims.append(Claim.SEEN_IN_LEAF)
            else:
                state.seen.add(key)
                if key in self._products:
                    claims.append(Claim.ELSEWHERE)
                else:
                    self._products.add(key)
                    state.unstored[key] = page
                    claims.append(Claim.NEW)
        return claims

    def finish(self, leaf: str, summary: dict) -> None:
        """Every page of the leaf is read: ``summary`` is what the store records once its products are stored."""
        self._leaves[leaf].finished = summary

    def stored(self, leaf: str, keys: list[str | None], *, failed: bool = False) -> None:
        """These products of the leaf went through the pipelines: stored, dropped or (``failed``) lost."""
        state = self._leaves.get(leaf)
        if state is None:
            return
        for key in keys:
            state.unstored.pop(key, None)
        state.progress.errors += failed * len(keys)

    def completion(self, leaf: str) -> tuple[dict, LeafProgress] | None:
        """The leaf's summary and counts once it is complete (read and stored); else None."""
        state = self._leaves.get(leaf)
        if state is None or state.finished is None or state.pending or state.unstored:
            return None
        return state.finished, self.progress(leaf)

    def forget(self, leaf: str) -> None:
        self._leaves.pop(leaf, None)


# --- shared through Redis -----------------------------------------------------------------------------------------
_CLAIM = """
local seen, products, unstored, leaf = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local limit, page = tonumber(ARGV[1]), ARGV[2]
local claims = {}
for i = 3, #ARGV do
    local key = ARGV[i]
    if redis.call('SCARD', seen) >= limit then
        claims[#claims + 1] = 3
        break
    end
    if key == '' then
        claims[#claims + 1] = 0
    elseif redis.call('SADD', seen, key) == 0 then
        claims[#claims + 1] = 1
    elseif redis.call('SADD', products, key) == 0 then
        claims[#claims + 1] = 2
    else
        redis.call('HSET', unstored, key, page)
        claims[#claims + 1] = 0
    end
end
return claims
"""

_PAGE_READ = """
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[2], 'failed_pages', tonumber(ARGV[2]))
redis.call('INCR', KEYS[3])
return redis.call('SCARD', KEYS[1])
"""

_STORED = """
for i = 2, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
redis.call('HINCRBY', KEYS[2], 'errors', tonumber(ARGV[1]) * (#ARGV - 1))
redis.call('INCR', KEYS[3])
"""

# pages lost by a killed process: pending and not in the queue, or the page of a product yielded and never stored;
# those products are forgotten, so that the page read again yields them again
_LOST = """
local pending, unstored, seen, products = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local queued = {}
for i = 1, #ARGV do queued[ARGV[i]] = true end
local lost = {}
for _, page in ipairs(redis.call('SMEMBERS', pending)) do
    if not queued[page] then lost[page] = true end
end
local entries = redis.call('HGETALL', unstored)
for i = 1, #entries, 2 do
    redis.call('SREM', seen, entries[i])
    redis.call('SREM', products, entries[i])
    lost[entries[i + 1]] = true
end
redis.call('DEL', unstored)
local pages = {}
for page in pairs(lost) do
    redis.call('SADD', pending, page)
    pages[#pages + 1] = page
end
return pages
"""


class RedisLeafLedger:
    """The ledger of a crawl shared by any number of processes: the same interface, kept in Redis.

    Keys, all under ``<prefix>:``: ``tree`` (``queued`` or ``read``: the category tree, fetched by one process),
    ``leaves`` (the leaves being read), ``leaf:<id>`` (a hash of counts and, once read, the summary),
    ``leaf:<id>:pending|seen|unstored``, ``products`` (every product yielded), ``events`` (bumped by every page read
    and product stored: an idle process watches it to tell a slow crawl from one whose last pages were lost).
    """

    def __init__(self, server, prefix: str):
        self.server = server
        self.prefix = prefix
        self._claim = server.register_script(_CLAIM)
        self._page_read = server.register_script(_PAGE_READ)
        self._stored = server.register_script(_STORED)
        self._lost = server.register_script(_LOST)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _leaf(self, leaf: str, part: str = "") -> str:
        return self._key("leaf", leaf, part) if part else self._key("leaf", leaf)

    # the category tree: fetched once for all processes
    def claim_tree(self) -> bool:
        """True for the one process that should fetch the category tree."""
        return bool(self.server.set(self._key("tree"), "queued", nx=True))

    def tree_read(self) -> None:
        self.server.set(self._key("tree"), "read")

    def release_tree(self) -> None:
        """The claiming process stops without having read the tree (a rejected key, an API down): the next
        process to start fetches it instead of waiting for it."""
        self.server.delete(self._key("tree"))

    def tree_lost(self) -> bool:
        """The tree was claimed and never read (its process died)."""
        return self.server.get(self._key("tree")) == "queued"

    def has_work(self) -> bool:
        return self.tree_lost() or bool(self.server.scard(self._key("leaves")))

    def events(self) -> int:
        return int(self.server.get(self._key("events")) or 0)

    # the interface of LeafLedger
    def track(self, leaf: str) -> bool:
        return bool(self.server.sadd(self._key("leaves"), leaf))

    def tracked(self) -> list[str]:
        return sorted(self.server.smembers(self._key("leaves")))

    def progress(self, leaf: str) -> LeafProgress:
        with self.server.pipeline(transaction=False) as pipe:
            counts, reached = pipe.hgetall(self._leaf(leaf)).scard(self._leaf(leaf, "seen")).execute()
        return LeafProgress(total=int(counts.get("total", 0)),
                            failed_pages=int(counts.get("failed_pages", 0)), errors=int(counts.get("errors", 0)),
                            reached=reached)

    def set_total(self, leaf: str, total: int) -> None:
        self.server.hset(self._leaf(leaf), "total", total)

    def page_queued(self, leaf: str, page: str) -> None:
        self.server.sadd(self._leaf(leaf, "pending"), page)

    def page_read(self, leaf: str, page: str, *, failed: bool = False) -> int:
        return self._page_read(keys=[self._leaf(leaf, "pending"), self._leaf(leaf), self._key("events")],
                               args=[page, int(failed)])

    def claim(self, leaf: str, page: str, keys: list[str | None], limit: int) -> list[Claim]:
        claims = self._claim(keys=[self._leaf(leaf, "seen"), self._key("products"), self._leaf(leaf, "unstored"),
                                   self._leaf(leaf)],
                             args=[limit, page, *("" if key is None else key for key in keys)])
        return [Claim(int(claim)) for claim in claims]

    def finish(self, leaf: str, summary: dict) -> None:
        self.server.hset(self._leaf(leaf), "finished", json.dumps(summary))

    def stored(self, leaf: str, keys: list[str | None], *, failed: bool = False) -> None:
        self._stored(keys=[self._leaf(leaf, "unstored"), self._leaf(leaf), self._key("events")],
                     args=[int(failed), *(key for key in keys if key is not None)])

    def completion(self, leaf: str) -> tuple[dict, LeafProgress] | None:
        with self.server.pipeline(transaction=False) as pipe:
            finished, pending, unstored = (pipe.hget(self._leaf(leaf), "finished")
                                           .scard(self._leaf(leaf, "pending"))
                                           .hlen(self._leaf(leaf, "unstored")).execute())
        if finished is None or pending or unstored:
            return None
        return json.loads(finished), self.progress(leaf)

    def forget(self, leaf: str) -> None:
        with self.server.pipeline() as pipe:
            pipe.srem(self._key("leaves"), leaf)
            pipe.delete(*(self._leaf(leaf, part) for part in ("pending", "seen", "unstored")), self._leaf(leaf))
            pipe.execute()

    # recovery and the end of a crawl
    def lost_pages(self, leaf: str, queued: set[str]) -> list[str]:
        """The leaf's pages to queue again (see ``_LOST``), marked pending again; ``queued`` are in the queue."""
        return sorted(self._lost(keys=[self._leaf(leaf, "pending"), self._leaf(leaf, "unstored"),
                                       self._leaf(leaf, "seen"), self._key("products")], args=sorted(queued)))

    def clear(self, *other_keys: str) -> None:
        """The crawl is complete: remove its frontier, so that the next crawl starts afresh."""
        self.server.delete(self._key("tree"), self._key("products"), self._key("events"), *other_keys)
