"""Modeling's tables in the crawl database, and how modeling opens it.

The crawler owns categories, products and leaves (``shopstyle_spider.schema``); everything modeling learns or is
told lives beside them, declared here on the same SQLAlchemy ``metadata`` so one database holds the whole loop:

- ``experiments`` and ``predictions``: each ``modeling.train`` run and its held-out predictions.
- ``audits`` and ``label_issues``: each ``modeling.audit`` run and the crawled labels it suspects, grouped by
  cleaned name so that one decision can settle every copy of a product.
- ``reviews``: what a person decided, append-only. The crawler's ``products.category_id`` is never overwritten;
  ``modeling.reviews.in_force`` says which decision stands, and an undo is new rows withdrawing a decision's.
- ``filing_queue``: products the model could not auto-file, waiting for a person, with the prediction they got.
- ``leases``: which reviewer holds which card, until when, so two people never decide the same card at once.
- ``models`` and ``promotions``: the model registry (``modeling.registry``): each trained model's file and
  checksum, and every promotion of one into service, append-only.

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
    cast,
    inspect,
    literal,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from shopstyle_spider import schema
from shopstyle_spider.schema import SchemaError, metadata

from . import identity

__all__ = ["CYCLE_TABLES", "EXCLUDE", "REGISTRY_TABLES", "REVIEW_SOURCES", "TABLES", "audits", "connect", "cycle_steps",
           "cycles", "experiments", "filing_queue", "filings", "has_table", "label_issues", "leases", "models",
           "predictions", "promotions", "reviews"]

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

# Products waiting for a person: written by `modeling.predict --queue` (or POST /api/queue), from a crawl database
# (product_id set) or from a file of new products (record_id, as the file named it). subject: the product's identity
# (``modeling.identity``: a crawled product by id, a file product by its file and record id), one row per subject.
# payload: the product as predict read it (JSON: name, description, image_path, the photo copied into the image
# store); prediction: the line predict wrote for it (JSON; empty for a product a restored backup queued).
filing_queue = Table(
    "filing_queue", metadata,
    Column("id", Integer, primary_key=True),
    Column("product_id", BigInteger),
    Column("record_id", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("prediction", Text, nullable=False),
    Column("model_path", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("subject", Text),  # NULL only in an older database's rows until ``connect`` fills it
    # the decision of the newest model filing since the product was queued (``filings.Writer`` sets it, queueing
    # again clears it; NULL: none since): a leaf or parent filing takes the card out of a person's work
    # (``modeling.review.cards``), read from this row so that counting a 100,000-card queue stays one scan
    Column("filed", Text),
    Index("filing_queue_product", "product_id"),
    Index("filing_queue_subject", "subject"),
)

# Append-only decisions, one row per product a decision settles. subject: the product (``modeling.identity``).
# decision: a leaf category id, EXCLUDE, or NULL. A decision's rows share decision_id (NULL: the row's own id).
# An undo appends one row per row of the decision it withdraws, decision NULL and withdraws = that decision_id:
# the withdrawn rows no longer count and what stood before them stands again (``modeling.reviews.in_force``).
# A NULL decision without withdraws (an older database's undo, or an imported empty decision) clears the product
# back to its crawled label. replaces: the label in force before this row.
reviews = Table(
    "reviews", metadata,
    Column("id", Integer, primary_key=True),
    Column("product_id", BigInteger),  # the crawled product's id; NULL for a product from a file
    Column("queue_id", Integer, ForeignKey("filing_queue.id")),  # the card it was decided on, if any
    Column("subject", Text),  # NULL only in an older database's rows until ``connect`` fills it
    Column("decision_id", Integer),
    Column("withdraws", Integer),
    Column("decision", Text),
    Column("replaces", Text),
    Column("source", Text, nullable=False),  # one of REVIEW_SOURCES
    Column("reviewer", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Index("reviews_product", "product_id", "id"),
    Index("reviews_queue", "queue_id", "id"),
    Index("reviews_subject", "subject", "id"),
    Index("reviews_withdraws", "withdraws"),
)

# Who holds a card until when (unix seconds). item: a card's key (``modeling.review.items``).
leases = Table(
    "leases", metadata,
    Column("item", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# --- the model registry (modeling.registry) ---
# One row per model modeling.train saved, keyed by its experiment. labels: JSON, the labels it learned (crawled or
# reviewed, with the counts); sha256: the file's checksum, checked before the model is served.
models = Table(
    "models", metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.id"), primary_key=True, autoincrement=False),
    Column("path", Text, nullable=False),
    Column("card_path", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("labels", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)

# Append-only: the model in service is the latest row's. replaces: the model in service before it (NULL: none);
# reason: why (by hand, the first model, or the champion/challenger comparison's verdict).
promotions = Table(
    "promotions", metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.experiment_id"), nullable=False),
    Column("replaces", Integer, ForeignKey("models.experiment_id")),
    Column("promoted_at", Text, nullable=False),
    Column("promoted_by", Text, nullable=False),
    Column("reason", Text, nullable=False),
)

REGISTRY_TABLES = (models, promotions)
# --- end of the model registry ---

# --- the weekly cycle (modeling.cycle, modeling.filings) ---
# Append-only: one row each time predict files a product (decision leaf, parent or review: a person's) at a target.
# subject: the product's identity (modeling.identity); model_id: the registered model (NULL: a file given with
# --model that the registry does not hold); category: where it was filed (the leaf, the parent, or for review the
# model's best leaf); score: the filed level's score. A product filed twice keeps both rows: the newest decides.
filings = Table(
    "filings", metadata,
    Column("id", Integer, primary_key=True),
    Column("subject", Text, nullable=False),
    Column("product_id", BigInteger),  # the crawled product's id; NULL for a product from a file
    Column("model_id", Integer),
    Column("model_path", Text, nullable=False),
    Column("target", Float, nullable=False),
    Column("decision", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("score", Float, nullable=False),
    Column("filed_at", Text, nullable=False),
    Index("filings_subject", "subject", "id"),
    Index("filings_at", "filed_at"),
)

# One row per weekly cycle. since: products first seen or changed from then on are its work; status: running, failed
# or done; options: JSON, the options of the run that last worked on it.
cycles = Table(
    "cycles", metadata,
    Column("id", Integer, primary_key=True),
    Column("started_at", Text, nullable=False),
    Column("finished_at", Text),
    Column("status", Text, nullable=False),
    Column("since", Text, nullable=False),
    Column("options", Text, nullable=False),
)

# One row per step a cycle ran (a resumed step gets a new row): status running, failed, done or skipped; pid: the
# process that ran it (a row left 'running' by a dead process is a step killed mid-way); summary: its line.
cycle_steps = Table(
    "cycle_steps", metadata,
    Column("id", Integer, primary_key=True),
    Column("cycle_id", Integer, ForeignKey("cycles.id"), nullable=False),
    Column("step", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Text, nullable=False),
    Column("finished_at", Text),
    Column("summary", Text),
)

CYCLE_TABLES = (filings, cycles, cycle_steps)
# --- end of the weekly cycle ---

TABLES = (experiments, predictions, audits, label_issues, filing_queue, reviews, leases, *REGISTRY_TABLES,
          *CYCLE_TABLES)


def connect(target: str | Path, *, readonly: bool = False) -> Connection:
    """``schema.connect``, plus modeling's tables created where missing when opening for writing."""
    connection = schema.connect(target, readonly=readonly)
    if not readonly:
        try:
            with connection.begin():
                metadata.create_all(connection, tables=list(TABLES))
                schema.add_missing_columns(connection, TABLES)
                _fill_subjects(connection)
        except SQLAlchemyError as error:
            connection.close()
            raise SchemaError(f"{schema.display_name(target)}: cannot create modeling's tables "
                              f"({error.orig or error})") from error
    return connection


def _fill_subjects(connection: Connection) -> None:
    """Give an older database's queue rows and reviews their product's identity: a crawled product by its id, a
    queued file product (its file was not recorded then) as record ``record_id`` of ``identity.LEGACY_SOURCE``; a
    review made on a queue card takes its card's. Rows that have one are left alone, and once none lacks it this
    only reads (no write lock: another process may hold it)."""
    queue, rows = filing_queue, reviews
    if not any(connection.execute(select(table.c.subject).where(table.c.subject.is_(None)).limit(1)).first()
               for table in (queue, rows)):
        return
    crawl_key = literal("crawl/") + cast(queue.c.product_id, Text)
    connection.execute(update(queue).where(queue.c.subject.is_(None), queue.c.product_id.is_not(None))
                       .values(subject=crawl_key))
    for queue_id, record_id in connection.execute(select(queue.c.id, queue.c.record_id)
                                                  .where(queue.c.subject.is_(None))).all():
        connection.execute(update(queue).where(queue.c.id == queue_id)
                           .values(subject=identity.filed(identity.LEGACY_SOURCE, record_id)))
    connection.execute(update(rows).where(rows.c.subject.is_(None), rows.c.product_id.is_not(None))
                       .values(subject=literal("crawl/") + cast(rows.c.product_id, Text)))
    connection.execute(update(rows).where(rows.c.subject.is_(None), rows.c.queue_id.is_not(None)).values(
        subject=select(queue.c.subject).where(queue.c.id == rows.c.queue_id).scalar_subquery()))


def has_table(connection: Connection, table: Table) -> bool:
    """Whether a database opened read-only has this table yet (modeling has not written to it otherwise)."""
    return inspect(connection).has_table(table.name)
