"""Filing decisions, stored: what the model filed where, with which model and when (``python -m modeling.filings``).

``modeling.predict`` appends one ``filings`` row per product it decides at a target (leaf, parent or review), so the
shop can be told what was filed automatically and the weekly cycle can tell what it has done. Rows are never
updated: a product filed again (a new model, a new photo) gets a new row and the newest one is in force, so the
history of what was filed under which model stays. ``export`` writes each product's filing in force as CSV for the
shop: a person's decision in force (``modeling.reviews``) wherever there is one, whichever model filed the product
before or after it (a model never overrules a person); the newest model filing elsewhere.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TextIO

from sqlalchemy import ColumnElement, Connection, Select, Table, func, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from shopstyle_spider import cli, config, schema

from . import identity, reviews, store

__all__ = ["AUTOMATIC", "DECISIONS", "EXPORT_COLUMNS", "Writer", "changed_since", "export_csv", "in_force",
           "in_force_query", "model_id_of", "queued_filing"]

AUTOMATIC = ("leaf", "parent")  # the decisions by which a model files a product itself
PERSON, EXCLUDED = "person", "excluded"  # a person's decision in force: a leaf, or left out of the catalogue
DECISIONS = (*AUTOMATIC, "review", PERSON, EXCLUDED)  # what an exported row's decision can be
EXPORT_COLUMNS = ("subject", "product_id", "decision", "category", "score", "target", "model_id", "model_path",
                  "filed_at", "reviewer")
# the changes of a crawled product that call for filing it again: it arrived (or came back), the shop re-filed it,
# or its photo changed (modeling's input); a price or stock change does not
REFILE_FIELDS = ("added", "category_id", "image_checksum")


def model_id_of(connection: Connection, model_path: str | Path) -> int | None:
    """The registered model (experiment id) whose file is ``model_path``; None for a file the registry lacks."""
    if not store.has_table(connection, store.models):
        return None
    resolved = str(Path(model_path).resolve())
    for experiment_id, path in connection.execute(select(store.models.c.experiment_id, store.models.c.path)):
        if str(Path(path).resolve()) == resolved:
            return experiment_id
    return None


def in_force_query() -> Select:
    """Every product's filing in force (its newest row), as one query: the ``filings`` columns."""
    table = store.filings
    newest = select(func.max(table.c.id).label("id")).group_by(table.c.subject).subquery()
    return select(table).join(newest, table.c.id == newest.c.id).order_by(table.c.id)


def queued_filing(queue: Table) -> ColumnElement:
    """The decision of a filing-queue row's product's newest model filing since it was queued (NULL: none since),
    as ``Writer`` keeps it on the row."""
    return queue.c.filed


def in_force(connection: Connection) -> list[dict]:
    """Every filed, queued or decided product's filing in force, as ``EXPORT_COLUMNS`` rows in the order they were
    made: a person's decision in force (decision ``person`` with its leaf, or ``excluded``, and the reviewer)
    overrides everything; else the newest model filing stands; a product queued for a person and not filed by a
    model since is ``review`` unless that filing filed it (queued without a filing: ``POST /api/queue``, ``predict
    --queue`` without a target; a product a model filed before someone queued it stays filed until a person
    decides)."""
    rows: dict[str, dict] = {}
    if store.has_table(connection, store.filings):
        for row in connection.execute(in_force_query()).mappings():
            rows[row["subject"]] = {**{c: row[c] for c in EXPORT_COLUMNS if c in row}, "reviewer": None}
    queue = store.filing_queue
    if store.has_table(connection, queue) and store.has_table(connection, store.filings):
        waiting = select(queue.c.subject, queue.c.model_path, queue.c.prediction, queue.c.created_at).where(
            queue.c.subject.is_not(None), queued_filing(queue).is_(None))
        for row in connection.execute(waiting).mappings():
            if rows.get(row["subject"], {}).get("decision") in AUTOMATIC:
                continue  # filed by a model before it was queued: the shop keeps that filing until a person decides
            prediction = json.loads(row["prediction"] or "{}")
            rows[row["subject"]] = {"subject": row["subject"], "product_id": identity.parse(row["subject"]).product_id,
                                    "decision": "review", "category": prediction.get("category"),
                                    "score": prediction.get("score"), "target": None, "model_id": None,
                                    "model_path": row["model_path"], "filed_at": row["created_at"], "reviewer": None}
    for subject, standing in reviews.in_force(connection).items():
        excluded = standing.decision == store.EXCLUDE
        rows[subject] = {"subject": subject, "product_id": identity.parse(subject).product_id,
                         "decision": EXCLUDED if excluded else PERSON, "category": None if excluded
                         else standing.decision, "score": None, "target": None, "model_id": None,
                         "model_path": None, "filed_at": standing.created_at, "reviewer": standing.reviewer}
    return sorted(rows.values(), key=lambda row: (_moment(row["filed_at"]), row["subject"]))


def _moment(stamp: str) -> datetime:
    """When a row was made, as a time to sort by: imported decisions may carry any ISO 8601 form (``Z``, a date)."""
    try:
        moment = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def changed_since(connection: Connection, since: str, model_path: str | Path | None = None) -> set[int]:
    """Crawled products, still on sale, first seen or changed (``REFILE_FIELDS``) at or after ``since``; with
    ``model_path``, less those that model has filed since then (so work cut short resumes where it stopped)."""
    products, changes = schema.products, schema.product_changes
    changed = select(changes.c.product_id).where(changes.c.changed_at >= since, changes.c.field.in_(REFILE_FIELDS))
    query = select(products.c.id).where(products.c.gone_at.is_(None),
                                        or_(products.c.first_seen >= since, products.c.id.in_(changed)))
    wanted = set(connection.execute(query).scalars())
    if model_path is not None and wanted and store.has_table(connection, store.filings):
        filings = store.filings
        done = select(filings.c.product_id).where(filings.c.model_path == str(model_path),
                                                  filings.c.filed_at >= since, filings.c.product_id.is_not(None))
        wanted -= set(connection.execute(done).scalars())
    return wanted


class Writer:
    """Appends predict's decided lines to a database's ``filings``, a chunk per transaction (what was filed before an
    interruption stays recorded), and notes each decision on the product's filing-queue row if it is queued
    (``queued_filing``). ``from_crawl``: the rows' ids are crawled products'; else a file's records,
    known by ``source`` (the file's name) and their id. With no database it does nothing."""

    def __init__(self, db: str | Path | None, model_path: str | Path, target: float | None, *, from_crawl: bool,
                 source: str = ""):
        self.db, self.model_path, self.target = db, str(model_path), target
        self.from_crawl, self.source = from_crawl, source
        self.connection: Connection | None = None
        self.model_id: int | None = None
        self.written = 0

    def __enter__(self) -> Writer:
        if self.db is not None and self.target is not None:
            self.connection = store.connect(self.db)
            with self.connection.begin():
                self.model_id = model_id_of(self.connection, self.model_path)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.connection is not None:
            self.connection.close()

    def add(self, pairs: Iterable[tuple[dict, dict]]) -> None:
        """Record (checked row, prediction line) pairs whose line carries a decision."""
        if self.connection is None:
            return
        filed_at = datetime.now(UTC).isoformat(timespec="seconds")
        rows = []
        for row, line in pairs:
            decision = line.get("decision")
            if decision is None:
                continue
            at_parent = decision == "parent"
            rows.append({"subject": identity.crawled(row["id"]) if self.from_crawl
                         else identity.filed(self.source, str(row["id"])),
                         "product_id": int(row["id"]) if self.from_crawl else None, "model_id": self.model_id,
                         "model_path": self.model_path, "target": self.target, "decision": decision,
                         "category": line["parent"] if at_parent else line["category"],
                         "score": line["parent_score"] if at_parent else line["score"], "filed_at": filed_at})
        if rows:
            queue = store.filing_queue
            with self.connection.begin():
                self.connection.execute(insert(store.filings), rows)
                for decision in {row["decision"] for row in rows}:  # on the queued products' rows (queued_filing)
                    filed = [row["subject"] for row in rows if row["decision"] == decision]
                    self.connection.execute(update(queue).where(queue.c.subject.in_(filed)).values(filed=decision))
            self.written += len(rows)


def export_csv(connection: Connection, out: TextIO, decisions: Iterable[str]) -> int:
    """The filings in force (``in_force``) whose decision is one of ``decisions``, as CSV (``EXPORT_COLUMNS``); the
    rows written."""
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    wanted = set(decisions)
    chosen = [row for row in in_force(connection) if row["decision"] in wanted]
    writer.writerows([row[column] for column in EXPORT_COLUMNS] for row in chosen)
    return len(chosen)


def shared_options(parser: argparse.ArgumentParser) -> None:
    """The options of every subcommand, accepted before or after it (``cli.subcommands``)."""
    parser.add_argument("--db", type=schema.location, default=config.crawl_db(),
                        help="the crawl database predict filed into: a sqlite file or a postgresql:// URL")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modeling.filings", description=__doc__,
                                     formatter_class=cli.HelpFormatter)
    commands = cli.subcommands(parser, shared_options, dest="command", required=True)
    export = commands.add_parser("export", help="the filing in force of every product, as CSV for the shop")
    export.add_argument("--out", default="-", help="the CSV file to write; '-' is standard output")
    export.add_argument("--decisions", type=lambda s: [d.strip() for d in s.split(",") if d.strip()],
                        default=[*AUTOMATIC, PERSON, EXCLUDED],
                        help="which decisions, comma-separated: leaf, parent (filed by a model), review (sent to a "
                             "person, not decided yet), person (filed by a person: overrides every model), "
                             "excluded (a person left it out of the catalogue)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = set(args.decisions) - set(DECISIONS)
    if unknown:
        parser.error(f"--decisions: {', '.join(sorted(unknown))} is not one of {', '.join(DECISIONS)}")
    try:
        store.connect(args.db, readonly=True).close()  # a database that is not there is an error, not a new one
        # writable: an older database's reviews gain their identity first (store.connect), as the export needs
        with closing(store.connect(args.db)) as connection:
            if args.out == "-":
                count = export_csv(connection, sys.stdout, args.decisions)
            else:
                with open(args.out, "w", encoding="utf-8", newline="") as out:
                    count = export_csv(connection, out, args.decisions)
    except (schema.SchemaError, SQLAlchemyError, OSError) as error:
        print(f"modeling.filings: {getattr(error, 'orig', None) or error}", file=sys.stderr)
        return 2
    print(f"modeling.filings: {count} products exported from {schema.display_name(args.db)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
