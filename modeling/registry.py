"""The model registry: the models a database's trainings saved, and the one in service.

Why: a model file named only by its experiment id (``2.joblib``) is ambiguous as soon as two databases train, and
"the newest file" is not a choice anyone made. Each database gets its own models folder (``models_folder``: named
for the database, so no two share one); every model ``modeling.train`` saves is a row of ``models`` (its file, its
card, its checksum, the labels it learned), and the model in service is the latest row of ``promotions``, which is
only ever appended to (as MLflow's registry moves an alias and never overwrites a version). ``serving_path`` is
what ``predict``, ``review`` and ``audit`` load when they are not given ``--model``: it checks the file is still
the one registered.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.engine import make_url

from shopstyle_spider import config, schema

from . import store

__all__ = ["ModelEntry", "RegistryError", "checksum", "entries", "entry", "folder_name", "in_service", "models_folder",
           "promote", "register", "scored_on", "serving_path", "whoami"]


class RegistryError(RuntimeError):
    """No model in service, an unknown model, or a registered file that is gone or changed."""


@dataclass(frozen=True)
class ModelEntry:
    experiment_id: int
    name: str
    path: Path
    card_path: Path
    sha256: str
    labels: dict
    created_at: str
    in_service: bool
    promotions: list[dict]  # this model's promotions, oldest first: promoted_at, promoted_by, replaces, reason


def folder_name(db: str | Path) -> str:
    """The models folder's name for a database: its file (or database) name and a hash of where it is, so two
    databases of the same name in different places still get their own folder.

    >>> folder_name("/srv/a/crawl.db") != folder_name("/srv/b/crawl.db")
    True
    >>> folder_name("postgresql://u:secret@host/shop").startswith("shop-")
    True
    """
    if schema.is_url(db):
        base, identity = make_url(str(db)).database or "database", schema.display_name(db)  # never the password
    else:
        resolved = Path(db).resolve()
        base, identity = resolved.stem, str(resolved)
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', base)}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def models_folder(db: str | Path) -> Path:
    """Where ``modeling.train`` saves this database's models unless told otherwise."""
    return config.models_dir() / folder_name(db)


def checksum(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def whoami() -> str:
    """Who a promotion is recorded as made by, when not told: this machine's user."""
    try:
        return getpass.getuser()
    except OSError:
        return "unknown"


def register(connection: Connection, experiment_id: int, path: Path, sha256: str, labels: dict,
             created_at: str) -> None:
    """Record a saved model, inside the transaction that records its experiment."""
    connection.execute(insert(store.models).values(
        experiment_id=experiment_id, path=str(path), card_path=str(path.with_suffix(".json")), sha256=sha256,
        labels=json.dumps(labels), created_at=created_at))


def in_service(connection: Connection) -> int | None:
    """The experiment id of the model in service (the latest promotion's), or None."""
    latest = select(func.max(store.promotions.c.id)).scalar_subquery()
    return connection.execute(select(store.promotions.c.model_id).where(store.promotions.c.id == latest)).scalar()


def entries(db: str | Path) -> list[ModelEntry]:
    """Every registered model of ``db``, oldest first (none in a database that never trained one)."""
    with closing(store.connect(db, readonly=True)) as connection:
        if not store.has_table(connection, store.models):
            return []
        serving = in_service(connection)
        rows = connection.execute(
            select(store.models, store.experiments.c.name)
            .join(store.experiments, store.experiments.c.id == store.models.c.experiment_id)
            .order_by(store.models.c.experiment_id)).mappings().all()
        history: dict[int, list[dict]] = {}
        for row in connection.execute(select(store.promotions).order_by(store.promotions.c.id)).mappings():
            history.setdefault(row["model_id"], []).append(
                {key: row[key] for key in ("promoted_at", "promoted_by", "replaces", "reason")})
    return [ModelEntry(experiment_id=row["experiment_id"], name=row["name"], path=Path(row["path"]),
                       card_path=Path(row["card_path"]), sha256=row["sha256"], labels=json.loads(row["labels"]),
                       created_at=row["created_at"], in_service=row["experiment_id"] == serving,
                       promotions=history.get(row["experiment_id"], [])) for row in rows]


def entry(db: str | Path, experiment_id: int) -> ModelEntry:
    """One registered model of ``db``; a clear error naming the ones there are when it is not one of them."""
    known = {e.experiment_id: e for e in entries(db)}
    if experiment_id not in known:
        raise RegistryError(f"{schema.display_name(db)}: no model {experiment_id} (there are "
                            f"{', '.join(map(str, known)) or 'none'})")
    return known[experiment_id]


def _checked(entry: ModelEntry) -> ModelEntry:
    if not entry.path.is_file():
        raise RegistryError(f"model {entry.experiment_id}: its file {entry.path} is gone")
    if checksum(entry.path) != entry.sha256:
        raise RegistryError(f"model {entry.experiment_id}: {entry.path} is not the file that was registered "
                            "(its checksum differs): restore it, or promote another model")
    return entry


def serving_path(db: str | Path) -> Path:
    """The file of the model in service for ``db``, checked against its registered checksum."""
    serving = [entry for entry in entries(db) if entry.in_service]
    if not serving:
        raise RegistryError(f"{schema.display_name(db)}: no model in service (train one with `python -m "
                            "modeling.train`, promote one with `python -m modeling.models promote N`, or give --model)")
    return _checked(serving[0]).path


def _adopt(db: str | Path, experiment_id: int) -> None:
    """Register the model file an experiment recorded before the registry existed, if the file is there."""
    with closing(store.connect(db)) as connection, connection.begin():
        row = connection.execute(select(store.experiments).where(store.experiments.c.id == experiment_id)
                                 ).mappings().first()
        if row is None or not row["model_path"] or not Path(row["model_path"]).is_file():
            return
        labels = json.loads(row["parameters"]).get("labels", "crawled")
        register(connection, experiment_id, Path(row["model_path"]), checksum(row["model_path"]), {"labels": labels},
                 row["created_at"])


def promote(db: str | Path, experiment_id: int, by: str | None = None, reason: str = "by hand") -> int | None:
    """Put model ``experiment_id`` in service; returns the model it replaces (None: there was none). Promoting the
    model already in service records nothing. A model trained before the registry existed (its experiment names a
    file, no ``models`` row does) is registered first, with the checksum its file has now."""
    if experiment_id not in {e.experiment_id for e in entries(db)}:
        _adopt(db, experiment_id)
    _checked(entry(db, experiment_id))
    with closing(store.connect(db)) as connection, connection.begin():
        replaces = in_service(connection)
        if replaces != experiment_id:
            connection.execute(insert(store.promotions).values(
                model_id=experiment_id, replaces=replaces, promoted_at=datetime.now(UTC).isoformat(timespec="seconds"),
                promoted_by=by or whoami(), reason=reason))
    return replaces


def scored_on(parameters: dict) -> str:
    """Which labels an experiment's figures were scored against: the catalog's own, or the decisions in force when
    it trained (people's labels change between experiments, so two reviewed experiments can differ too).

    >>> scored_on({}), scored_on({"labels": "reviewed", "reviewed_labels": 3, "relabelled": 1, "excluded": 0})
    ('crawled labels', 'reviewed labels (3 decided, 1 relabelled, 0 excluded, 0 from files)')
    >>> scored_on({"labels": "reviewed"})
    'reviewed labels (counts not recorded)'
    """
    if parameters.get("labels", "crawled") == "crawled":
        return "crawled labels"
    if "reviewed_labels" not in parameters:  # a model adopted into the registry: its counts were not recorded
        return "reviewed labels (counts not recorded)"
    return (f"reviewed labels ({parameters.get('reviewed_labels', 0)} decided, {parameters.get('relabelled', 0)} "
            f"relabelled, {parameters.get('excluded', 0)} excluded, {parameters.get('file_products', 0)} from files)")
