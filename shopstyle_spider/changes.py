"""``python -m shopstyle_spider.changes --db data/crawl.db [--since DATE]``: where the catalog changed.

Per leaf: the products first met since DATE (new), the products a refresh found gone since then, and the products
re-filed out of and into the leaf (``product_changes``); then the categories added, moved or gone. Without
``--since``, since the first crawl.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable
from contextlib import closing
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, select
from sqlalchemy.exc import SQLAlchemyError

from . import cli, config, schema

COLUMNS = ("new", "gone", "re-filed out", "re-filed in")


def since_argument(value: str) -> str:
    """A ``--since`` value: an ISO date or date and time, as the database's timestamps start (argparse type)."""
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-12-01, got {value!r}") from None
    return value


def per_leaf(connection: Connection, since: str) -> dict[str, Counter]:
    """Leaf -> counts of ``COLUMNS`` since ``since`` (an ISO timestamp prefix; "" for ever)."""
    products, changes = schema.products, schema.product_changes
    found: dict[str, Counter] = {}
    queries = (("new", select(products.c.category_id).where(products.c.first_seen >= since)),
               ("gone", select(products.c.category_id).where(products.c.gone_at >= since)))
    for column, query in queries:
        for (leaf,) in connection.execute(query):
            found.setdefault(leaf, Counter())[column] += 1
    refiled = select(changes.c.old, changes.c.new).where(changes.c.field == "category_id",
                                                         changes.c.changed_at >= since)
    for old, new in connection.execute(refiled):
        found.setdefault(old, Counter())["re-filed out"] += 1
        found.setdefault(new, Counter())["re-filed in"] += 1
    return found


def category_events(connection: Connection, since: str) -> list[tuple[str, str, str | None, str | None, str]]:
    """(category, field, old, new, when) of every change of the tree since ``since``, oldest first."""
    changes = schema.category_changes
    return [tuple(row) for row in connection.execute(
        select(changes.c.category_id, changes.c.field, changes.c.old, changes.c.new, changes.c.changed_at)
        .where(changes.c.changed_at >= since).order_by(changes.c.changed_at, changes.c.id))]


def first_seen_after(target: str | Path, product_ids: Iterable[int], when: str) -> int:
    """How many of ``product_ids`` the crawl first met after ``when`` (an ISO timestamp)."""
    wanted = set(product_ids)
    with closing(schema.connect(target, readonly=True)) as connection:
        met = connection.execute(select(schema.products.c.id).where(schema.products.c.first_seen > when)).scalars()
        return sum(product_id in wanted for product_id in met)


def report(connection: Connection, since: str) -> list[str]:
    found = per_leaf(connection, since)
    width = max([len("leaf"), *(len(leaf) for leaf in found)])
    lines = [f"{'leaf':<{width}}  " + "  ".join(f"{c:>12}" for c in COLUMNS)]
    for leaf in sorted(found):
        lines.append(f"{leaf:<{width}}  " + "  ".join(f"{found[leaf][c]:>12}" for c in COLUMNS))
    totals = sum(found.values(), Counter())
    lines.append(f"{'total':<{width}}  " + "  ".join(f"{totals[c]:>12}" for c in COLUMNS))
    events = category_events(connection, since)
    lines.append(f"categories: {len(events)} changes" + (":" if events else ""))
    for category, field, old, new, when in events:
        what = {"added": f"added under {new}", "parent_id": f"moved from {old} to {new}",
                "gone_at": "gone" if new else "back"}.get(field, field)
        lines.append(f"  {when}  {category}: {what}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shopstyle_spider.changes", description=__doc__,
                                     formatter_class=cli.HelpFormatter)
    parser.add_argument("--db", type=schema.location, default=config.crawl_db(),
                        help="the crawl database: a sqlite file or a postgresql:// URL")
    parser.add_argument("--since", type=since_argument, default=None,
                        help="count what changed from this date (or date and time, UTC) on; default: since the "
                             "first crawl")
    args = parser.parse_args(argv)
    try:
        with closing(schema.connect(args.db, readonly=True)) as connection:
            lines = report(connection, args.since or "")
    except schema.SchemaError as error:
        print(f"shopstyle_spider.changes: {error}", file=sys.stderr)
        return 2
    except SQLAlchemyError as error:  # a database of schema 4 or older, not written since
        print(f"shopstyle_spider.changes: {schema.display_name(args.db)} records no changes yet "
              f"({getattr(error, 'orig', None) or error}); a crawl or refresh upgrades it", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
