"""The pages a person works in: a home page with both queues, one card at a time, sign-in when the app has a token.

A browser session is signed in as one reviewer (with a token when the app has one); every form carries the CSRF
token of the session, and every decision is committed before the answer. Every form posted answers with a redirect
(Post/Redirect/Get): a decision to the next card, a refused one back to its card (as it is now, with the reason
beside it), so reloading a page never posts a form again. The status line and the reason show only messages this
app signed for this session. The cards a reviewer skipped ride along in the URL and in each form, undo's included,
so they stay skipped until the reviewer asks to see them again.
"""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from .. import analysis, drift, report, store
from ..analyze import experiment_tables, report_sections
from ..backbones import BackboneError
from ..data import DataError
from ..fields import is_missing
from ..templating import environment
from . import cards, decisions
from .dependencies import SIGNED_IN_COOKIE, AppState, Database, Model, PageReviewer, State, page_access
from .predicting import ranked_categories, rescore
from .serving import Served

__all__ = ["router", "templates"]

templates = Jinja2Templates(env=environment())
TITLES = {"file": "Products to file", "suspect": "Suspect labels"}

router = APIRouter(include_in_schema=False)
guarded = APIRouter(include_in_schema=False, dependencies=[Depends(page_access)])


def _checked_form(request: Request, state: AppState, csrf: str) -> None:
    if not state.guard.csrf_ok(request.state.session, csrf):
        raise HTTPException(403, "this form has expired or did not come from this app: reload the page")


def _page(request: Request, state: AppState, template: str, status: int = 200, **context) -> Response:
    """A page of the app; one given ``served`` names the model it was made with."""
    return templates.TemplateResponse(request, template, {"csrf": state.guard.csrf(request.state.session),
                                                      "token_required": state.guard.required,
                                                      "per_reviewer": state.guard.per_reviewer,
                                                      "reviewer": None, "served": None, **context},
                                      status_code=status)


def _signed_in_as(request: Request, state: AppState, name: str) -> Response:
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(SIGNED_IN_COOKIE, state.guard.signed_in(request.state.session, name), httponly=True,
                        samesite="strict")
    return response


def _to_queue(request: Request, state: AppState, queue: str, message: str, *, refused: bool = False,
              **params) -> Response:
    """A redirect to the queue's page carrying a status message this app signed for this browser session (with
    ``refused``, the reason a decision was refused, shown beside the card): the page shows no other text from its
    URL."""
    params |= {"error" if refused else "message": message, "sig": state.guard.note(request.state.session, message)}
    return RedirectResponse(f"/queue/{queue}?" + urlencode(params, doseq=True), status_code=303)


@router.get("/login")
def login_page(request: Request, state: State) -> Response:
    return _page(request, state, "login.html", title="Sign in", error=None, name="")


@router.post("/login")
def login(request: Request, name: Annotated[str, Form(min_length=1, max_length=100)], csrf: Annotated[str, Form()],
          state: State, token: Annotated[str | None, Form(max_length=1000)] = None) -> Response:
    """Sign this browser session in as ``name``: with the reviewer's own token, the shared one, or none needed."""
    _checked_form(request, state, csrf)
    name = name.strip()
    if not name or not state.guard.credentials_ok(name, token):
        wrong = "That is not this reviewer's token." if state.guard.per_reviewer else "That is not this app's token."
        return _page(request, state, "login.html", status=403, title="Sign in",
                     error=wrong if name else "Say who you are.", name=name)
    return _signed_in_as(request, state, name)


@guarded.get("/")
def home(request: Request, state: State, db: Database, served: Model, reviewer: PageReviewer) -> Response:
    now = time.time()
    queues = [(queue, TITLES[queue], cards.progress(db, queue, state.catalogue, now)) for queue in cards.QUEUES]
    return _page(request, state, "home.html", title="Review", queues=queues, reviewer=reviewer, served=served)


def _card_page(request: Request, state: AppState, db: Database, served: Served, queue: str, reviewer: str,
               card: cards.Card | None, skip: list[str], message: str | None = None,
               error: str | None = None) -> Response:
    """The queue's page around ``card`` (None: nothing left), with the served model's suggestions (a queued card
    another model scored is scored again first) and its photo when it lies in the image store, a status message, or
    an error beside the card."""
    if card is not None:
        rescore(db, [card], served, state.catalogue, state.images)
        cards.complete_suggestions([card], state.catalogue,
                                   lambda payloads: ranked_categories(served.model, payloads, state.images),
                                   str(served.path))
        kind, _, key = (card.photo or "").partition("/")
        if card.photo and cards.photo_file(db, kind, int(key), state.images) is None:
            card.photo = None  # outside the image store or gone: never linked, let alone served
    return _page(request, state, "queue.html", title=TITLES[queue], queue=queue, card=card, skip=skip,
                 skip_url=f"/queue/{queue}?" + urlencode({"skip": [*skip, card.item] if card else skip}, doseq=True),
                 restart_url=f"/queue/{queue}", progress=cards.progress(db, queue, state.catalogue, time.time()),
                 leaves=state.catalogue.leaves, names=state.catalogue.names, reviewer=reviewer, message=message,
                 error=error, served=served)


@guarded.get("/queue/{queue}")
def queue_page(request: Request, queue: cards.Queue, state: State, db: Database, served: Model,
               reviewer: PageReviewer,
               skip: Annotated[list[str], Query()] = (), prefer: str | None = None, message: str | None = None,
               error: str | None = None, sig: str | None = None) -> Response:
    """The queue's next card for this reviewer (``prefer`` first when free), or, after a refused decision (its
    signed reason in ``error``), the refused card ``prefer`` as it is now, even when someone else holds or decided
    it, so the reviewer sees why and can decide again."""
    if reviewer is None:
        return RedirectResponse("/", status_code=303)
    shown = message if state.guard.note_ok(request.state.session, message, sig) else None
    refusal = error if state.guard.note_ok(request.state.session, error, sig) else None
    found = cards.cards(db, queue, state.catalogue, prefer) if refusal is not None and prefer else []
    card = found[0] if found else cards.next_card(db, queue, state.catalogue, reviewer, time.time(), skip=skip,
                                                  prefer=prefer)
    return _card_page(request, state, db, served, queue, reviewer, card, list(skip), message=shown, error=refusal)


@guarded.post("/queue/{queue}/decide")
def decide(request: Request, queue: cards.Queue, state: State, db: Database, reviewer: PageReviewer,
           item: Annotated[str, Form()], seen: Annotated[int, Form()], csrf: Annotated[str, Form()],
           choice: Annotated[str, Form()] = "", other: Annotated[str, Form()] = "",
           skip: Annotated[list[str], Form()] = ()) -> Response:
    _checked_form(request, state, csrf)
    if reviewer is None:
        raise HTTPException(400, "say who you are on the home page first")
    decision = other.strip() if choice == "other" else choice
    try:
        if not decision:
            raise decisions.DecisionError("choose a suggestion, keep, exclude, or a category from the search")
        card, settled = decisions.decide(db, queue, state.catalogue, item, decision, reviewer, seen, time.time())
    except (decisions.Stale, decisions.DecisionError) as error:  # back to the card, as it is now, with the reason
        return _to_queue(request, state, queue, str(error), refused=True, prefer=item, skip=list(skip))
    except KeyError:  # gone from the queue: the next card, with the reason
        return _to_queue(request, state, queue, f"that card is no longer in this queue ({item})", refused=True,
                         skip=list(skip))
    label = {decisions.KEEP: "kept their labels" if settled > 1 else "kept its label",
             store.EXCLUDE: "excluded"}.get(decision, f"filed as {state.catalogue.path(decision)}")
    return _to_queue(request, state, queue, f"{card.name}: {settled} product{'s' if settled != 1 else ''} {label}",
                     skip=list(skip))


@guarded.post("/queue/{queue}/undo")
def undo(request: Request, queue: cards.Queue, csrf: Annotated[str, Form()], state: State, db: Database,
         reviewer: PageReviewer, skip: Annotated[list[str], Form()] = ()) -> Response:
    """Withdraw the reviewer's latest decision in this queue and show its card first; the cards they skipped stay
    skipped (all but the undone one, which they asked back)."""
    _checked_form(request, state, csrf)
    if reviewer is None:
        raise HTTPException(400, "say who you are on the home page first")
    try:
        undone = decisions.undo_last(db, queue, state.catalogue, reviewer, time.time())
    except decisions.Stale as error:
        return _to_queue(request, state, queue, str(error), skip=list(skip))
    if undone is None:
        return _to_queue(request, state, queue, "nothing of yours to undo", skip=list(skip))
    card, settled = undone
    return _to_queue(request, state, queue,
                     f"{card.name}: decision undone ({settled} product{'s' if settled != 1 else ''})", prefer=card.item,
                     skip=[s for s in skip if s != card.item])


@guarded.get("/report")
def report_page(request: Request, state: State, served: Model, errors: bool = False) -> Response:
    """The report of ``modeling.analyze --plots`` as a page (test split, no charts), or with ``errors`` its page of the
    served model's experiment's most confident errors (the latest experiment's for a model this database did not
    train), photos from the image store."""
    try:
        experiments = analysis.load_experiments(state.db)
        predictions = analysis.load_predictions(state.db, "test")
        parents = analysis.load_parents(state.db)
    except analysis.AnalysisError as error:
        return _page(request, state, "report_index.html", status=404, app=True, served=served,
                     **report.index_context(f"Model report: {error}", [], [], None))
    shown = served.experiment_id if served.experiment_id in experiments.index else int(experiments.index[-1])
    if errors:
        wrong = analysis.most_confident_errors(predictions[predictions["experiment_id"] == shown], 20)
        rows = report.error_rows(wrong, lambda product_id, path: None if is_missing(path)
                                 else f"/photos/product/{product_id}")
        return _page(request, state, "report_errors.html", app=True, rows=rows, served=served,
                     title=f"Experiment {shown}: the {len(rows)} most confident errors (test split)")
    sections = report_sections(experiments, *experiment_tables(experiments, predictions, parents)[1:])
    notes = [f"This app serves {served.label}: experiment {shown} below." if served.experiment_id == shown else
             f"This app serves {served.label}, not an experiment of this database: the errors are experiment "
             f"{shown}'s."]
    return _page(request, state, "report_index.html", app=True, served=served, drift_url="/drift",
                 **report.index_context("Model report (test split)", sections, [], "/report?errors=true", notes))


@guarded.get("/drift")
def drift_page(request: Request, state: State, served: Model) -> Response:
    """``modeling.analyze --drift`` for the served model, as a page: the products first seen since it was trained
    against its validation split, and what to do."""
    try:
        if served.experiment_id is None:
            raise analysis.AnalysisError(f"{served.label} was not trained on this database: it has no validation "
                                         "split here to compare with")
        experiment = analysis.load_experiments(state.db).loc[served.experiment_id]
        found = drift.drift_report(state.db, experiment, state.images, model=served.model)
    except (analysis.AnalysisError, DataError, BackboneError) as error:
        return _page(request, state, "report_index.html", status=404, app=True, served=served,
                     **report.index_context(f"Drift: {error}", [], [], None))
    sections = drift.drift_sections(found) if found["recent_products"] else []
    return _page(request, state, "report_index.html", app=True, served=served,
                 **report.index_context(f"Drift of {served.label} since {found['since']}",
                                        [(heading, report.table(frame)) for heading, frame in sections], [], None,
                                        notes=drift.drift_lines(found)))


@guarded.get("/photos/{kind}/{key}")
def photo(kind: str, key: int, state: State, db: Database) -> Response:
    """A product's photo, from the image store only: a path outside it is never served."""
    path = cards.photo_file(db, kind, key, state.images)
    if path is None:
        raise HTTPException(404, "no photo in the image store for this product")
    return FileResponse(path)


router.include_router(guarded)
