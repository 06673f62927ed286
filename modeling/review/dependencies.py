"""What routes ask FastAPI for: the app's state (model, leaf catalogue, guard), a database connection per request,
the access checks (each answering who the reviewer is) and the JSON body check. Tests swap any of them with
``app.dependency_overrides``. The checks never block, so they are ``async def``: FastAPI runs them on the event loop
instead of sending each to its thread pool, a hop every API call would pay."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection

from shopstyle_spider import schema

from .cards import Catalogue
from .security import Guard
from .serving import Served, Serving

__all__ = ["SESSION_COOKIE", "SIGNED_IN_COOKIE", "ApiReviewer", "AppState", "Database", "Model", "PageReviewer",
           "SignInRequired", "State", "api_access", "app_state", "connection", "json_body", "page_access",
           "served_model"]

SESSION_COOKIE = "review_session"
SIGNED_IN_COOKIE = "review_signed_in"


@dataclass
class AppState:
    db: str | Path
    images: Path
    serving: Serving  # the model served, following the model in service unless --model pinned it
    catalogue: Catalogue
    guard: Guard


class SignInRequired(Exception):
    """A page asked for without the sign-in cookie of a token-protected app: the app answers with the sign-in page."""


async def app_state(request: Request) -> AppState:
    return request.app.state.review


State = Annotated[AppState, Depends(app_state)]


def connection(state: State) -> Iterator[Connection]:
    """A connection for this request only (sqlite connections must not cross threads), closed after the answer.
    Modeling's tables were created once when the app started; a request does not check the schema again."""
    opened = schema.connect(state.db)
    try:
        yield opened
    finally:
        opened.close()


Database = Annotated[Connection, Depends(connection)]


async def served_model(state: State) -> Served:
    """The model this request uses from start to end (a promotion seen meanwhile waits for the next request). Between
    checks it only reads the snapshot, on the event loop; the request whose turn it is to check the promotions (and
    load a new model) does it in the thread pool, never blocking the loop."""
    serving = state.serving
    return await run_in_threadpool(serving.current) if serving.due() else serving.served


Model = Annotated[Served, Depends(served_model)]


async def api_access(request: Request, state: State) -> str | None:
    """401 without the app's token (when it has one); the reviewer the token belongs to, with a token per reviewer."""
    scheme, _, offered = request.headers.get("authorization", "").partition(" ")
    allowed, reviewer = state.guard.api_reviewer(offered if scheme.lower() == "bearer" else None)
    if not allowed:
        raise HTTPException(401, "this app needs a token: Authorization: Bearer TOKEN",
                            headers={"WWW-Authenticate": "Bearer"})
    return reviewer


ApiReviewer = Annotated[str | None, Depends(api_access)]


async def page_access(request: Request, state: State) -> str | None:
    """The reviewer this browser session signed in as (None: not yet, in an app without a token); an app with a
    token sends a browser that has not signed in to the sign-in page."""
    reviewer = state.guard.reviewer(request.state.session, request.cookies.get(SIGNED_IN_COOKIE))
    if reviewer is None and state.guard.required:
        raise SignInRequired
    return reviewer


PageReviewer = Annotated[str | None, Depends(page_access)]


def is_json(content_type: str) -> bool:
    """Whether a Content-Type header names JSON (``application/json`` or ``application/*+json``, any case,
    parameters aside), as FastAPI decides whether to read a body as JSON (``email.message``'s reading of the type,
    without building a message each request).

    >>> [is_json(t) for t in ("application/json", "Application/LD+JSON; charset=utf-8", "text/json", "", "a/b/json")]
    [True, True, False, False, False]
    """
    maintype, _, subtype = content_type.partition(";")[0].strip().lower().partition("/")
    return maintype == "application" and "/" not in subtype and (subtype == "json" or subtype.endswith("+json"))


async def json_body(request: Request) -> None:
    """415 for a body not sent as JSON (``application/json`` or ``application/*+json``), before it is read as any."""
    if not is_json(request.headers.get("content-type", "")):
        raise HTTPException(415, "send the body as JSON, with Content-Type: application/json")
