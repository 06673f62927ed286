"""Per-key request budget: a token bucket refilled at ``per_minute / 60`` tokens a second.

``burst`` is how many requests may arrive back to back; the default (a whole minute's worth) lets any client
that averages under the budget through, a small one makes the sandbox a strict pacer for tests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, per_minute: int, burst: int | None = None, clock: Callable[[], float] = time.monotonic):
        if per_minute < 0:
            raise ValueError(f"per_minute must be >= 0 (0 turns the limit off), got {per_minute}")
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else per_minute)
        if per_minute and self.capacity < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)

    def acquire(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when granted, else the seconds until one will be free."""
        if self.rate == 0:
            return 0.0
        now = self.clock()
        tokens, then = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - then) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    @staticmethod
    def retry_after_header(wait: float) -> str:
        """Retry-After takes whole seconds; round up so a client that honours it is never early."""
        return str(max(1, math.ceil(wait)))
