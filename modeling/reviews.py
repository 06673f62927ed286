"""Decisions people make about labels, kept append-only in the ``reviews`` table of ``modeling.store``.

``python -m modeling.reviews export|import FILE.csv`` moves decisions out of the database and back in (another
reviewer's spreadsheet, a backup, a second database): a bad row is reported with its line number and the others are
imported together.

The crawler's label (``products.category_id``) is what the catalog said; a review is what a person decided about it
afterwards. Nothing is updated in place: every decision, confirmation and undo is a new row, so the history of a
product's label can always be read back, and the latest row of a product is the decision in force.
"""

from __future__ import annotations

import argparse
import csv
import sys
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from shopstyle_spider import config, schema

from . import store

__all__ = ["CSV_COLUMNS", "export_csv", "import_csv", "latest_decisions", "record_decision"]


def record_decision(connection: Connection, *, decision: str | None, source: str, reviewer: str,
                    product_id: int | None = None, queue_id: int | None = None, replaces: str | None = None,
                    created_at: str | None = None) -> int:
    """Append one decision (a leaf id, ``store.EXCLUDE``, or None to undo) and return its row id.

    The caller owns the transaction: a web page commits before it answers, an import commits its good rows together.
    """
    if source not in store.REVIEW_SOURCES:
        raise ValueError(f"review source {source!r} is not one of {', '.join(store.REVIEW_SOURCES)}")
    if product_id is None and queue_id is None:
        raise ValueError("a review needs the product it decides, or its place in the filing queue")
    if not reviewer or not reviewer.strip():
        raise ValueError("a review needs a reviewer")
    return connection.execute(insert(store.reviews).values(
        product_id=product_id, queue_id=queue_id, decision=decision, replaces=replaces, source=source,
        reviewer=reviewer.strip(), created_at=created_at or datetime.now(UTC).isoformat(timespec="seconds"),
    )).inserted_primary_key[0]


def latest_decisions(connection: Connection) -> dict[int, str]:
    """Crawled product id -> the decision in force (a leaf id or ``store.EXCLUDE``); products whose latest row is
    an undo, and products never reviewed, are absent: their crawled label stands."""
    if not store.has_table(connection, store.reviews):
        return {}
    latest = (select(store.reviews.c.product_id, func.max(store.reviews.c.id).label("id"))
              .where(store.reviews.c.product_id.is_not(None)).group_by(store.reviews.c.product_id).subquery())
    rows = connection.execute(select(store.reviews.c.product_id, store.reviews.c.decision)
                              .join(latest, store.reviews.c.id == latest.c.id))
    return {int(product_id): decision for product_id, decision in rows if decision is not None}


# --- the command line: decisions in and out of CSV files -------------------------------------------------------------

CSV_COLUMNS = ("product_id", "decision", "replaces", "source", "reviewer", "created_at", "queue_id")


def export_csv(connection: Connection, out: TextIO) -> int:
    """Every review row, oldest first (the whole history: an undo stays an undo); returns how many."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    if not store.has_table(connection, store.reviews):
        return count
    for row in connection.execute(select(*(store.reviews.c[c] for c in CSV_COLUMNS)).order_by(store.reviews.c.id)):
        writer.writerow(["" if value is None else value for value in row])
        count += 1
    return count


def _checked_row(row: dict, crawled: dict[int, str], decided: dict[int, str], leaves: set[str],
                 reviewer: str | None) -> dict:
    """The ``record_decision`` arguments of one CSV row, or ValueError saying what is wrong with it."""
    raw_id = (row.get("product_id") or "").strip()
    try:
        product_id = int(raw_id)
    except ValueError:
        raise ValueError(f"product_id {raw_id!r} is not a whole number") from None
    if product_id not in crawled:
        raise ValueError(f"product {product_id} is not in the crawl")
    decision = (row.get("decision") or "").strip() or None
    if decision is not None and decision != store.EXCLUDE and decision not in leaves:
        raise ValueError(f"decision {decision!r} is neither a leaf category of the crawl nor {store.EXCLUDE!r} "
                         "(leave it empty to undo)")
    source = (row.get("source") or "").strip() or "manual"
    if source not in store.REVIEW_SOURCES:
        raise ValueError(f"source {source!r} is not one of {', '.join(store.REVIEW_SOURCES)}")
    who = (row.get("reviewer") or "").strip() or reviewer
    if not who:
        raise ValueError("no reviewer (fill the column, or pass --reviewer)")
    created_at = (row.get("created_at") or "").strip() or None
    if created_at is not None:
        try:
            datetime.fromisoformat(created_at)
        except ValueError:
            raise ValueError(f"created_at {created_at!r} is not an ISO 8601 time") from None
    raw_queue = (row.get("queue_id") or "").strip()
    if raw_queue:
        raise ValueError("queue_id is set: decisions on queued products are made in the review app, not imported")
    return {"product_id": product_id, "decision": decision, "source": source, "reviewer": who,
            "replaces": (row.get("replaces") or "").strip() or decided.get(product_id, crawled[product_id]),
            "created_at": created_at}


def import_csv(connection: Connection, lines: TextIO, name: str, reviewer: str | None = None) -> tuple[int, list[str]]:
    """Append every good row as a decision, in one transaction; returns (rows imported, one problem per bad row,
    naming the file and line). A bad row loses nothing else."""
    reader = csv.DictReader(lines)
    missing = {"product_id", "decision"} - set(reader.fieldnames or ())
    if missing:
        return 0, [f"{name}:1: the header lacks {', '.join(sorted(missing))} (columns: {', '.join(CSV_COLUMNS)})"]
    problems, imported = [], 0
    with connection.begin():
        crawled = dict(connection.execute(select(schema.products.c.id, schema.products.c.category_id)).fetchall())
        leaves = set(connection.execute(select(schema.categories.c.id).where(schema.categories.c.is_leaf == 1))
                     .scalars())
        decided = latest_decisions(connection)
        for row in reader:
            try:
                if None in row:
                    raise ValueError(f"{len(reader.fieldnames) + len(row[None])} fields where the header has "
                                     f"{len(reader.fieldnames)}")
                values = _checked_row(row, crawled, decided, leaves, reviewer)
            except ValueError as error:
                problems.append(f"{name}:{reader.line_num}: {error}")
                continue
            record_decision(connection, **values)
            if values["decision"] is None:  # an undo: no decision stands, the crawled label is back in force
                decided.pop(values["product_id"], None)
            else:
                decided[values["product_id"]] = values["decision"]
            imported += 1
    return imported, problems


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modeling.reviews", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("action", choices=("export", "import"),
                        help="export: write every review row (the whole history) to FILE; import: append FILE's "
                             "rows as decisions")
    parser.add_argument("file", type=Path, help=f"a CSV file with the header {','.join(CSV_COLUMNS)} ('-': standard "
                                                "output or input); import needs only product_id and decision")
    parser.add_argument("--db", type=schema.location, default=config.crawl_db(),
                        help="the crawl database holding the reviews: a sqlite file or a postgresql:// URL")
    parser.add_argument("--reviewer", help="import: who decided, for rows whose reviewer column is empty")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stdio = str(args.file) == "-"
    try:
        with closing(store.connect(args.db, readonly=args.action == "export")) as connection:
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
