"""Faults the sandbox can inject (``--faults``), so that the crawler's handling of a misbehaving API is tested.

Transient kinds strike a request at random, so a retry can succeed: ``500``, ``429`` (Retry-After 1), ``slow`` (an
answer held past ``--slow-seconds``), ``reset`` (the connection dropped without an answer), ``badjson`` (a JSON
body cut in half) and ``truncated-image`` (a photo cut in half). Draws come from one generator seeded with
``--fault-seed``, in the order requests arrive.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

API_KINDS = ("500", "429", "slow", "reset", "badjson")  # in the order they are drawn for an API request
IMAGE_KINDS = ("500", "slow", "reset", "truncated-image")  # the same for a photo (a CDN does not send 429)
TRANSIENT_KINDS = tuple(dict.fromkeys(API_KINDS + IMAGE_KINDS))


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
            rates.update(dict.fromkeys(TRANSIENT_KINDS, rate))
        elif kind in TRANSIENT_KINDS:
            rates[kind] = rate
        else:
            raise FaultSpecError(f"--faults: unknown kind {kind!r} (known: all, {', '.join(TRANSIENT_KINDS)})")
    return rates


@dataclass
class Faults:
    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    slow_seconds: float = 30.0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self.struck: dict[str, int] = dict.fromkeys(TRANSIENT_KINDS, 0)

    def strike(self, kinds: tuple[str, ...]) -> str | None:
        """The first of ``kinds`` that strikes this request, or None; one draw per kind with a non-zero rate."""
        for kind in kinds:
            rate = self.rates.get(kind, 0.0)
            if rate and self._random.random() < rate:
                self.struck[kind] += 1
                return kind
        return None
