"""Text safe to store, show and put in a URL: the crawler's one definition (the spider and the pipelines use it)."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\x1b\[[0-9;]*[A-Za-z]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean_field(value: str) -> str:
    """Control characters and terminal escapes removed, lone surrogates (which UTF-8 cannot encode, so sqlite,
    PostgreSQL and URL quoting refuse them) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", value))


def has_surrogate(value: str) -> bool:
    return _SURROGATE.search(value) is not None
