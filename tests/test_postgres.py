"""The crawl database in PostgreSQL: a crawl stored there equals the sqlite one, a second run adds nothing, and
modeling trains from it and records its experiment there. A real PostgreSQL server (initdb in a temporary folder,
127.0.0.1, a free port), the real sandbox and `scrapy crawl` subprocesses."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from modeling import analysis, cycle, registry, train
from modeling.data import load_products
from shopstyle_spider import schema
from shopstyle_spider.runner import run_crawl
from shopstyle_spider.sandbox.process import free_port

from .apiclient import KEY
from .test_crawl import rows, snapshot

psycopg = pytest.importorskip("psycopg", reason="the scale-out extra is not installed: pip install '.[scale]'")
PASSWORD = "pg-secret-9f2c"  # trust authentication ignores it; the crawl must still keep it out of its logs


def _server_binaries() -> Path | None:
    initdb = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="module")
def postgres_url():
    binaries = _server_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL's server is not installed (.ci/run installs Debian's postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="crawl-postgres-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres account Debian creates
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres account to run PostgreSQL as")
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_user, binaries / "initdb", "-D", folder / "data", "-U", "crawler", "--auth=trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    server = subprocess.Popen([*as_user, binaries / "postgres", "-D", folder / "data", "-h", "127.0.0.1",
                               "-p", str(port), "-k", folder, "-F"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"postgresql://crawler:{PASSWORD}@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(f"host=127.0.0.1 port={port} user=crawler dbname=postgres").close()
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("PostgreSQL did not start")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_crawl(synthetic_sandbox, postgres_url, tmp_path_factory):
    images = tmp_path_factory.mktemp("pg-images")
    result = run_crawl(synthetic_sandbox.url, postgres_url, images, api_key=KEY, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return postgres_url, images, result


def test_a_crawl_into_postgresql_equals_the_sqlite_one(postgres_crawl, synthetic_crawl):
    url, images, result = postgres_crawl
    assert snapshot(url, images) == snapshot(*synthetic_crawl[:2])
    assert rows(url, "SELECT count(*) FROM leaves") == rows(synthetic_crawl[0], "SELECT count(*) FROM leaves")
    assert PASSWORD not in result.stderr and "crawler:***@127.0.0.1" in result.stderr


def test_a_second_run_into_postgresql_adds_nothing(synthetic_sandbox, postgres_crawl):
    url, images, _ = postgres_crawl
    again = run_crawl(synthetic_sandbox.url, url, images, api_key=KEY, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "this run: 0 products written" in again.stderr


def test_modeling_reads_postgresql_and_records_its_experiment_there(postgres_crawl, synthetic_crawl, tmp_path):
    url, images, _ = postgres_crawl
    pd.testing.assert_frame_equal(load_products(url, images, progress=False),
                                  load_products(synthetic_crawl[0], images, progress=False))
    code = train.main(["--db", url, "--images", str(images), "--image-backbone", "none", "--out", str(tmp_path),
                       "--min-products", "5", "--no-progress"])
    assert code == 0
    experiments = analysis.load_experiments(url)
    assert len(experiments) == 1 and PASSWORD not in experiments.iloc[0]["parameters"]["db"]
    predictions = analysis.load_predictions(url, "test")
    assert len(predictions) == rows(url, "SELECT count(*) FROM predictions WHERE split = 'test'")[0][0] > 0
    with closing(schema.connect(url)) as connection:
        assert schema.completed_leaves(url, 1000) and connection.dialect.name == "postgresql"
    # the model registry lives there too: the first model is in service; its folder's name carries no password
    assert registry.serving_path(url) == tmp_path / "1.joblib"
    assert PASSWORD not in registry.folder_name(url)


def test_a_row_postgresql_refuses_is_dropped_alone(synthetic_sandbox, postgres_url, tmp_path):
    """A CHECK constraint refuses two products of a batch in a database of their own: PostgreSQL aborts the whole
    transaction on the first, so the batch is written again row by row; the other 98 are stored, both leaves
    complete, the two are counted by their error."""
    from sqlalchemy import text

    from shopstyle_spider.sandbox import load_catalog

    with psycopg.connect(postgres_url.replace(f":{PASSWORD}", ""), autocommit=True) as connection:
        connection.execute("CREATE DATABASE refusing")
    url = postgres_url.rsplit("/", 1)[0] + "/refusing"
    catalog = load_catalog("synthetic", seed=7, products_per_category=50)
    refused = [catalog.query("boots")[3].id, catalog.query("pumps")[17].id]
    with closing(schema.connect(url)) as connection, connection.begin():
        connection.execute(text(f"ALTER TABLE products ADD CONSTRAINT refuse CHECK (id NOT IN ({refused[0]}, "
                                f"{refused[1]}))"))
    result = run_crawl(synthetic_sandbox.url, url, tmp_path / "images", api_key=KEY,
                       spider_args={"categories": "boots,pumps"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {row[0] for row in rows(url, "SELECT id FROM products")} == {
        p.id for leaf in ("boots", "pumps") for p in catalog.query(leaf)} - set(refused)
    assert rows(url, "SELECT category_id, reached FROM leaves ORDER BY 1") == [("boots", 50), ("pumps", 50)]
    assert "'shopstyle/dropped/store_CheckViolation': 2" in result.stderr
    assert "98 products written" in result.stderr and PASSWORD not in result.stderr


def test_a_refresh_into_postgresql_marks_what_left_and_records_what_changed(postgres_url, tmp_path):
    """The refresh's tables and queries on PostgreSQL: a crawl as of a day, refresh=all a month later, in a database
    of its own."""
    from datetime import date

    from shopstyle_spider.sandbox import SandboxProcess, load_catalog

    with psycopg.connect(postgres_url.replace(f":{PASSWORD}", ""), autocommit=True) as connection:
        connection.execute("CREATE DATABASE refreshed")
    url = postgres_url.rsplit("/", 1)[0] + "/refreshed"
    day, later = date(2025, 6, 13), date(2025, 7, 13)
    catalog = ("--seed", "5", "--products-per-category", "10", "--rate-limit", "0")
    for when, args in ((day, {}), (later, {"refresh": "all"})):
        with SandboxProcess(*catalog, as_of=when) as sandbox:
            result = run_crawl(sandbox.url, url, tmp_path / "images", api_key=KEY, spider_args=args, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    before, after = ({p.id for p in load_catalog("synthetic", seed=5, products_per_category=10, as_of=when)
                      .products()} for when in (day, later))
    assert {r[0] for r in rows(url, "SELECT id FROM products WHERE gone_at IS NOT NULL")} == before - after
    assert {r[0] for r in rows(url, "SELECT product_id FROM product_changes WHERE field = 'added'")} == after - before
    assert "refresh 1 (all) finished" in result.stderr


def test_cycles_on_two_machines_exclude_each_other_through_the_database(postgres_url, tmp_path, monkeypatch):
    """Cron on two machines, one PostgreSQL database: their lock files (each in its own models folder, as on two
    machines) cannot see each other, so the database's advisory lock refuses the second cycle, naming the first; and
    the server drops it when the holder dies, however it dies."""
    holder_env = {**os.environ, "SHOPSTYLE_DATA_DIR": str(tmp_path / "machine-a")}
    monkeypatch.setenv("SHOPSTYLE_DATA_DIR", str(tmp_path / "machine-b"))
    with subprocess.Popen([sys.executable, "-c", "import sys; from modeling.cycle import cycle_lock\n"
                           f"with cycle_lock({postgres_url!r}):\n print('held', flush=True); sys.stdin.read()"],
                          env=holder_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout.readline() == "held\n"
        refused = f"modeling.cycle pid {holder.pid} on .* since .*advisory lock"
        with pytest.raises(cycle.CycleLocked, match=refused), cycle.cycle_lock(postgres_url):
            pass
        holder.kill()
    deadline = time.monotonic() + 30  # the server ends the dead holder's session as soon as it reads its socket's end
    while True:
        try:
            with cycle.cycle_lock(postgres_url):  # taken over
                break
        except cycle.CycleLocked:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert PASSWORD not in str(cycle.lock_path(postgres_url))
