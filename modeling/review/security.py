"""What keeps the review app to the people meant to use it: the host names it answers, the access tokens, the
reviewer each browser session is signed in as, CSRF tokens, the app's own status messages and a cap on bodies.

The app binds 127.0.0.1 unless told otherwise, and any other address needs a token. It answers only requests naming
one of its host names (``TrustedHostMiddleware``: the loopback names, plus ``--allowed-host`` behind a proxy), so a
page of another site whose name was rebound to 127.0.0.1 gets nothing. A token is either shared (``--token``: every
holder is trusted alike) or one per reviewer (``--tokens FILE`` or ``$SHOPSTYLE_REVIEW_TOKENS``: ``name=token`` lines),
and then a browser signs in as the name its token belongs to and the JSON API takes the reviewer from the token.

Sign-in, CSRF and status-message cookies and fields hold HMACs under a key kept in a file beside the database (mode
0600, never in the database or a log), so open forms and sign-ins outlive a restart; no cookie holds a token, so a
token reaches no log, database or file. The JSON API needs no CSRF token: it reads only bodies sent as
``application/json`` (415 otherwise), which a page of another site cannot send without CORS, which this app does not
allow.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LOOPBACK_HOSTS", "BodyLimit", "Guard", "SecurityHeaders", "Sessions", "TokenFileError", "is_loopback",
           "reviewer_tokens", "signing_key"]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")  # as the Host header names them (IPv6 in brackets)
KEY_BYTES = 32
MIN_TOKEN_LENGTH = 12


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the app to this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, True, False)
    """
    return host in ("localhost", "::1") or host.startswith("127.")


class TokenFileError(ValueError):
    """Reviewer tokens that cannot be read: the message names the line, never a token."""


def reviewer_tokens(text: str, origin: str) -> dict[str, str]:
    """Reviewer name -> token from ``name=token`` entries, one a line (``;`` also separates them, for an environment
    variable); blank lines and ``#`` comments are skipped. Refuses a duplicate name or token and a token shorter
    than 12 characters, naming ``origin`` and the entry, never the token.

    >>> reviewer_tokens("# team\\nana = tok-ana-0123456\\nbob=tok-bob-0123456", "tokens.txt")
    {'ana': 'tok-ana-0123456', 'bob': 'tok-bob-0123456'}
    """
    found: dict[str, str] = {}
    entries = [entry.strip() for line in text.splitlines() for entry in line.split(";")]
    for number, entry in enumerate((e for e in entries if e and not e.startswith("#")), start=1):
        name, equals, token = (part.strip() for part in entry.partition("="))
        if not equals or not name or not token:
            raise TokenFileError(f"{origin}: entry {number} is not name=token")
        if len(token) < MIN_TOKEN_LENGTH:
            raise TokenFileError(f"{origin}: {name}'s token is shorter than {MIN_TOKEN_LENGTH} characters")
        if name in found:
            raise TokenFileError(f"{origin}: {name} has two tokens")
        if token in found.values():
            raise TokenFileError(f"{origin}: {name} has another reviewer's token")
        found[name] = token
    if not found:
        raise TokenFileError(f"{origin}: no name=token entry")
    return found


def signing_key(path: Path) -> bytes:
    """The app's HMAC key, made once and kept in ``path`` (mode 0600, created exclusively, so two apps starting at
    once agree on it); a key file others can read is refused rather than trusted."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        descriptor = None
    if descriptor is not None:
        key = secrets.token_bytes(KEY_BYTES)
        with os.fdopen(descriptor, "w") as file:
            file.write(key.hex())
        return key
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(f"{path}: the review app's signing key must be readable by its owner only (chmod 600)")
    text = path.read_text().strip()
    if len(text) != 2 * KEY_BYTES or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{path}: not a review app signing key (delete it to make a new one)")
    return bytes.fromhex(text)


def _compare(offered: str, expected: str) -> bool:
    return hmac.compare_digest(offered.encode(), expected.encode())


class Guard:
    """The tokens and the HMACs of the sign-in cookie, CSRF fields and status messages, under ``key``.

    ``token`` is shared by every reviewer; ``reviewers`` maps each reviewer's name to their own token. With neither,
    the app is open to this machine and a reviewer's name is only typed.
    """

    def __init__(self, key: bytes, token: str | None = None, reviewers: dict[str, str] | None = None):
        if token is not None and reviewers:
            raise ValueError("a shared token or a token per reviewer, not both")
        self._key, self._token, self._reviewers = key, token, dict(reviewers or {})

    @property
    def required(self) -> bool:
        return self._token is not None or bool(self._reviewers)

    @property
    def per_reviewer(self) -> bool:
        return bool(self._reviewers)

    def _mac(self, purpose: str, *values: str) -> str:
        message = "\0".join((purpose, *values)).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def api_reviewer(self, offered: str | None) -> tuple[bool, str | None]:
        """Whether a bearer token opens the API, and the reviewer it belongs to (None: a shared token or none)."""
        if not self.required:
            return True, None
        if offered is None:
            return False, None
        if self._token is not None:
            return _compare(offered, self._token), None
        owners = [name for name, token in self._reviewers.items() if _compare(offered, token)]
        return bool(owners), owners[0] if owners else None

    def credentials_ok(self, name: str, token: str | None) -> bool:
        """Whether ``token`` lets a browser sign in as ``name``: the reviewer's own token, the shared one, or none
        needed."""
        if self._reviewers:
            expected = self._reviewers.get(name)
            return expected is not None and token is not None and _compare(token, expected)
        return self._token is None or (token is not None and _compare(token, self._token))

    def csrf(self, session: str) -> str:
        return self._mac("csrf", session)

    def csrf_ok(self, session: str | None, offered: str | None) -> bool:
        return bool(session and offered) and hmac.compare_digest(self.csrf(session), offered)

    def signed_in(self, session: str, name: str) -> str:
        """The sign-in cookie of a browser session for reviewer ``name``: the name and an HMAC binding it to the
        session, so a cookie neither names someone else nor moves to another browser."""
        encoded = base64.urlsafe_b64encode(name.encode()).decode()
        return f"{encoded}.{self._mac('signed-in', session, name)}"

    def reviewer(self, session: str | None, cookie: str | None) -> str | None:
        """The reviewer a sign-in cookie names, when it was made for this session under this key; else None."""
        encoded, _, mac = (cookie or "").partition(".")
        if not (session and mac):
            return None
        try:
            name = base64.urlsafe_b64decode(encoded.encode()).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return name if hmac.compare_digest(self._mac("signed-in", session, name), mac) else None

    def note(self, session: str, text: str) -> str:
        """The HMAC that lets a status message of this app ride in a redirect's URL for this session."""
        return self._mac("note", session, text)

    def note_ok(self, session: str | None, text: str | None, offered: str | None) -> bool:
        return bool(session and text and offered) and hmac.compare_digest(self.note(session, text), offered)


class Sessions:
    """ASGI middleware giving each browser a session (an id in an httponly, SameSite=Strict cookie, read by routes as
    ``request.state.session``: what CSRF tokens, sign-ins and status messages are bound to). Plain ASGI, not
    ``@app.middleware("http")``, whose streams cost every API call a fixed share of its time (``bench/api.py``).
    Requests under ``api_prefix`` get no session: the JSON API takes a bearer token, never a cookie, so its clients
    (an import job) are not handed a new session each call."""

    def __init__(self, app: ASGIApp, cookie: str, api_prefix: str):
        self.app, self.cookie, self.api_prefix = app, cookie, api_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.api_prefix):
            await self.app(scope, receive, send)
            return
        known = HTTPConnection(scope).cookies.get(self.cookie)
        scope.setdefault("state", {})["session"] = known or (new_session := secrets.token_urlsafe(24))
        if known:
            await self.app(scope, receive, send)
            return

        async def with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append(
                    "set-cookie", f"{self.cookie}={new_session}; HttpOnly; Path=/; SameSite=strict")
            await send(message)

        await self.app(scope, receive, with_cookie)


class SecurityHeaders:
    """ASGI middleware giving every answer the Content-Security-Policy ``csp`` and ``nosniff``; added outside the
    other middlewares, so that their own refusals (400 for another host name, 413 for a body over the cap) carry
    them too. (Starlette's plain-text 500 is made outside every middleware.)"""

    def __init__(self, app: ASGIApp, csp: str):
        self.app, self.csp = app, csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = self.csp
                headers["X-Content-Type-Options"] = "nosniff"
            await send(message)

        await self.app(scope, receive, with_headers)


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware answering 413 to a request body over ``max_bytes``, declared or streamed, before a route
    reads it all into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, watched)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = f'{{"detail": "request body over {self.max_bytes} bytes"}}'.encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
