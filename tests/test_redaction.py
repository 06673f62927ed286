"""The log redactor: the key never reaches a handler, and records no handler takes are not formatted at all."""

from __future__ import annotations

import io
import logging
from urllib.parse import urlencode

import pytest
import scrapy

from shopstyle_spider.redaction import LogRedactor, redact_url, with_api_key

KEY = "s3cret-key"


class CountsStr:
    """An argument that counts how often a record's message was built from it."""

    def __init__(self):
        self.calls = 0

    def __str__(self) -> str:
        self.calls += 1
        return f"http://api/v2/products?pid={KEY}"


@pytest.fixture
def logged():
    """A logger with one handler that takes INFO and up, with the redactor installed; yields (logger, stream).

    pytest adds its capture handlers (which take every level) to the logger once the test runs: the tests take
    them off again with ``only_our_handler``."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("test_redaction")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    redactor = LogRedactor(KEY)
    redactor.install()
    try:
        yield logger, stream
    finally:
        redactor.uninstall()
        logger.removeHandler(handler)
        logger.filters.clear()


def only_our_handler(logger: logging.Logger) -> None:
    logger.handlers[:] = [h for h in logger.handlers if type(h) is logging.StreamHandler]


def test_emitted_messages_and_tracebacks_are_redacted(logged):
    logger, stream = logged
    only_our_handler(logger)
    logger.info("Crawled (200) <GET %s>", f"http://api/v2/products?pid={KEY}&cat=shoes")
    try:
        raise ValueError(f"the API said no to {KEY}")
    except ValueError:
        logger.exception("page failed")
    text = stream.getvalue()
    assert KEY not in text
    assert "pid=REDACTED&cat=shoes" in text and "ValueError: the API said no to REDACTED" in text


def test_records_no_handler_takes_are_never_formatted(logged):
    logger, stream = logged
    only_our_handler(logger)
    argument = CountsStr()
    logger.debug("Scraped from %s", argument)  # below the handler's level
    assert argument.calls == 0 and stream.getvalue() == ""
    logger.info("Crawled %s", argument)
    assert argument.calls == 1 and "pid=REDACTED" in stream.getvalue()


def test_a_logger_filter_that_drops_the_record_spares_the_traceback(logged, monkeypatch):
    logger, stream = logged
    only_our_handler(logger)
    logger.addFilter(lambda record: not isinstance(getattr(record, "exception", None) or
                                                   (record.exc_info and record.exc_info[1]), KeyError))
    formatted = []
    original = logging.Formatter.formatException
    monkeypatch.setattr(logging.Formatter, "formatException",
                        lambda self, exc_info: formatted.append(exc_info) or original(self, exc_info))
    for error in (KeyError(KEY), ValueError(KEY)):
        try:
            raise error
        except Exception:
            logger.exception("photo failed")
    assert len(formatted) == 1 and formatted[0][0] is ValueError  # the KeyError was dropped unformatted
    assert "ValueError: REDACTED" in stream.getvalue() and "KeyError" not in stream.getvalue()


def test_redact_url_drops_only_the_key():
    assert redact_url(f"http://api/v2/products?cat=a&pid={KEY}&offset=50") == "http://api/v2/products?cat=a&offset=50"


def test_a_queued_request_comes_back_with_the_url_the_spider_built():
    """The disk and Redis queues store ``redact_url(url)`` and pop ``with_api_key(stored, key)``: the round trip
    must give Scrapy the very URL it queued (repeated filters, escapes and all), or dedup and logs would disagree."""
    queued = scrapy.Request(with_api_key("http://api/v2/products?" + urlencode(
        {"cat": "a b", "fl": ["p1", "b2"], "q": "é&x", "offset": 50}, doseq=True), "k/y+z")).url
    stored = redact_url(queued)
    assert "pid" not in stored and "k%2Fy%2Bz" not in stored
    assert stored == "http://api/v2/products?cat=a+b&fl=p1&fl=b2&q=%C3%A9%26x&offset=50"
    assert with_api_key(stored, "k/y+z") == queued


def test_redact_url_drops_a_repeated_key_and_keeps_the_fragment():
    assert redact_url(f"http://api/p?pid={KEY}&a=1&pid=other#top") == "http://api/p?a=1#top"
    assert redact_url(None) is None and redact_url("") == ""
