"""A tiny stdlib HTTP client for tests that talk to a sandbox directly (the crawler has its own, Scrapy)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlencode

KEY = "sandbox-key"


def get(url: str, params: dict | None = None, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    if params is not None:
        url = f"{url}?{urlencode(params, doseq=True)}"  # a list value: the parameter repeated
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def get_json(url: str, params: dict | None = None, **kwargs) -> tuple[int, dict]:
    status, headers, body = get(url, params, **kwargs)
    assert headers["Content-Type"].startswith("application/json"), (url, headers)
    return status, json.loads(body)


def api(sandbox, endpoint: str, **params) -> dict:
    """A successful API call with the sandbox's key; fails the test on any other status."""
    status, body = get_json(f"{sandbox.url}/{endpoint}", {"pid": KEY, **params})
    assert status == 200, body
    return body
