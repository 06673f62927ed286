"""The crawl database's schema and version: newer ones refused, older sqlite files upgraded in place, anything
else named in a clear error. Real sqlite files."""

from __future__ import annotations

import importlib
import sqlite3
from contextlib import closing

import pytest

from shopstyle_spider import config, schema


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


def test_a_missing_default_database_names_the_demos_where_there_is_one(tmp_path, monkeypatch):
    """Right after ``make demo`` the default database is not there and the demo's is: the error says how to reach
    it. Not before the demo ran, and not for another database that is missing."""
    monkeypatch.setenv("SHOPSTYLE_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(schema.SchemaError, match="no crawl database there") as before_the_demo:
        schema.connect(config.crawl_db(), readonly=True)
    assert "demo" not in str(before_the_demo.value)
    demo = config.demo_dir() / "crawl.db"
    schema.connect(demo).close()
    with pytest.raises(schema.SchemaError) as after_the_demo:
        schema.connect(config.crawl_db(), readonly=True)
    assert str(after_the_demo.value) == (f"{config.crawl_db()}: no crawl database there (run `scrapy crawl shopstyle` "
                                         f"first) (the demo's is {demo}: pass --db {demo})")
    with pytest.raises(schema.SchemaError) as another:
        schema.connect(tmp_path / "another.db", readonly=True)
    assert "demo" not in str(another.value)
    monkeypatch.chdir(tmp_path)  # a path under the working folder is named as one would type it
    with pytest.raises(schema.SchemaError) as typed:
        schema.connect(config.crawl_db(), readonly=True)
    assert str(typed.value).endswith("(the demo's is data/demo/crawl.db: pass --db data/demo/crawl.db)")


@pytest.mark.parametrize("command", ["shopstyle_spider.changes", "modeling.models list", "modeling.filings export",
                                     "modeling.reviews export -", "modeling.analyze", "modeling.train",
                                     "modeling.audit", "modeling.review.__main__"])
def test_every_command_on_the_missing_default_database_names_the_demos(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SHOPSTYLE_DATA_DIR", str(tmp_path))
    demo = config.demo_dir() / "crawl.db"
    schema.connect(demo).close()
    module, *arguments = command.split()
    assert importlib.import_module(module).main(arguments) == 2
    assert f"no crawl database there (run `scrapy crawl shopstyle` first) (the demo's is {demo}: pass --db {demo})" \
        in capsys.readouterr().err
    assert not config.crawl_db().exists()  # reading it created nothing


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


def test_a_version_5_database_gains_the_image_store_record_keeping_its_rows(tmp_path):
    """Version 6 adds the image_store table: an older database opened for writing gets it, empty (modeling then
    falls back to data/images); read-only, it reads as no record."""
    path = tmp_path / "crawl.db"
    schema.connect(path).close()
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("INSERT INTO leaves (category_id, total, reached, unreachable, completed_at) "
                           "VALUES ('boots', 50, 50, 0, '2026-11-01T00:00:00')")
        connection.execute("DROP TABLE image_store")
        connection.execute("UPDATE schema_version SET version = 5")
    assert schema.recorded_image_store(path) is None
    with closing(schema.connect(path)) as connection, connection.begin():
        assert schema.record_image_store(connection, "/srv/photos", "2026-12-07T00:00:00+00:00") is None
    assert schema.recorded_image_store(path) == "/srv/photos"
    assert schema.completed_leaves(path, 1000) == {"boots"}
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchall() == [(6,)]
