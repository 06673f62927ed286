"""What routes ask FastAPI for: the app's state (model, leaf catalogue, guard), a database connection per request,
and the access checks. Tests swap any of them with ``app.dependency_overrides``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Connection

from shopstyle_spider import schema

from .cards import Catalogue
from .security import Guard

__all__ = ["REVIEWER_COOKIE", "SESSION_COOKIE", "SIGNED_IN_COOKIE", "AppState", "Database", "SignInRequired", "State",
           "api_access", "app_state", "connection", "page_access"]

SESSION_COOKIE = "review_session"
SIGNED_IN_COOKIE = "review_signed_in"
REVIEWER_COOKIE = "review_reviewer"


@dataclass
class AppState:
    db: str | Path
    images: Path
    model: object
    model_path: Path
    thresholds: dict[str, float | None] | None  # the card's auto-filing thresholds at the app's target accuracy
    catalogue: Catalogue
    guard: Guard


class SignInRequired(Exception):
    """A page asked for without the sign-in cookie of a token-protected app: the app answers with the sign-in page."""


def app_state(request: Request) -> AppState:
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


def api_access(request: Request, state: State) -> None:
    scheme, _, offered = request.headers.get("authorization", "").partition(" ")
    if not state.guard.token_ok(offered if scheme.lower() == "bearer" else None):
        raise HTTPException(401, "this app needs its token: Authorization: Bearer TOKEN",
                            headers={"WWW-Authenticate": "Bearer"})


def page_access(request: Request, state: State) -> None:
    if not state.guard.signed_in_ok(request.state.session, request.cookies.get(SIGNED_IN_COOKIE)):
        raise SignInRequired
