"""The crawl database: its one schema, its version, and how to open it, in sqlite or PostgreSQL.

The crawler writes categories, products and leaves, declared here. Modeling keeps its own tables (experiments,
predictions, the label audit, reviews, the filing queue) in the same database, declared by ``modeling.store`` on
this module's ``metadata`` and created by it: the crawler never imports modeling.

The tables are SQLAlchemy Core tables, so one definition creates both dialects' DDL; the statements the project
runs are written once, in SQL both dialects share. A sqlite file is in WAL mode, so that ``modeling`` reads while a
crawl writes; PostgreSQL serves any number of crawl processes on any number of machines. The ``schema_version``
table holds ``SCHEMA_VERSION``; a database written by a newer version of the project is refused rather than misread.
"""

from __future__ import annotations

import shlex
import sqlite3
import time
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    TextClause,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from . import config

# 2: experiments and predictions; 3: the version in a table (PostgreSQL has no user_version); 4: modeling's label
# audit, reviews and filing queue (modeling.store); 5: refreshes (the refreshes, product_changes and
# category_changes tables; gone_at and refresh_id columns, added to an existing database by
# ``add_missing_columns``); 6: image_store (where the crawl stored its photos)
SCHEMA_VERSION = 6
BUSY_TIMEOUT_S = 30.0  # how long a write waits for another process's transaction

metadata = MetaData()

categories = Table(
    "categories", metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("parent_id", Text),  # NULL for the crawl's root
    Column("is_leaf", Integer, nullable=False),
    Column("path", Text, nullable=False),  # ids from the crawl's root down, joined by '/'
    Column("first_seen", Text, nullable=False),
    Column("last_seen", Text, nullable=False),
    Column("gone_at", Text),  # when a refresh found it gone from the tree; NULL while it is there
    Column("refresh_id", Integer),  # the last refresh that saw it (refreshes.id); NULL: a plain crawl did
)

products = Table(
    "products", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("category_id", Text, nullable=False),  # the first of the product's categories: its own leaf
    Column("brand", Text),
    Column("retailer", Text),
    Column("price", Float),
    Column("currency", Text),
    Column("in_stock", Integer),
    Column("click_url", Text),  # with the API key removed
    Column("image_url", Text),  # the size fetched (the largest offered)
    Column("image_path", Text),  # relative to IMAGES_STORE
    Column("image_checksum", Text),  # md5 of the stored file
    Column("image_status", Text, nullable=False),  # ok | none (no image offered) | missing (404) | failed | invalid
    Column("image_error", Text),
    Column("first_seen", Text, nullable=False),
    Column("last_seen", Text, nullable=False),
    # when a refresh=all found it gone from its leaf; never deleted, so that a model trained on it stays reproducible
    Column("gone_at", Text),
    Column("refresh_id", Integer),  # the last refresh that saw it (refreshes.id); NULL: a plain crawl did
    Index("products_category", "category_id"),
)

# Crawl state: a leaf is complete once every product of every page it served is stored (or dropped).
leaves = Table(
    "leaves", metadata,
    Column("category_id", Text, primary_key=True),
    Column("total", Integer, nullable=False),  # what the API said the leaf holds
    Column("reached", Integer, nullable=False),  # distinct products the crawl could read
    Column("unreachable", Integer, nullable=False),  # total - reached where the API's result cap hid the rest
    Column("completed_at", Text, nullable=False),
    Column("refresh_id", Integer),  # the refresh that last completed it; NULL: a plain crawl did
)

# One row per `scrapy crawl shopstyle -a refresh=...`: a killed refresh is resumed by the next one of its mode.
refreshes = Table(
    "refreshes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("mode", Text, nullable=False),  # new (newest pages of each leaf) | all (every leaf again)
    Column("started_at", Text, nullable=False),
    Column("finished_at", Text),  # NULL while in progress (or killed: the next refresh of its mode resumes it)
    Column("summary", Text),  # JSON counts of what changed, once finished
)

# What refreshes found changed, appended, never updated: a product added, re-filed (category_id), gone (gone_at),
# its price, stock or photo (image_checksum) changed; old and new as text, NULL for none.
product_changes = Table(
    "product_changes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("product_id", BigInteger, nullable=False),
    Column("field", Text, nullable=False),  # added | category_id | gone_at | price | in_stock | image_checksum
    Column("old", Text),
    Column("new", Text),
    Column("changed_at", Text, nullable=False),
    Column("refresh_id", Integer),
    Index("product_changes_at", "changed_at"),
)

# The same for the category tree: a category added, moved (parent_id) or gone (gone_at).
category_changes = Table(
    "category_changes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("category_id", Text, nullable=False),
    Column("field", Text, nullable=False),  # added | parent_id | gone_at
    Column("old", Text),
    Column("new", Text),
    Column("changed_at", Text, nullable=False),
    Column("refresh_id", Integer),
)

# The schema's version, one row (sqlite files from before version 3 kept it in PRAGMA user_version).
# Where the crawl stored its photos (its IMAGES_STORE: an absolute folder or an s3:// URI), one row written by the
# last crawl into this database: products' image_path is relative to it, so modeling finds the photos from any
# working directory without being told (an older database has none: modeling falls back to data/images).
image_store = Table(
    "image_store", metadata,
    Column("location", Text, nullable=False),
    Column("recorded_at", Text, nullable=False),
)

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

PRODUCT_COLUMNS = ("id", "name", "description", "category_id", "brand", "retailer", "price", "currency", "in_stock",
                   "click_url", "image_url", "image_path", "image_checksum", "image_status", "image_error")
CATEGORY_COLUMNS = ("id", "name", "parent_id", "is_leaf", "path")


class SchemaError(RuntimeError):
    """A database this version of the project cannot use."""


def is_url(target: str | Path) -> bool:
    return "://" in str(target)


def location(value: str) -> str | Path:
    """A ``--db`` argument: a postgresql:// URL as it is, else a sqlite path (argparse ``type``)."""
    return value if is_url(value) else Path(value)


def display_name(target: str | Path) -> str:
    """How to name the database in messages and logs: a URL without its password."""
    return make_url(str(target)).render_as_string(hide_password=True) if is_url(target) else str(target)


def password_of(target: str | Path) -> str | None:
    """The password in a database URL (redacted from the crawl's logs), if any."""
    return make_url(str(target)).password if is_url(target) else None


def _demo_hint(missing: Path) -> str:
    """Where the demo's database is, when ``missing`` is the default one and the demo's is there: right after
    ``make demo`` every command's default database (``config.crawl_db``) does not exist yet, as the demo crawls into
    ``config.demo_dir``, and the error should name the option that reaches it. Every command reading a crawl comes
    through here (``connect(..., readonly=True)``), so this is the one place that says it."""
    demo = config.demo_dir() / "crawl.db"
    if missing.resolve() != config.crawl_db().resolve() or not demo.is_file():
        return ""
    shown = demo.resolve()
    if shown.is_relative_to(Path.cwd().resolve()):
        shown = shown.relative_to(Path.cwd().resolve())
    return f" (the demo's is {shown}: pass --db {shlex.quote(str(shown))})"


def _engine(target: str | Path, readonly: bool):
    """An engine that really closes what it opens (no pool: a crawl holds one connection for its lifetime)."""
    if is_url(target):
        url = make_url(str(target))
        if url.drivername in ("postgresql", "postgres"):  # psycopg 3 is the driver we ship
            url = url.set(drivername="postgresql+psycopg")
        if not url.drivername.startswith("postgresql"):
            raise SchemaError(f"{display_name(target)}: SHOPSTYLE_DB takes a sqlite path or a postgresql:// URL")
        try:
            return create_engine(url, poolclass=NullPool)
        except ImportError as error:
            raise SchemaError(f"{display_name(target)}: PostgreSQL needs psycopg: pip install '.[scale]'") from error
    path = Path(target)
    if readonly:
        if not path.is_file():
            raise SchemaError(f"{path}: no crawl database there (run `scrapy crawl shopstyle` first){_demo_hint(path)}")
        return create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true", poolclass=NullPool)
    path.parent.mkdir(parents=True, exist_ok=True)
    # crawl processes sharing a crawl (REDIS_URL) on one machine write one file: wait for each other's commits
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool, connect_args={"timeout": BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _sqlite_for_writing)
    return engine


def _sqlite_for_writing(connection, _record) -> None:
    """WAL, so that modeling reads while a crawl writes (the mode stays in the file). The switch fails at once,
    without waiting, while another process is creating the same file: retry it as long as writes are waited for."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            connection.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    connection.execute("PRAGMA synchronous=NORMAL")


def _stored_version(connection: Connection) -> int:
    if inspect(connection).has_table("schema_version"):
        return connection.execute(select(schema_version.c.version)).scalar() or 0
    if connection.dialect.name == "sqlite":
        return connection.exec_driver_sql("PRAGMA user_version").scalar()
    return 0


def connect(target: str | Path, *, readonly: bool = False) -> Connection:
    """Open the crawl database (a sqlite path or a postgresql:// URL), creating the schema when writing; refuse a
    newer schema version. Statements are ``sqlalchemy.text`` with ``:name`` parameters, which both dialects run."""
    try:
        connection = _engine(target, readonly).connect()
    except SQLAlchemyError as error:
        raise SchemaError(f"{display_name(target)}: cannot open the crawl database ({error.orig or error})") from error
    try:
        version = _stored_version(connection)
        connection.rollback()
    except SQLAlchemyError as error:
        connection.close()
        raise SchemaError(f"{display_name(target)}: not a crawl database ({error.orig or error})") from error
    if version > SCHEMA_VERSION:
        connection.close()
        raise SchemaError(f"{display_name(target)}: schema version {version} is newer than this project's "
                          f"{SCHEMA_VERSION}")
    if not readonly and version < SCHEMA_VERSION:
        _create(connection, target)
    return connection


def _create(connection: Connection, target: str | Path) -> None:
    """Create what is missing and record the version. Processes of a shared crawl starting at once race here: a
    table the other created between our check and our CREATE (sqlite creates tables outside the transaction) fails
    ours; the next attempt finds it there."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            with connection.begin():
                metadata.create_all(connection)
                add_missing_columns(connection, metadata.sorted_tables)
                connection.execute(delete(schema_version))
                connection.execute(insert(schema_version).values(version=SCHEMA_VERSION))
            return
        except SQLAlchemyError as error:
            if time.monotonic() > deadline:
                connection.close()
                raise SchemaError(f"{display_name(target)}: cannot create the schema ({error.orig or error})") \
                    from error
            time.sleep(0.05)


def add_missing_columns(connection: Connection, tables) -> None:
    """Add to ``tables`` of an older database the nullable columns and the indexes this version declares and they
    lack (``create_all`` creates missing tables, never missing columns), so that its old rows read NULL there."""
    inspector = inspect(connection)
    for table in tables:
        if not inspector.has_table(table.name):
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable and not column.primary_key:
                kind = column.type.compile(dialect=connection.dialect)
                connection.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
        for index in table.indexes:  # create_all skips an existing table's new indexes
            index.create(connection, checkfirst=True)


def record_image_store(connection: Connection, location: str, when: str) -> str | None:
    """Record ``location`` as where the crawl stores its photos (in the caller's transaction); returns the location
    recorded before, None for none."""
    before = connection.execute(select(image_store.c.location)).scalar()
    connection.execute(delete(image_store))
    connection.execute(insert(image_store).values(location=location, recorded_at=when))
    return before


def recorded_image_store(target: str | Path) -> str | None:
    """Where the crawl into ``target`` stored its photos, as it recorded; None for a database from before it did."""
    connection = connect(target, readonly=True)
    try:
        if not inspect(connection).has_table("image_store"):
            return None
        return connection.execute(select(image_store.c.location)).scalar()
    finally:
        connection.close()


def upsert_sql(table: str, columns: tuple[str, ...]) -> TextClause:
    """INSERT ... ON CONFLICT DO UPDATE (sqlite and PostgreSQL alike): a re-crawl refreshes a row and its
    last_seen, keeping first_seen."""
    names = ", ".join((*columns, "first_seen", "last_seen"))
    values = ", ".join(f":{c}" for c in (*columns, "now", "now"))
    updates = ", ".join(f"{c} = excluded.{c}" for c in (*columns[1:], "last_seen"))
    return text(f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT (id) DO UPDATE SET {updates}")


LEAF_DONE_SQL = text(
    "INSERT INTO leaves (category_id, total, reached, unreachable, completed_at, refresh_id) "
    "VALUES (:category_id, :total, :reached, :unreachable, :completed_at, :refresh_id) ON CONFLICT (category_id) "
    "DO UPDATE SET total = excluded.total, reached = excluded.reached, unreachable = excluded.unreachable, "
    "completed_at = excluded.completed_at, refresh_id = excluded.refresh_id")
# A leaf whose newest pages a refresh=new read: what the last whole read found stays, the refresh is recorded.
LEAF_REFRESHED_SQL = text(
    "INSERT INTO leaves (category_id, total, reached, unreachable, completed_at, refresh_id) "
    "VALUES (:category_id, :total, :reached, :unreachable, :completed_at, :refresh_id) ON CONFLICT (category_id) "
    "DO UPDATE SET completed_at = excluded.completed_at, refresh_id = excluded.refresh_id")


def completed_leaves(target: str | Path, max_per_category: int) -> set[str]:
    """Leaves a previous crawl finished for this cap, which a new run skips; none when there is no database yet.

    A leaf is recorded with what it held (``total``) and what the crawl wanted of it (``reached + unreachable``,
    that is ``min(total, the cap of that crawl)``): it is complete for a cap that wants no more, and a crawl with a
    larger cap reads it again."""
    if not is_url(target) and not Path(target).is_file():
        return set()
    connection = connect(target, readonly=True)
    try:
        if not inspect(connection).has_table("leaves"):  # a database from before the crawl created its tables
            return set()
        recorded = connection.execute(select(leaves.c.category_id, leaves.c.total, leaves.c.reached,
                                             leaves.c.unreachable))
        return {leaf for leaf, total, reached, unreachable in recorded
                if reached + unreachable >= min(total, max_per_category)}
    finally:
        connection.close()
