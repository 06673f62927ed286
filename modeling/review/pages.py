"""The pages a person works in: a home page with both queues, one card at a time, sign-in when the app has a token.

Every form carries the CSRF token of the browser's session and every decision is committed before the answer
(a redirect to the next card, so reloading never decides twice).
"""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from .. import analysis, report, store
from ..analyze import experiment_tables, report_sections
from ..fields import is_missing
from ..templating import environment
from . import cards, decisions
from .dependencies import REVIEWER_COOKIE, SIGNED_IN_COOKIE, AppState, Database, State, page_access
from .predicting import ranked_categories

__all__ = ["router", "templates"]

templates = Jinja2Templates(env=environment())
TITLES = {"file": "Products to file", "suspect": "Suspect labels"}

router = APIRouter(include_in_schema=False)
guarded = APIRouter(include_in_schema=False, dependencies=[Depends(page_access)])


def _checked_form(request: Request, state: AppState, csrf: str) -> None:
    if not state.guard.csrf_ok(request.state.session, csrf):
        raise HTTPException(403, "this form has expired or did not come from this app: reload the page")


def _page(request: Request, state: AppState, name: str, status: int = 200, **context) -> Response:
    return templates.TemplateResponse(request, name, {"csrf": state.guard.csrf(request.state.session),
                                                      "reviewer": request.cookies.get(REVIEWER_COOKIE),
                                                      "token_required": state.guard.required, **context},
                                      status_code=status)


@router.get("/login")
def login_page(request: Request, state: State) -> Response:
    return _page(request, state, "login.html", title="Sign in", error=None)


@router.post("/login")
def login(request: Request, token: Annotated[str, Form()], csrf: Annotated[str, Form()], state: State) -> Response:
    _checked_form(request, state, csrf)
    if not state.guard.token_ok(token):
        return _page(request, state, "login.html", status=403, title="Sign in", error="That is not this app's token.")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(SIGNED_IN_COOKIE, state.guard.signed_in(request.state.session), httponly=True,
                        samesite="strict")
    return response


@guarded.get("/")
def home(request: Request, state: State, db: Database) -> Response:
    now = time.time()
    queues = [(queue, TITLES[queue], cards.progress(db, queue, state.catalogue, now)) for queue in cards.QUEUES]
    return _page(request, state, "home.html", title="Review", queues=queues)


@guarded.post("/reviewer")
def set_reviewer(request: Request, name: Annotated[str, Form(min_length=1, max_length=100)],
                 csrf: Annotated[str, Form()], state: State) -> Response:
    _checked_form(request, state, csrf)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(REVIEWER_COOKIE, name.strip(), samesite="strict")
    return response


def _reviewer(request: Request) -> str:
    name = request.cookies.get(REVIEWER_COOKIE, "").strip()
    if not name:
        raise HTTPException(400, "say who you are on the home page first")
    return name


@guarded.get("/queue/{queue}")
def queue_page(request: Request, queue: cards.Queue, state: State, db: Database,
               skip: Annotated[list[str], Query()] = (), prefer: str | None = None) -> Response:
    reviewer = request.cookies.get(REVIEWER_COOKIE, "").strip()
    if not reviewer:
        return RedirectResponse("/", status_code=303)
    now = time.time()
    card = cards.next_card(db, queue, state.catalogue, reviewer, now, skip=skip, prefer=prefer)
    if card is not None:
        cards.complete_suggestions([card], state.catalogue,
                                   lambda payloads: ranked_categories(state.model, payloads, state.images))
        kind, _, key = (card.photo or "").partition("/")
        if card.photo and cards.photo_file(db, kind, int(key), state.images) is None:
            card.photo = None  # outside the image store or gone: never linked, let alone served
    return _page(request, state, "queue.html", title=TITLES[queue], queue=queue, card=card, skip=skip,
                 skip_url=f"/queue/{queue}?" + urlencode({"skip": [*skip, card.item] if card else []}, doseq=True),
                 restart_url=f"/queue/{queue}", progress=cards.progress(db, queue, state.catalogue, now),
                 leaves=state.catalogue.leaves,
                 message=request.query_params.get("message"), error=None)


@guarded.post("/queue/{queue}/decide")
def decide(request: Request, queue: cards.Queue, state: State, db: Database, item: Annotated[str, Form()],
           seen: Annotated[int, Form()], csrf: Annotated[str, Form()], choice: Annotated[str, Form()] = "",
           other: Annotated[str, Form()] = "", skip: Annotated[list[str], Form()] = ()) -> Response:
    _checked_form(request, state, csrf)
    reviewer = _reviewer(request)
    decision = other.strip() if choice == "other" else choice
    try:
        if not decision:
            raise decisions.DecisionError("choose a suggestion, keep, exclude, or a category from the search")
        card, settled = decisions.decide(db, queue, state.catalogue, item, decision, reviewer, seen, time.time())
    except (decisions.Stale, decisions.DecisionError) as error:
        return _page(request, state, "queue.html", status=409 if isinstance(error, decisions.Stale) else 422,
                     title=TITLES[queue], queue=queue, card=None, skip=skip,
                     skip_url=f"/queue/{queue}?" + urlencode({"skip": skip}, doseq=True),
                     restart_url=f"/queue/{queue}?" + urlencode({"skip": skip, "prefer": item}, doseq=True),
                     progress=cards.progress(db, queue, state.catalogue, time.time()), leaves={}, message=None,
                     error=str(error))
    except KeyError as error:
        raise HTTPException(404, f"no card {item!r} in this queue") from error
    label = {decisions.KEEP: "kept their labels" if settled > 1 else "kept its label",
             store.EXCLUDE: "excluded"}.get(decision, f"filed as {state.catalogue.path(decision)}")
    message = f"{card.name}: {settled} product{'s' if settled != 1 else ''} {label}"
    return RedirectResponse(f"/queue/{queue}?" + urlencode({"skip": skip, "message": message}, doseq=True),
                            status_code=303)


@guarded.post("/queue/{queue}/undo")
def undo(request: Request, queue: cards.Queue, csrf: Annotated[str, Form()], state: State, db: Database) -> Response:
    _checked_form(request, state, csrf)
    try:
        undone = decisions.undo_last(db, queue, state.catalogue, _reviewer(request), time.time())
    except decisions.Stale as error:
        return RedirectResponse(f"/queue/{queue}?" + urlencode({"message": str(error)}), status_code=303)
    if undone is None:
        return RedirectResponse(f"/queue/{queue}?" + urlencode({"message": "nothing of yours to undo"}),
                                status_code=303)
    card, settled = undone
    message = f"{card.name}: decision undone ({settled} product{'s' if settled != 1 else ''})"
    return RedirectResponse(f"/queue/{queue}?" + urlencode({"prefer": card.item, "message": message}),
                            status_code=303)


@guarded.get("/report")
def report_page(request: Request, state: State, errors: bool = False) -> Response:
    """The report of ``modeling.analyze --plots`` as a page (test split, no charts), or with ``errors`` its page of the
    latest experiment's most confident errors, photos from the image store."""
    try:
        experiments = analysis.load_experiments(state.db)
        predictions = analysis.load_predictions(state.db, "test")
        parents = analysis.load_parents(state.db)
    except analysis.AnalysisError as error:
        return _page(request, state, "report_index.html", status=404, app=True,
                     **report.index_context(f"Model report: {error}", [], [], None))
    latest = int(experiments.index[-1])
    if errors:
        wrong = analysis.most_confident_errors(predictions[predictions["experiment_id"] == latest], 20)
        rows = report.error_rows(wrong, lambda product_id, path: None if is_missing(path)
                                 else f"/photos/product/{product_id}")
        return _page(request, state, "report_errors.html", app=True, rows=rows,
                     title=f"Experiment {latest}: the {len(rows)} most confident errors (test split)")
    sections = report_sections(experiments, *experiment_tables(experiments, predictions, parents)[1:])
    return _page(request, state, "report_index.html", app=True,
                 **report.index_context("Model report (test split)", sections, [], "/report?errors=true"))


@guarded.get("/photos/{kind}/{key}")
def photo(kind: str, key: int, state: State, db: Database) -> Response:
    """A product's photo, from the image store only: a path outside it is never served."""
    path = cards.photo_file(db, kind, key, state.images)
    if path is None:
        raise HTTPException(404, "no photo in the image store for this product")
    return FileResponse(path)


router.include_router(guarded)
