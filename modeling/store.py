"""Modeling's tables in the crawl database, and how modeling opens it.

The crawler owns categories, products and leaves (``shopstyle_spider.schema``); everything modeling learns or is
told lives beside them, declared here on the same SQLAlchemy ``metadata`` so one database holds the whole loop:

- ``experiments`` and ``predictions``: each ``modeling.train`` run and its held-out predictions.
- ``audits`` and ``label_issues``: each ``modeling.audit`` run and the crawled labels it suspects, grouped by
  cleaned name so that one decision can settle every copy of a product.
- ``reviews``: what a person decided, append-only. The crawler's ``products.category_id`` is never overwritten;
  the latest review of a product wins, and an undo is a new row.
- ``filing_queue``: products the model could not auto-file, waiting for a person, with the prediction they got.
- ``leases``: which reviewer holds which card, until when, so two people never decide the same card at once.

``connect`` creates what is missing when it opens for writing, so a database a crawl made gains these tables the
first time modeling writes to it, whichever side created the file.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    inspect,
)
from sqlalchemy.exc import SQLAlchemyError

from shopstyle_spider import schema
from shopstyle_spider.schema import SchemaError, metadata

__all__ = ["EXCLUDE", "REVIEW_SOURCES", "TABLES", "audits", "connect", "experiments", "filing_queue", "has_table",
           "label_issues", "leases", "predictions", "reviews"]

# A review's decision that takes a product out of training: not a product of this catalog, or unfileable.
EXCLUDE = "exclude"
# Where a review came from: a suspect label of an audit, an unsure product of the filing queue, or by hand (CSV).
REVIEW_SOURCES = ("audit", "unsure", "manual")

# One row per `modeling.train` run; parameters, library versions and metrics as JSON objects.
experiments = Table(
    "experiments", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("parameters", Text, nullable=False),
    Column("versions", Text, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("model_path", Text),
)

# Every held-out product an experiment predicted; a branch's columns are NULL where it had nothing to say
# (no image branch, or no usable photo).
predictions = Table(
    "predictions", metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True),
    Column("product_id", BigInteger, primary_key=True, autoincrement=False),
    Column("split", Text, nullable=False),  # validation | test
    Column("true_category", Text, nullable=False),
    Column("predicted_category", Text, nullable=False),
    Column("score", Float, nullable=False),
    Column("text_category", Text),
    Column("text_score", Float),
    Column("image_category", Text),
    Column("image_score", Float),
    # the most probable parent and its probability (the sum of its leaves'): what auto-filing at the parent uses
    Column("parent_category", Text),
    Column("parent_score", Float),
)

# One row per `modeling.audit` run: its parameters and summary (counts, the overlapping category pairs) as JSON.
audits = Table(
    "audits", metadata,
    Column("id", Integer, primary_key=True),
    Column("created_at", Text, nullable=False),
    Column("parameters", Text, nullable=False),
    Column("summary", Text, nullable=False),
)

# The crawled labels an audit suspects. quality is cleanlab's label quality score (0..1, lower is more suspect);
# rank orders the suspects worst first; group_key is the cleaned, lower-cased name shared by copies of a product.
label_issues = Table(
    "label_issues", metadata,
    Column("audit_id", Integer, ForeignKey("audits.id", ondelete="CASCADE"), primary_key=True),
    Column("product_id", BigInteger, primary_key=True, autoincrement=False),
    Column("given_label", Text, nullable=False),
    Column("suggested_label", Text, nullable=False),
    Column("quality", Float, nullable=False),
    Column("given_score", Float),  # out-of-fold probability of the given label
    Column("suggested_score", Float),  # out-of-fold probability of the suggested label
    Column("group_key", Text, nullable=False),
    Column("rank", Integer, nullable=False),
    Index("label_issues_group", "audit_id", "group_key"),
)

# Products waiting for a person: written by `modeling.predict --queue`, from a crawl database (product_id set) or
# from a file of new products (only record_id, as the file named it). payload: the product as predict read it
# (JSON: name, description, image_path); prediction: the line predict wrote for it (JSON).
filing_queue = Table(
    "filing_queue", metadata,
    Column("id", Integer, primary_key=True),
    Column("product_id", BigInteger),
    Column("record_id", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("prediction", Text, nullable=False),
    Column("model_path", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Index("filing_queue_product", "product_id"),
)

# Append-only decisions. decision: a leaf category id, EXCLUDE, or NULL (an undo: no decision stands, the product
# is back to its crawled label or back in the queue). replaces: the label in force before this row.
reviews = Table(
    "reviews", metadata,
    Column("id", Integer, primary_key=True),
    Column("product_id", BigInteger),  # NULL only for a queued product that is not in the crawl
    Column("queue_id", Integer, ForeignKey("filing_queue.id")),
    Column("decision", Text),
    Column("replaces", Text),
    Column("source", Text, nullable=False),  # one of REVIEW_SOURCES
    Column("reviewer", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Index("reviews_product", "product_id", "id"),
    Index("reviews_queue", "queue_id", "id"),
)

# Who holds a card until when (unix seconds). item: "queue:<filing_queue id>" or "audit:<audit id>:<group_key>".
leases = Table(
    "leases", metadata,
    Column("item", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
)

TABLES = (experiments, predictions, audits, label_issues, filing_queue, reviews, leases)


def connect(target: str | Path, *, readonly: bool = False) -> Connection:
    """``schema.connect``, plus modeling's tables created where missing when opening for writing."""
    connection = schema.connect(target, readonly=readonly)
    if not readonly:
        try:
            with connection.begin():
                metadata.create_all(connection, tables=list(TABLES))
                schema.add_missing_columns(connection, TABLES)
        except SQLAlchemyError as error:
            connection.close()
            raise SchemaError(f"{schema.display_name(target)}: cannot create modeling's tables "
                              f"({error.orig or error})") from error
    return connection


def has_table(connection: Connection, table: Table) -> bool:
    """Whether a database opened read-only has this table yet (modeling has not written to it otherwise)."""
    return inspect(connection).has_table(table.name)
