"""What keeps the review app to the people meant to use it: the access token, CSRF tokens and a cap on bodies.

The app binds 127.0.0.1 unless told otherwise, and any other address needs a token. With a token, the JSON API
wants it as ``Authorization: Bearer TOKEN`` and a browser signs in once with it; the cookie it then gets holds an
HMAC under a key made at start-up, never the token, so the token reaches no log, database or file. Every form
carries a CSRF token (an HMAC of the browser's session cookie); the JSON API needs none, as FastAPI reads a JSON
body only when it is sent as ``application/json``, which a page on another site cannot send without CORS, which this
app does not allow.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "Guard", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the app to this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, True, False)
    """
    return host in ("localhost", "::1") or host.startswith("127.")


class Guard:
    """The token check and the HMACs of the CSRF and sign-in cookies, keyed by a secret made at start-up (a restart
    asks browsers to sign in again and reload their forms)."""

    def __init__(self, token: str | None):
        self._token = token
        self._key = secrets.token_bytes(32)

    @property
    def required(self) -> bool:
        return self._token is not None

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    def token_ok(self, offered: str | None) -> bool:
        return not self.required or (offered is not None and hmac.compare_digest(offered.encode(),
                                                                                   self._token.encode()))

    def csrf(self, session: str) -> str:
        return self._mac("csrf", session)

    def csrf_ok(self, session: str | None, offered: str | None) -> bool:
        return bool(session and offered) and hmac.compare_digest(self.csrf(session), offered)

    def signed_in(self, session: str) -> str:
        """The sign-in cookie's value for a browser session that gave the token."""
        return self._mac("signed-in", session)

    def signed_in_ok(self, session: str | None, cookie: str | None) -> bool:
        return not self.required or (bool(session and cookie) and hmac.compare_digest(self.signed_in(session), cookie))


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
