"""The crawl database's schema and version: newer ones refused, older sqlite files upgraded in place, anything
else named in a clear error. Real sqlite files."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from shopstyle_spider import schema


def test_a_database_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "crawl.db"
    schema.connect(path).close()
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("UPDATE schema_version SET version = ?", (schema.SCHEMA_VERSION + 1,))
    for readonly in (True, False):
        with pytest.raises(schema.SchemaError, match="newer than this project's"):
            schema.connect(path, readonly=readonly)


def test_a_version_2_sqlite_file_is_upgraded_keeping_its_rows(tmp_path):
    path = tmp_path / "crawl.db"
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("CREATE TABLE leaves (category_id TEXT PRIMARY KEY, total INTEGER NOT NULL, reached INTEGER "
                           "NOT NULL, unreachable INTEGER NOT NULL, completed_at TEXT NOT NULL)")
        connection.execute("INSERT INTO leaves VALUES ('boots', 50, 50, 0, '2026-11-01T00:00:00')")
        connection.execute("PRAGMA user_version = 2")
    schema.connect(path).close()
    assert schema.completed_leaves(path, 1000) == {"boots"}
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchall() == [(schema.SCHEMA_VERSION,)]
        assert {"categories", "products", "leaves"} <= {
            row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_what_is_not_a_crawl_database_is_named(tmp_path):
    text_file = tmp_path / "notes.db"
    text_file.write_text("not a database, just words " * 100)
    with pytest.raises(schema.SchemaError, match="notes.db: .*not a database"):
        schema.connect(text_file)
    with pytest.raises(schema.SchemaError, match="no crawl database there"):
        schema.connect(tmp_path / "absent.db", readonly=True)
    with pytest.raises(schema.SchemaError, match="a sqlite path or a postgresql:// URL"):
        schema.connect("mysql://crawler:secret@localhost/catalog")


def test_a_url_is_shown_without_its_password():
    url = "postgresql://crawler:s3cret@db.internal:5432/catalog"
    assert schema.display_name(url) == "postgresql://crawler:***@db.internal:5432/catalog"
    assert schema.password_of(url) == "s3cret"
    assert schema.location(url) == url and schema.location("data/crawl.db").name == "crawl.db"


def test_a_version_4_database_gets_the_refresh_columns_keeping_its_rows(tmp_path):
    """Version 5 adds columns to existing tables: create_all makes missing tables only, so they are added."""
    path = tmp_path / "crawl.db"
    schema.connect(path).close()
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("INSERT INTO leaves (category_id, total, reached, unreachable, completed_at) "
                           "VALUES ('boots', 50, 50, 0, '2026-11-01T00:00:00')")
        for table in ("products", "categories"):
            connection.execute(f"ALTER TABLE {table} DROP COLUMN gone_at")
        for table in ("products", "categories", "leaves"):
            connection.execute(f"ALTER TABLE {table} DROP COLUMN refresh_id")
        connection.execute("DROP TABLE product_changes")
        connection.execute("UPDATE schema_version SET version = 4")
    schema.connect(path).close()
    assert schema.completed_leaves(path, 1000) == {"boots"}
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT category_id, refresh_id FROM leaves").fetchall() == [("boots", None)]
        assert {"gone_at", "refresh_id"} <= {row[1] for row in connection.execute("PRAGMA table_info(products)")}
        assert connection.execute("SELECT count(*) FROM product_changes").fetchone() == (0,)
