"""Keep the API key out of everything the crawl leaves behind: stored URLs and every log line.

Scrapy logs request URLs (``Crawled (200) <GET ...?pid=KEY...>``), retries and tracebacks; the key travels as the
``pid`` query parameter, so it is removed from URLs before they are stored and from every record the root log
handlers emit, wherever the record came from.
"""

from __future__ import annotations

import logging
import re

from w3lib.url import add_or_replace_parameter, url_query_cleaner

REDACTED = "REDACTED"
API_KEY_PARAMETER = "pid"  # the query parameter the API key travels in
_PID_IN_TEXT = re.compile(r"(?<=[?&;]pid=)[^&#\s'\"<>]+")


def redact_url(url: str | None) -> str | None:
    """``url`` without its ``pid`` parameter (the API key); every other parameter (repeated ones too) and the
    fragment kept as they were."""
    if not url:
        return url
    return url_query_cleaner(url, API_KEY_PARAMETER, remove=True, unique=False, keep_fragments=True)


def with_api_key(url: str, api_key: str) -> str:
    """``url`` with the API key as its ``pid`` parameter, last, where the spider puts it (so a request that was
    stored without the key, on disk or in Redis, comes back with the URL it was queued with)."""
    return add_or_replace_parameter(url, API_KEY_PARAMETER, api_key)


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every ``pid=`` value and every literal secret replaced by ``REDACTED``."""
    text = _PID_IN_TEXT.sub(REDACTED, text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _will_be_emitted(record: logging.LogRecord) -> bool:
    """Whether a handler may see ``record``: its logger's filters pass it and a handler on its way to the root
    takes its level. Scrapy makes a DEBUG record for every request and every item, and an ERROR with a traceback for
    every missing photo (dropped by the images pipeline's filter); redacting records nobody emits cost a crawl more
    CPU than its sqlite writes."""
    logger = logging.getLogger(record.name)
    if logger.filters and not logger.filter(record):
        return False
    handlers_seen = False
    current: logging.Logger | None = logger
    while current is not None:
        if any(record.levelno >= handler.level for handler in current.handlers):
            return True
        handlers_seen = handlers_seen or bool(current.handlers)
        current = current.parent if current.propagate else None
    return not handlers_seen and logging.lastResort is not None and record.levelno >= logging.lastResort.level


class LogRedactor:
    """Rewrites every log record as it is created, so that no handler (Scrapy re-creates its root handler
    while a crawl starts) can ever emit a URL with the key or the key itself, in a message or a traceback."""

    def __init__(self, *secrets: str):
        self.secrets = tuple(s for s in secrets if s)
        self._previous = None

    def redact(self, record: logging.LogRecord) -> logging.LogRecord:
        if not _will_be_emitted(record):
            return record
        # Filters still need to know what was raised once the record is text: keep the exception object (from
        # exc_info, or from a twisted Failure logged as the message, as Scrapy does).
        record.exception = record.exc_info[1] if record.exc_info else getattr(record.msg, "value", None)
        record.msg = redact_text(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info), self.secrets)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, self.secrets)
        return record

    def install(self) -> None:
        if self._previous is not None:
            return
        previous = self._previous = logging.getLogRecordFactory()
        logging.setLogRecordFactory(lambda *args, **kwargs: self.redact(previous(*args, **kwargs)))

    def uninstall(self) -> None:
        if self._previous is not None:
            logging.setLogRecordFactory(self._previous)
            self._previous = None
