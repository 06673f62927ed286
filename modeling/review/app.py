"""The review app's factory: the model and the leaf catalogue loaded once for the app's lifetime, the pages and
the JSON API as two routers, local static files, the host names it answers, the body cap, a session cookie for
CSRF and sign-in, and a strict Content-Security-Policy (scripts and styles from this app only: hostile text that
slipped past escaping still could not run). FastAPI's own docs pages are off (they load Swagger UI from a CDN); the
OpenAPI schema is served at /api/openapi.json, behind the token like the rest of the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, closing
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from shopstyle_spider import config

from .. import store
from ..filing import DEFAULT_TARGET, LEVELS
from ..templating import STATIC
from . import api, pages
from .cards import Catalogue
from .dependencies import SESSION_COOKIE, AppState, SignInRequired
from .security import LOOPBACK_HOSTS, BodyLimit, Guard, SecurityHeaders, Sessions, signing_key
from .serving import CHECK_EVERY_S, Serving, serve

__all__ = ["MAX_BODY_BYTES", "create_app"]

MAX_BODY_BYTES = 2_000_000  # a batch of a thousand products with long descriptions fits; a runaway upload does not
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")


def create_app(db: str | Path, model_path: str | Path, images: str | Path, *, token: str | None = None,
               reviewers: dict[str, str] | None = None, allowed_hosts: Sequence[str] = LOOPBACK_HOSTS,
               max_body: int = MAX_BODY_BYTES, model=None, target_accuracy: float = DEFAULT_TARGET,
               levels: Sequence[str] = LEVELS, image_runtime: str = "auto", follow: bool = False,
               check_every_s: float = CHECK_EVERY_S) -> FastAPI:
    """The app for one crawl database, model and image store; ``model`` skips loading ``model_path`` again (the
    benchmark and tests pass the one they hold); ``/api/predict`` decides at ``target_accuracy`` by the model card's
    thresholds for ``levels`` (``filing.thresholds_at``, as ``modeling.predict``; a model without them sends every
    product to review). With ``follow``, ``model_path`` is the model in
    service when the app starts, and a model promoted later replaces it between requests (``serving.Serving``,
    looking every ``check_every_s`` seconds); without, the model is pinned. ``token`` is shared by every reviewer,
    ``reviewers`` gives each their own (name -> token); requests naming a host outside ``allowed_hosts`` get 400.
    Nothing is opened until the app starts; the signing key is then read from beside the database, or made there."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # creates modeling's tables in a crawl-only database; held open (no transaction) while the app runs, so a
        # request closing its own sqlite connection is never the last one, which would checkpoint the WAL each time
        with closing(store.connect(db)) as connection:
            catalogue = Catalogue.load(connection)
            connection.rollback()
            served = serve(db, Path(model_path), target_accuracy, pinned=not follow, model=model,
                           image_runtime=image_runtime, levels=levels)
            serving = Serving(db, served, follow=follow, check_every_s=check_every_s,
                              load=lambda path: serve(db, path, target_accuracy, pinned=False,
                                                      image_runtime=image_runtime, levels=levels))
            key_file = config.review_key(db)
            key_file.parent.mkdir(parents=True, exist_ok=True)
            app.state.review = AppState(db=db, images=Path(images), serving=serving, catalogue=catalogue,
                                        guard=Guard(signing_key(key_file), token, reviewers))
            yield

    app = FastAPI(title="Catalog review", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
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

    app.add_middleware(Sessions, cookie=SESSION_COOKIE, api_prefix=api.router.prefix + "/")
    app.add_middleware(BodyLimit, max_bytes=max_body)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))  # checked before the body is read
    app.add_middleware(SecurityHeaders, csp=CSP)  # added last: outermost, on the refusals above too
    return app
