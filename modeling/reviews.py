"""Decisions people make about labels, kept append-only in the ``reviews`` table of ``modeling.store``, and the one
definition of the decision in force (``in_force``) that the review app's cards and progress, the export, the audit
and training all read.

``python -m modeling.reviews export|import FILE.csv`` moves decisions out of the database and back in (another
reviewer's spreadsheet, a backup, a second database): a bad row is reported with its line number and the others are
imported together. An export imported into a fresh copy of the crawl reproduces every decision in force, those on
products from files included (their name, description and photo travel with them).

The crawler's label (``products.category_id``) is what the catalog said; a review is what a person decided about it
afterwards. Nothing is updated in place: every decision, confirmation and undo is new rows. A product's decision in
force is its latest row that no undo withdrew; an undo withdraws exactly one decision's rows, so whatever stood
before them (another reviewer's decision, or the crawled label) stands again.
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
from typing import NamedTuple, TextIO

from sqlalchemy import Connection, Select, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from shopstyle_spider import cli, config, schema

from . import identity, store
from .filing_queue import PAYLOAD_FIELDS, queue_products

__all__ = ["CSV_COLUMNS", "Standing", "export_csv", "import_csv", "in_force", "in_force_query", "latest_decisions",
           "latest_decision_of", "record_decision", "touched", "withdraw"]


class Standing(NamedTuple):
    """The row of a product's decision in force."""
    id: int
    decision: str
    reviewer: str
    created_at: str
    decision_id: int


def _decision_id():
    return func.coalesce(store.reviews.c.decision_id, store.reviews.c.id)


def in_force_query(subjects: Iterable[str] | None = None) -> Select:
    """The decision in force of every product (of ``subjects`` only, when given), as one query the callers join:
    columns subject, id, decision, reviewer, created_at, decision_id. A product's latest row that no undo withdrew
    decides, unless it clears the product (a NULL decision): then, like a product nobody decided, it has no row."""
    reviews = store.reviews
    withdrawn = select(reviews.c.withdraws).where(reviews.c.withdraws.is_not(None))
    latest = select(reviews.c.subject, func.max(reviews.c.id).label("id")).where(
        reviews.c.withdraws.is_(None), _decision_id().not_in(withdrawn))
    if subjects is not None:
        latest = latest.where(reviews.c.subject.in_(list(subjects)))
    latest = latest.group_by(reviews.c.subject).subquery()
    return (select(reviews.c.subject, reviews.c.id, reviews.c.decision, reviews.c.reviewer, reviews.c.created_at,
                   _decision_id().label("decision_id"))
            .join(latest, reviews.c.id == latest.c.id).where(reviews.c.decision.is_not(None)))


def in_force(connection: Connection, subjects: Iterable[str] | None = None) -> dict[str, Standing]:
    """Subject -> its decision in force (a leaf id or ``store.EXCLUDE``); undecided products are absent."""
    if subjects is not None:
        subjects = sorted({s for s in subjects if s is not None})
        if not subjects:
            return {}
    if not store.has_table(connection, store.reviews):
        return {}
    return {row[0]: Standing(*row[1:]) for row in connection.execute(in_force_query(subjects))}


def latest_decisions(connection: Connection) -> dict[int, str]:
    """Crawled product id -> the decision in force (``in_force`` read for the crawled products only)."""
    return {identity.parse(subject).product_id: standing.decision
            for subject, standing in in_force(connection).items() if subject.startswith("crawl/")}


def touched(connection: Connection, subjects: Iterable[str] | None = None) -> dict[str, int]:
    """Subject -> the id of the latest row that touched it (a decision, an undo, an import): a card's version. Of
    every reviewed product when ``subjects`` is None."""
    reviews = store.reviews
    query = select(reviews.c.subject, func.max(reviews.c.id)).group_by(reviews.c.subject)
    if subjects is not None:
        subjects = sorted({s for s in subjects if s is not None})
        if not subjects:
            return {}
        query = query.where(reviews.c.subject.in_(subjects))
    if not store.has_table(connection, reviews):
        return {}
    return dict(connection.execute(query).all())


def record_decision(connection: Connection, *, decision: str | None, source: str, reviewer: str,
                    product_id: int | None = None, subject: str | None = None, queue_id: int | None = None,
                    replaces: str | None = None, created_at: str | None = None, decision_id: int | None = None,
                    withdraws: int | None = None) -> int:
    """Append one row (a leaf id, ``store.EXCLUDE``, or None) about one product, named by ``subject`` or, for a
    crawled one, ``product_id``; return its id. The rows of one decision share ``decision_id`` (the first row's id:
    leave it None there); an undo's rows carry ``withdraws``.

    The caller owns the transaction: a web page commits before it answers, an import commits its good rows together.
    """
    if source not in store.REVIEW_SOURCES:
        raise ValueError(f"review source {source!r} is not one of {', '.join(store.REVIEW_SOURCES)}")
    if subject is None:
        if product_id is None:
            raise ValueError("a review needs the product it decides")
        subject = identity.crawled(product_id)
    product_id = identity.parse(subject).product_id
    if not reviewer or not reviewer.strip():
        raise ValueError("a review needs a reviewer")
    return connection.execute(insert(store.reviews).values(
        product_id=product_id, subject=subject, queue_id=queue_id, decision=decision, replaces=replaces,
        source=source, reviewer=reviewer.strip(), decision_id=decision_id, withdraws=withdraws,
        created_at=created_at or datetime.now(UTC).isoformat(timespec="seconds"),
    )).inserted_primary_key[0]


def latest_decision_of(connection: Connection, reviewer: str, source: str | None = None) -> int | None:
    """The decision id of ``reviewer``'s latest decision (made under ``source``, when given) that no undo withdrew."""
    reviews = store.reviews
    withdrawn = select(reviews.c.withdraws).where(reviews.c.withdraws.is_not(None))
    query = (select(_decision_id()).where(reviews.c.reviewer == reviewer, reviews.c.decision.is_not(None),
                                          reviews.c.withdraws.is_(None), _decision_id().not_in(withdrawn))
             .order_by(reviews.c.id.desc()).limit(1))
    if source is not None:
        query = query.where(reviews.c.source == source)
    return connection.execute(query).scalar()


def withdraw(connection: Connection, decision_id: int, reviewer: str, created_at: str | None = None) -> list[str]:
    """Undo one decision: a row withdrawing each of its rows (same product, card and source); returns the subjects
    it touched. Nothing else changes: a later decision on one of them still stands, an earlier one stands again."""
    reviews = store.reviews
    rows = connection.execute(select(reviews.c.subject, reviews.c.queue_id, reviews.c.source, reviews.c.decision)
                              .where(_decision_id() == decision_id, reviews.c.withdraws.is_(None))
                              .order_by(reviews.c.id)).all()
    standing = in_force(connection, [row.subject for row in rows])
    for row in rows:
        now = standing.get(row.subject)
        record_decision(connection, decision=None, source=row.source, reviewer=reviewer, subject=row.subject,
                        queue_id=row.queue_id, replaces=now.decision if now else None, created_at=created_at,
                        withdraws=decision_id)
    return [row.subject for row in rows]


# --- the command line: decisions in and out of CSV files -------------------------------------------------------------

# product_id names a crawled product; record_source and record_id a product from a file, whose name, description
# and image_path (inside the image store) travel with it. decision_id and withdraws tie an undo to its decision.
CSV_COLUMNS = ("product_id", "record_source", "record_id", "decision", "replaces", "source", "reviewer", "created_at",
               "decision_id", "withdraws", "queue_id", *PAYLOAD_FIELDS)


def export_csv(connection: Connection, out: TextIO) -> int:
    """Every review row, oldest first (the whole history: an undo stays an undo); returns how many."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    if not store.has_table(connection, store.reviews):
        return count
    reviews, queue = store.reviews, store.filing_queue
    payloads = {}
    query = (select(reviews.c.subject, reviews.c.decision, reviews.c.replaces, reviews.c.source, reviews.c.reviewer,
                    reviews.c.created_at, _decision_id(), reviews.c.withdraws, reviews.c.queue_id)
             .order_by(reviews.c.id))
    for subject, *values, queue_id in connection.execute(query).all():
        who = identity.parse(subject)
        payload = {}
        if who.product_id is None:
            if subject not in payloads:
                stored = connection.execute(select(queue.c.payload).where(queue.c.subject == subject)
                                            .order_by(queue.c.id).limit(1)).scalar()
                payloads[subject] = json.loads(stored) if stored else {}
            payload = payloads[subject]
        writer.writerow(["" if value is None else value for value in (
            who.product_id, who.source, who.record_id, *values, queue_id, *(payload.get(k) for k in PAYLOAD_FIELDS))])
        count += 1
    return count


class _Import:
    """What an import checks rows against, kept current as its rows are recorded."""

    def __init__(self, connection: Connection, reviewer: str | None):
        self.connection, self.reviewer = connection, reviewer
        self.crawled = dict(connection.execute(select(schema.products.c.id, schema.products.c.category_id)).all())
        self.leaves = set(connection.execute(select(schema.categories.c.id).where(schema.categories.c.is_leaf == 1))
                          .scalars())
        queue = store.filing_queue
        self.queued = dict(connection.execute(select(queue.c.subject, func.min(queue.c.id))
                                              .group_by(queue.c.subject)).all())
        self.decisions: dict[str, int] = {}  # the file's decision id -> the one recorded here

    def subject(self, row: dict) -> str:
        raw_id = (row.get("product_id") or "").strip()
        if raw_id:
            try:
                product_id = int(raw_id)
            except ValueError:
                raise ValueError(f"product_id {raw_id!r} is not a whole number") from None
            if product_id not in self.crawled:
                raise ValueError(f"product {product_id} is not in the crawl")
            return identity.crawled(product_id)
        source, record_id = (row.get("record_source") or "").strip(), (row.get("record_id") or "").strip()
        if not source or not record_id:
            raise ValueError("no product: fill product_id (a crawled product) or record_source and record_id")
        subject = identity.filed(source, record_id)
        if subject not in self.queued and _is_blank(row.get("name")):
            raise ValueError(f"product {record_id!r} of {source!r} is not queued here and the row has no name to "
                             "queue it with")
        return subject

    def values(self, row: dict) -> dict:
        """The ``record_decision`` arguments of one CSV row, or ValueError saying what is wrong with it."""
        subject = self.subject(row)
        decision = (row.get("decision") or "").strip() or None
        if decision is not None and decision != store.EXCLUDE and decision not in self.leaves:
            raise ValueError(f"decision {decision!r} is neither a leaf category of the crawl nor {store.EXCLUDE!r} "
                             "(leave it empty to undo)")
        source = (row.get("source") or "").strip() or "manual"
        if source not in store.REVIEW_SOURCES:
            raise ValueError(f"source {source!r} is not one of {', '.join(store.REVIEW_SOURCES)}")
        who = (row.get("reviewer") or "").strip() or self.reviewer
        if not who:
            raise ValueError("no reviewer (fill the column, or pass --reviewer)")
        created_at = (row.get("created_at") or "").strip() or None
        if created_at is not None:
            try:
                datetime.fromisoformat(created_at)
            except ValueError:
                raise ValueError(f"created_at {created_at!r} is not an ISO 8601 time") from None
        decision_id, withdraws = _whole(row, "decision_id"), _whole(row, "withdraws")
        if withdraws is not None:
            if decision is not None:
                raise ValueError("a row that withdraws a decision decides nothing itself: empty its decision")
            if withdraws not in self.decisions:
                raise ValueError(f"withdraws decision {withdraws}, which no earlier row of this file made")
        standing = in_force(self.connection, [subject]).get(subject)
        crawled = self.crawled.get(identity.parse(subject).product_id)
        return {"subject": subject, "decision": decision, "source": source, "reviewer": who,
                "replaces": (row.get("replaces") or "").strip() or (standing.decision if standing else crawled),
                "created_at": created_at, "withdraws": None if withdraws is None else self.decisions[withdraws],
                "decision_id": self.decisions.get(decision_id) if decision_id is not None else None,
                "file_decision_id": decision_id}

    def record(self, values: dict, row: dict) -> None:
        subject, file_decision_id = values["subject"], values.pop("file_decision_id")
        if subject not in self.queued and not subject.startswith("crawl/"):
            who = identity.parse(subject)
            self.queued[subject] = queue_products(self.connection, [(
                {"id": who.record_id, **{k: (row.get(k) or None) for k in PAYLOAD_FIELDS}}, {})],
                source=who.source, model_path="", from_crawl=False)[0]
        row_id = record_decision(self.connection, queue_id=self.queued.get(subject), **values)
        if file_decision_id is not None and values["withdraws"] is None and values["decision_id"] is None:
            self.decisions[file_decision_id] = row_id


def _is_blank(value: object) -> bool:
    return not (value or "").strip()


def _whole(row: dict, column: str) -> int | None:
    raw = (row.get(column) or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{column} {raw!r} is not a whole number") from None


def import_csv(connection: Connection, lines: TextIO, name: str, reviewer: str | None = None) -> tuple[int, list[str]]:
    """Append every good row, in one transaction; returns (rows imported, one problem per bad row, naming the file
    and line). A bad row loses nothing else. A product from a file that is not queued here is queued with the
    row's name, description and photo, so training learns it as decided."""
    reader = csv.DictReader(lines)
    missing = {"decision"} - set(reader.fieldnames or ())
    if missing or not {"product_id", "record_id"} & set(reader.fieldnames or ()):
        return 0, [f"{name}:1: the header lacks decision, or both product_id and record_id "
                   f"(columns: {', '.join(CSV_COLUMNS)})"]
    problems, imported = [], 0
    with connection.begin():
        state = _Import(connection, reviewer)
        for row in reader:
            try:
                if None in row:
                    raise ValueError(f"{len(reader.fieldnames) + len(row[None])} fields where the header has "
                                     f"{len(reader.fieldnames)}")
                values = state.values(row)
            except ValueError as error:
                problems.append(f"{name}:{reader.line_num}: {error}")
                continue
            state.record(values, row)
            imported += 1
    return imported, problems


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modeling.reviews", description=__doc__,
                                     formatter_class=cli.HelpFormatter)
    parser.add_argument("action", choices=("export", "import"),
                        help="export: write every review row (the whole history) to FILE; import: append FILE's "
                             "rows as decisions")
    parser.add_argument("file", type=Path, help=f"a CSV file with the header {','.join(CSV_COLUMNS)} ('-': standard "
                                                "output or input); import needs only decision and product_id (a crawled"
                                                " product) or record_source and record_id (a product from a file)")
    parser.add_argument("--db", type=schema.location, default=config.crawl_db(),
                        help="the crawl database holding the reviews: a sqlite file or a postgresql:// URL")
    parser.add_argument("--reviewer", help="import: who decided, for rows whose reviewer column is empty")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stdio = str(args.file) == "-"
    try:
        if args.action == "export":  # a database that is not there is an error, not a new empty one to export
            store.connect(args.db, readonly=True).close()
        # writable for an export too: an older database's reviews gain their identity first (store.connect)
        with closing(store.connect(args.db)) as connection:
            if args.action == "export":
                if stdio:
                    count = export_csv(connection, sys.stdout)
                else:
                    with args.file.open("w", encoding="utf-8", newline="") as out:
                        count = export_csv(connection, out)
                print(f"modeling.reviews: {count} review rows exported", file=sys.stderr)
                return 0
            if stdio:
                imported, problems = import_csv(connection, sys.stdin, "<stdin>", args.reviewer)
            else:
                with args.file.open(encoding="utf-8", newline="") as lines:
                    imported, problems = import_csv(connection, lines, str(args.file), args.reviewer)
    except (schema.SchemaError, SQLAlchemyError, OSError, UnicodeDecodeError) as error:
        print(f"modeling.reviews: {error}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"modeling.reviews: {problem}", file=sys.stderr)
    print(f"modeling.reviews: {imported} decisions imported, {len(problems)} rows refused", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
