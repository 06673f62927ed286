"""The sandbox's token bucket, on a fake clock."""

from __future__ import annotations

import pytest

from shopstyle_spider.sandbox.ratelimit import RateLimiter


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_steady_pace():
    clock = Clock()
    limiter = RateLimiter(60, burst=2, clock=clock)
    assert limiter.acquire("k") == 0 and limiter.acquire("k") == 0
    assert limiter.acquire("k") == pytest.approx(1.0)
    clock.now += 0.5
    assert limiter.acquire("k") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("k") == 0
    assert limiter.acquire("other-key") == 0  # budgets are per key


def test_default_burst_is_a_minute_and_zero_is_off():
    limiter = RateLimiter(750, clock=Clock())
    assert all(limiter.acquire("k") == 0 for _ in range(750))
    assert limiter.acquire("k") > 0
    off = RateLimiter(0)
    assert all(off.acquire("k") == 0 for _ in range(10_000))


def test_retry_after_rounds_up():
    assert RateLimiter.retry_after_header(0.08) == "1"
    assert RateLimiter.retry_after_header(1.2) == "2"


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="per_minute"):
        RateLimiter(-1)
    with pytest.raises(ValueError, match="burst"):
        RateLimiter(60, burst=0)
