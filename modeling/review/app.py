"""The review app's factory: the model and the leaf catalogue loaded once for the app's lifetime, the pages and
the JSON API as two routers, local static files, the body cap, a session cookie for CSRF, and a strict
Content-Security-Policy (scripts and styles from this app only: hostile text that slipped past escaping still
could not run). FastAPI's own docs pages are off (they load Swagger UI from a CDN); the OpenAPI schema is served
at /api/openapi.json."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from .. import store
from ..filing import DEFAULT_TARGET, FilingPolicyError, load_thresholds
from ..persistence import load_model
from ..templating import STATIC
from . import api, pages
from .cards import Catalogue
from .dependencies import SESSION_COOKIE, AppState, SignInRequired
from .security import BodyLimit, Guard

__all__ = ["MAX_BODY_BYTES", "create_app"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 2_000_000  # a batch of a thousand products with long descriptions fits; a runaway upload does not
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")


def create_app(db: str | Path, model_path: str | Path, images: str | Path, *, token: str | None = None,
               max_body: int = MAX_BODY_BYTES, model=None, target_accuracy: float = DEFAULT_TARGET,
               image_runtime: str = "auto") -> FastAPI:
    """The app for one crawl database, model and image store; ``model`` skips loading ``model_path`` again (the
    benchmark and tests pass the one they hold); ``/api/predict`` decides at ``target_accuracy`` by the model card's
    thresholds (a model without them sends every product to review). Nothing is opened until the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = model if model is not None else load_model(model_path, image_runtime=image_runtime)
        try:
            thresholds = load_thresholds(model_path, target_accuracy)
        except FilingPolicyError as error:
            log.warning("%s: /api/predict sends every product to review", error)
            thresholds = None
        # creates modeling's tables in a crawl-only database; held open (no transaction) while the app runs, so a
        # request closing its own sqlite connection is never the last one, which would checkpoint the WAL each time
        with closing(store.connect(db)) as connection:
            catalogue = Catalogue.load(connection)
            connection.rollback()
            app.state.review = AppState(db=db, images=Path(images), model=loaded, model_path=Path(model_path),
                                        thresholds=thresholds,
                                        catalogue=catalogue, guard=Guard(token))
            yield

    app = FastAPI(title="Catalog review", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(HTTPException)
    async def error_page(request: Request, error: HTTPException) -> Response:
        """JSON for the API, as FastAPI answers; a page saying what went wrong for a person."""
        if request.url.path.startswith("/api/"):
            return await http_exception_handler(request, error)
        return pages.templates.TemplateResponse(request, "message.html", {"title": "Sorry", "message": error.detail},
                                                status_code=error.status_code, headers=error.headers)

    @app.exception_handler(SignInRequired)
    async def sign_in(request: Request, error: SignInRequired) -> Response:
        return RedirectResponse("/login", status_code=303)

    @app.middleware("http")
    async def session_and_headers(request: Request, call_next) -> Response:
        session = request.cookies.get(SESSION_COOKIE)
        request.state.session = session or secrets.token_urlsafe(24)
        response = await call_next(request)
        if session is None:
            response.set_cookie(SESSION_COOKIE, request.state.session, httponly=True, samesite="strict")
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    app.add_middleware(BodyLimit, max_bytes=max_body)
    return app
