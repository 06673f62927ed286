"""The crawl database: its one schema, its version, and how to open it.

The crawler writes categories, products and leaves; ``modeling.train`` adds its experiments and their test-split
predictions beside them, which ``modeling.analyze`` reads.

WAL mode lets ``modeling`` read while a crawl writes. ``PRAGMA user_version`` holds ``SCHEMA_VERSION``; a database
written by a newer version of the project is refused rather than misread.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

SCHEMA_VERSION = 2  # 2: experiments and predictions
BUSY_TIMEOUT_S = 30.0  # how long a write waits for another process's transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS categories (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    parent_id   TEXT,                 -- NULL for the crawl's root
    is_leaf     INTEGER NOT NULL,
    path        TEXT NOT NULL,        -- ids from the crawl's root down, joined by '/'
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS products (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    description     TEXT,
    category_id     TEXT NOT NULL,    -- the first of the product's categories: its own leaf
    brand           TEXT,
    retailer        TEXT,
    price           REAL,
    currency        TEXT,
    in_stock        INTEGER,
    click_url       TEXT,             -- with the API key removed
    image_url       TEXT,             -- the size fetched (the largest offered)
    image_path      TEXT,             -- relative to IMAGES_STORE
    image_checksum  TEXT,             -- md5 of the stored file
    image_status    TEXT NOT NULL,    -- ok | none (no image offered) | missing (404) | failed | invalid
    image_error     TEXT,
    first_seen      TEXT NOT NULL,
    last_seen       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS products_category ON products (category_id);

-- Crawl state: a leaf is complete once every product of every page it served is stored (or dropped).
CREATE TABLE IF NOT EXISTS leaves (
    category_id   TEXT PRIMARY KEY,
    total         INTEGER NOT NULL,   -- what the API said the leaf holds
    reached       INTEGER NOT NULL,   -- distinct products the crawl could read
    unreachable   INTEGER NOT NULL,   -- total - reached where the API's result cap hid the rest
    completed_at  TEXT NOT NULL
);

-- One row per `modeling.train` run; parameters, library versions and metrics as JSON objects.
CREATE TABLE IF NOT EXISTS experiments (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    parameters  TEXT NOT NULL,
    versions    TEXT NOT NULL,
    metrics     TEXT NOT NULL,
    model_path  TEXT
);

-- Every held-out product an experiment predicted; a branch's columns are NULL where it had nothing to say
-- (no image branch, or no usable photo).
CREATE TABLE IF NOT EXISTS predictions (
    experiment_id       INTEGER NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    product_id          INTEGER NOT NULL,
    split               TEXT NOT NULL,    -- validation | test
    true_category       TEXT NOT NULL,
    predicted_category  TEXT NOT NULL,
    score               REAL NOT NULL,
    text_category       TEXT,
    text_score          REAL,
    image_category      TEXT,
    image_score         REAL,
    PRIMARY KEY (experiment_id, product_id)
);
"""

PRODUCT_COLUMNS = ("id", "name", "description", "category_id", "brand", "retailer", "price", "currency", "in_stock",
                   "click_url", "image_url", "image_path", "image_checksum", "image_status", "image_error")
CATEGORY_COLUMNS = ("id", "name", "parent_id", "is_leaf", "path")


class SchemaError(RuntimeError):
    """A database this version of the project cannot use."""


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the crawl database, creating the schema when writing; refuse a newer schema version."""
    path = Path(path)
    if readonly:
        if not path.is_file():
            raise SchemaError(f"{path}: no crawl database there (run `scrapy crawl shopstyle` first)")
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        # crawl processes sharing a crawl (REDIS_URL) on one machine write one file: wait for each other's commits
        connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    connection.row_factory = sqlite3.Row
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as error:
        connection.close()
        raise SchemaError(f"{path}: not a crawl database ({error})") from error
    if version > SCHEMA_VERSION:
        connection.close()
        raise SchemaError(f"{path}: schema version {version} is newer than this project's {SCHEMA_VERSION}")
    if not readonly:
        _use_wal(connection)
        connection.execute("PRAGMA synchronous=NORMAL")
        with connection:
            connection.executescript(SCHEMA)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return connection


def _use_wal(connection: sqlite3.Connection) -> None:
    """Switch to WAL (it stays in the file). The switch fails at once, without waiting, while another process is
    creating the same file: retry it for as long as other writes are waited for."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            connection.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def upsert_sql(table: str, columns: tuple[str, ...]) -> str:
    """INSERT ... ON CONFLICT DO UPDATE: a re-crawl refreshes a row and its last_seen, keeping first_seen."""
    names = ", ".join((*columns, "first_seen", "last_seen"))
    values = ", ".join(f":{c}" for c in (*columns, "now", "now"))
    updates = ", ".join(f"{c} = excluded.{c}" for c in (*columns[1:], "last_seen"))
    return f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT (id) DO UPDATE SET {updates}"


def completed_leaves(path: str | Path) -> set[str]:
    """Leaves a previous crawl finished, which a new run skips; none when there is no database yet."""
    if not Path(path).is_file():
        return set()
    connection = connect(path, readonly=True)
    try:
        return {row[0] for row in connection.execute("SELECT category_id FROM leaves")}
    except sqlite3.OperationalError:  # a database from before the crawl created its tables
        return set()
    finally:
        connection.close()
