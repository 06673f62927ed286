"""The model the review app serves, and how it follows the model in service without a restart.

Why: a promotion (``python -m modeling.models promote N``, or ``train --promote``) is a row appended to the crawl
database's ``promotions`` table by another process; an app that loaded its model once would go on serving the old
one until someone restarted it. An app started without ``--model`` follows the promotions: a request looks at the
latest promotion (one indexed read) at most once every ``CHECK_EVERY_S`` seconds, and when it names another model,
that request loads it (checked against its registered checksum) and swaps it in. Each request takes one ``Served``
snapshot (model, file, thresholds, who promoted it) and uses it to its end, and the swap replaces the snapshot in
one assignment, so no request ever mixes two models' parts. The check and the load are done under a lock taken
without waiting: while one request loads, the others go on with the model they have. A model that cannot be loaded
(its file gone or changed) is logged and the app keeps serving the one it has. An explicit ``--model`` pins the
model: no following.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from shopstyle_spider import schema

from .. import registry
from ..backbones import BackboneError
from ..filing import LEVELS, FilingPolicyError, short_percent, thresholds_at
from ..persistence import ModelFileError, load_model

__all__ = ["CHECK_EVERY_S", "Served", "Serving", "describe"]

log = logging.getLogger(__name__)

CHECK_EVERY_S = 3.0  # a promotion reaches the app's requests within this long; a read of one row each time


@dataclass(frozen=True)
class Served:
    """One model as the app serves it: never changed, replaced whole when the model in service changes."""
    model: object
    path: Path
    thresholds: dict[str, float | None] | None  # the card's auto-filing thresholds at the app's target and levels
    target_accuracy: float  # what /api/predict files at (--target-accuracy) ...
    levels: tuple[str, ...]  # ... and where (--levels): the rule a page and GET /api/model state
    experiment_id: int | None  # None: a --model file this database's registry does not know
    promoted_at: str | None  # its latest promotion, if it was ever promoted
    promoted_by: str | None
    pinned: bool  # given by --model: the app does not follow promotions

    @property
    def label(self) -> str:
        """How a page names it: ``model 2 (2.joblib)``."""
        return f"{describe(self.experiment_id)} ({self.path.name})"

    @property
    def filing(self) -> str:
        """The rule ``/api/predict`` files by, for a page: a demo that queued at 95% at the leaf and an app filing at
        98% at the parent too answer the same product differently, and the reviewer should see which rule is in
        force."""
        if self.thresholds is None:
            return "/api/predict sends every product to review (the model's card has no thresholds)"
        where = "at the leaf or its parent" if "parent" in self.levels else "at the leaf only"
        return f"/api/predict files at {short_percent(self.target_accuracy)} accuracy, {where}"


def describe(experiment_id: int | None) -> str:
    return f"model {experiment_id}" if experiment_id is not None else "an unregistered model"


def _registered(db: str | Path, path: Path) -> registry.ModelEntry | None:
    """The registry's entry for a model file, if the database registered it."""
    resolved = path.resolve()
    return next((e for e in registry.entries(db) if e.path.resolve() == resolved), None)


def serve(db: str | Path, path: Path, target_accuracy: float, *, pinned: bool, model=None,
          image_runtime: str = "auto", levels: Sequence[str] = LEVELS) -> Served:
    """Load (unless ``model`` is given) the model at ``path`` and what the app shows of it. Its thresholds at
    ``target_accuracy`` for ``levels``, as ``modeling.predict`` reads them: none when its card has none
    (``/api/predict`` then sends every product to review)."""
    loaded = model if model is not None else load_model(path, image_runtime=image_runtime)
    try:
        thresholds = thresholds_at(path, target_accuracy, levels)
    except FilingPolicyError as error:
        log.warning("%s: /api/predict sends every product to review", error)
        thresholds = None
    found = _registered(db, path)
    latest = found.promotions[-1] if found and found.promotions else {}
    return Served(model=loaded, path=path, thresholds=thresholds, target_accuracy=target_accuracy,
                  levels=tuple(level for level in LEVELS if level in levels),
                  experiment_id=found.experiment_id if found else None, promoted_at=latest.get("promoted_at"),
                  promoted_by=latest.get("promoted_by"), pinned=pinned)


class Serving:
    """The app's current ``Served`` model; with ``follow``, the model in service of ``db``, looked up at most once
    every ``check_every_s`` seconds."""

    def __init__(self, db: str | Path, served: Served, *, follow: bool, load: Callable[[Path], Served],
                 check_every_s: float = CHECK_EVERY_S):
        self.db, self.follow, self.load, self.check_every_s = db, follow, load, check_every_s
        self._served = served
        self._lock = threading.Lock()
        self._next_check = time.monotonic() + check_every_s

    @property
    def served(self) -> Served:
        """The model served now, without looking for a promotion."""
        return self._served

    def due(self) -> bool:
        """Whether the next ``current`` looks for a promotion (and may load a model: a caller on an event loop then
        calls it in a thread)."""
        return self.follow and time.monotonic() >= self._next_check

    def current(self) -> Served:
        """The model for this request. When a check is due, the latest promotion is read on a connection of its
        own (no request pays for one between checks); a request that finds another model in service loads it before
        answering, while requests meanwhile keep the model they had."""
        served = self._served
        if not self.due() or not self._lock.acquire(blocking=False):
            return served
        try:
            with closing(schema.connect(self.db, readonly=True)) as connection:
                serving = registry.in_service(connection)
            if serving is not None and serving != served.experiment_id:
                self._served = served = self.load(registry.serving_path(self.db))
                log.info("now serving %s, promoted by %s at %s", served.label, served.promoted_by,
                         served.promoted_at)
        except (registry.RegistryError, ModelFileError, BackboneError, schema.SchemaError, OSError) as error:
            log.warning("cannot serve the model in service (%s): still serving %s", error, served.label)
        finally:
            self._next_check = time.monotonic() + self.check_every_s
            self._lock.release()
        return served
