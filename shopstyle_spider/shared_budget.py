"""The API's request budget shared through Redis by every crawl process, on any number of machines.

One process paces its API requests with its download slot's delay; N processes pacing alike would send N times the
budget. With ``REDIS_URL`` set, each API request first reserves the next free moment of one schedule kept in Redis
(the generic cell rate algorithm: a single "theoretical arrival time" per key, advanced by 60/N seconds per
request, in a Lua script so that reservations from all processes are atomic), then waits for it. Times come from
the Redis server's clock, so machines whose clocks disagree still share one pace. A 429 pushes the schedule itself
back, holding every process.

The schedule's Redis key is named after a hash of the API URL and key: the key itself never reaches Redis.
"""

from __future__ import annotations

import asyncio
import hashlib

RESERVE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local at = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now_ms)
local interval = tonumber(ARGV[1])
redis.call('SET', KEYS[1], at + interval, 'PX', at + interval - now_ms + 60000)
return at - now_ms
"""

HOLD = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local at = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now_ms + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], at, 'PX', at - now_ms + 60000)
return at - now_ms
"""


def budget_key(api_url: str, api_key: str) -> str:
    digest = hashlib.sha256(f"{api_url.rstrip('/')}\n{api_key}".encode()).hexdigest()[:24]
    return f"shopstyle:budget:{digest}"


class SharedBudget:
    """Reservations on the shared schedule of one API key: ``await wait_turn()`` before each API request."""

    def __init__(self, redis_url: str, key: str, requests_per_minute: float):
        import redis.asyncio

        self.key = key
        self.interval_ms = max(1, round(60_000 / requests_per_minute))
        self._redis = redis.asyncio.from_url(redis_url)
        self._reserve = self._redis.register_script(RESERVE)
        self._hold = self._redis.register_script(HOLD)

    async def wait_turn(self) -> float:
        """Wait for this request's moment in the shared schedule; returns the seconds waited."""
        wait = int(await self._reserve(keys=[self.key], args=[self.interval_ms])) / 1000
        if wait > 0:
            await asyncio.sleep(wait)
        return wait

    async def hold(self, seconds: float) -> None:
        """Nothing goes to the API from any process for ``seconds`` (a 429's Retry-After, a backoff)."""
        await self._hold(keys=[self.key], args=[max(0, round(seconds * 1000))])

    async def close(self) -> None:
        await self._redis.aclose()
