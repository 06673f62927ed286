"""The weekly cycle (``python -m modeling.cycle``) on a real sandbox that changes over time (``--as-of``): a crawl
and a text-only model at D, the cycle a week later; a cycle killed with SIGKILL in the middle of a step and run
again; the lock refusing a second cycle. Real sandboxes, real sqlite files, real models, real processes."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from modeling import cycle, filings, identity, predict, registry, reviews, store, train
from modeling.filing import batch_target
from shopstyle_spider import schema
from shopstyle_spider.config import PROJECT_ROOT
from shopstyle_spider.runner import run_crawl
from shopstyle_spider.sandbox import SandboxProcess, load_catalog

from .apiclient import KEY
from .review_fixtures import copy_db

SEED, PER_LEAF = 7, 50
D = date(2025, 6, 13)
WEEK = D + timedelta(days=7)
CATALOG = ("--seed", str(SEED), "--products-per-category", str(PER_LEAF), "--rate-limit", "0")
TARGET = "0.95"  # the synthetic catalog is small: at 95% its parent level files (its leaf level never does)


def on_sale(day: date) -> set[int]:
    return {p.id for p in load_catalog("synthetic", seed=SEED, products_per_category=PER_LEAF, as_of=day).products()}


@pytest.fixture(scope="module")
def crawl_zero(tmp_path_factory):
    """A crawl as of D, no model trained on it (a database before its first cycle); only ever copied."""
    folder = tmp_path_factory.mktemp("crawl0")
    db, images = folder / "crawl.db", folder / "images"
    with SandboxProcess(*CATALOG, as_of=D) as sandbox:
        crawl = run_crawl(sandbox.url, db, images, api_key=KEY, timeout=300)
    assert crawl.returncode == 0, crawl.stderr[-3000:]
    return db, images


@pytest.fixture(scope="module")
def week_zero(crawl_zero, tmp_path_factory):
    """The crawl as of D and its text-only model in service (5 folds, so the card's thresholds rest on every
    training product); each test copies the database and photos (the model file is only read)."""
    folder = tmp_path_factory.mktemp("week0")
    db, images = copy_db(crawl_zero[0], folder / "crawl.db"), crawl_zero[1]  # a text-only training reads no photo
    assert train.main(["--db", str(db), "--images", str(images), "--image-backbone", "none", "--out",
                       str(folder / "models"), "--min-products", "5", "--cv", "5", "--no-progress"]) == 0
    return db, images


def copied(source: tuple[Path, Path], tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A copy of a crawl (database and photos) under this test's folder, where the cycle's outputs (a model it
    trains included) go too; the key in the environment, as the cycle takes it."""
    monkeypatch.setenv("SHOPSTYLE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SHOPSTYLE_API_KEY", KEY)
    shutil.copytree(source[1], tmp_path / "images")
    return copy_db(source[0], tmp_path / "crawl.db"), tmp_path / "images"


@pytest.fixture
def project(week_zero, tmp_path, monkeypatch):
    """A copy of week zero, its model in service."""
    return copied(week_zero, tmp_path, monkeypatch)


def cycle_command(db: Path, images: Path, api_url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "modeling.cycle", "--db", str(db), "--images", str(images), "--api-url", api_url,
            "--target-accuracy", TARGET, "--image-backbone", "none", "--no-progress", *extra]


def run_cycle(*command_args, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cycle_command(*command_args, **kwargs), cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def table(db: Path, query) -> list:
    with closing(store.connect(db, readonly=True)) as connection:
        return [tuple(row) for row in connection.execute(query)]


def crawled(db: Path) -> dict[int, tuple]:
    """Product id -> (category, photo checksum, gone) as the crawl database holds them."""
    p = schema.products
    return {r[0]: r[1:] for r in table(db, select(p.c.id, p.c.category_id, p.c.image_checksum, p.c.gone_at))}


def test_a_week_later_the_cycle_files_what_arrived_and_queues_the_rest(week_zero, project):
    db, images = project
    before = crawled(week_zero[0])
    with SandboxProcess(*CATALOG, as_of=WEEK) as sandbox:
        keyless = {k: v for k, v in os.environ.items() if k != "SHOPSTYLE_API_KEY"}  # the crawl refuses to start
        failed = subprocess.run(cycle_command(db, images, sandbox.url), cwd=PROJECT_ROOT, env=keyless,
                                capture_output=True, text=True, timeout=600)
        assert failed.returncode == 1
        assert (f"cycle 1 stopped at refresh: no API key for the refresh's crawl of {sandbox.url}: set "
                "SHOPSTYLE_API_KEY in the cycle's environment") in failed.stderr  # the cause, and how to give one
        assert table(db, select(store.cycles.c.status)) == [("failed",)]
        wrong = subprocess.run(cycle_command(db, images, sandbox.url), cwd=PROJECT_ROOT, capture_output=True,
                               text=True, timeout=600, env={**keyless, "SHOPSTYLE_API_KEY": "not-the-sandbox-key"})
        # the crawl's own cause (its ERROR line), not the end of its log (its summary), and never the key
        assert wrong.returncode == 1
        assert ("cycle 1 stopped at refresh: scrapy exited 1: the API rejected the key: 403 InvalidPartnerId: The "
                "pid parameter is not a valid API key.") in wrong.stderr
        assert "not-the-sandbox-key" not in wrong.stdout + wrong.stderr
        assert "not-the-sandbox-key" not in repr(table(db, select(store.cycles, store.cycle_steps)
                                                          .join(store.cycle_steps)))
        first = run_cycle(db, images, sandbox.url)  # the key given: the same cycle resumes
        again = run_cycle(db, images, sandbox.url)  # nothing new since: nothing predicted twice
    for number, step in enumerate(cycle.STEPS, start=1):
        assert f"{number}/5 {step}: " in first.stdout  # each step's summary on the way
    assert "cycle 1 resumed" in first.stdout and "note:" not in first.stdout  # the model makes the promise asked
    assert "refresh 1 (new) finished" in first.stderr  # the crawl's own summary, passed on

    after = crawled(db)
    arrived = after.keys() - before.keys()
    assert arrived and arrived <= on_sale(WEEK) - on_sale(D)  # what the refresh met of the week's arrivals
    changed = {p for p in before if after[p][2] is None and after[p][:2] != before[p][:2]}  # re-filed, new photo
    rows = table(db, select(store.filings.c.product_id, store.filings.c.decision, store.filings.c.model_id,
                            store.filings.c.category))
    assert sorted(r[0] for r in rows) == sorted(arrived | changed)  # each filed once, nothing else
    decisions = {r[0]: r[1] for r in rows}
    assert {r[2] for r in rows} == {1}  # by the model in service
    queued = {r[0] for r in table(db, select(store.filing_queue.c.product_id))}
    assert queued == {p for p, d in decisions.items() if d == "review"} and queued
    filed = {p for p, d in decisions.items() if d != "review"}
    assert filed, "at 95% the synthetic catalog's parent level files"
    assert f"{len(rows)} products predicted at 95.0%" in first.stdout

    assert table(db, select(store.cycles.c.id, store.cycles.c.status)) == [(1, "done"), (2, "done")]
    steps = table(db, select(store.cycle_steps.c.cycle_id, store.cycle_steps.c.step, store.cycle_steps.c.status))
    assert [s for s in steps if s[0] == 1] == [(1, "refresh", "failed"), (1, "refresh", "failed"),
                                               (1, "refresh", "done"), (1, "predict", "done"), (1, "audit", "done"),
                                               (1, "retrain", "skipped"), (1, "report", "done")]
    assert "0 products predicted" in again.stdout and (2, "audit", "skipped") in steps
    assert len(table(db, select(store.filings.c.id))) == len(rows)

    out = io.StringIO()
    with closing(store.connect(db, readonly=True)) as connection:
        assert filings.export_csv(connection, out, ["leaf", "parent"]) == len(filed)
    exported = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {int(r["product_id"]) for r in exported} == filed
    assert {(r["model_id"], r["decision"]) for r in exported} == {("1", decisions[p]) for p in filed}
    command = subprocess.run([sys.executable, "-m", "modeling.filings", "export", "--db", str(db), "--decisions",
                              "review"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert command.returncode == 0, command.stderr
    assert {int(r["product_id"]) for r in csv.DictReader(io.StringIO(command.stdout))} == queued


def children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
            for c in (task / "children").read_text().split()]


def test_a_cycle_killed_mid_step_resumes_and_loses_nothing(project):
    """kill -9 while the retraining runs (its training process seen alive); the dead cycle's step stays 'running',
    its training dies with it, the model in service and every decision are as they were, and the next run resumes
    at that step."""
    db, images = project
    with closing(store.connect(db)) as connection, connection.begin():
        someone = reviews.record_decision(connection, decision="skinny-jeans", source="manual", reviewer="ann",
                                          product_id=min(on_sale(D)))
    with SandboxProcess(*CATALOG, as_of=WEEK) as sandbox:
        options = ("--retrain", "always", "--audit", "never", "--batch-promise", "50")
        process = subprocess.Popen(cycle_command(db, images, sandbox.url, *options), cwd=PROJECT_ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        training = None
        deadline = time.monotonic() + 300
        while training is None and process.poll() is None and time.monotonic() < deadline:
            running = table(db, select(store.cycle_steps.c.step).where(store.cycle_steps.c.status == "running")) \
                if db.is_file() else []
            if running == [("retrain",)]:
                training = next((c for c in children(process.pid)
                                 if b"modeling.train" in Path(f"/proc/{c}/cmdline").read_bytes()), None)
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL and training is not None  # killed while training, not after
        deadline = time.monotonic() + 60
        while Path(f"/proc/{training}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{training}").exists() or b"zombie" in Path(f"/proc/{training}/status").read_bytes()

        steps = table(db, select(store.cycle_steps.c.step, store.cycle_steps.c.status, store.cycle_steps.c.pid))
        assert steps[-1] == ("retrain", "running", process.pid)  # the step it died in
        before = {name: table(db, select(t)) for name, t in
                  (("filings", store.filings), ("reviews", store.reviews), ("queue", store.filing_queue),
                   ("promotions", store.promotions))}
        assert before["filings"] and [r[0] for r in before["reviews"]] == [someone]
        assert table(db, select(store.experiments.c.id)) == [(1,)]  # the killed training recorded nothing

        resumed = run_cycle(db, images, sandbox.url, *options)
    assert "cycle 1 resumed" in resumed.stdout
    assert "note: model 1, in service, promises each level's accuracy; --batch-promise asks for every batch of 50 " \
           "filed products" in resumed.stdout
    for step in ("refresh", "predict", "audit"):
        assert f"{step}: done before" in resumed.stdout
    for name, t in (("filings", store.filings), ("reviews", store.reviews), ("queue", store.filing_queue)):
        assert table(db, select(t)) == before[name], f"{name} changed"
    assert table(db, select(store.promotions))[:len(before["promotions"])] == before["promotions"]
    assert table(db, select(store.experiments.c.id)) == [(1,), (2,)]  # trained once, by the resumed step
    assert "4/5 retrain: --retrain always: model 2" in resumed.stdout
    card = json.loads(next(e for e in registry.entries(db) if e.experiment_id == 2).card_path.read_text())
    assert card["guarantee"]["batch"] == 50  # the cycle's --batch-promise reached the retraining
    assert card["filing"]["0.98"]["level_target"] == batch_target(0.98, 50) > 0.98
    with closing(store.connect(db, readonly=True)) as connection:
        assert registry.in_service(connection) in (1, 2)
        assert reviews.in_force(connection)[identity.crawled(min(on_sale(D)))].decision == "skinny-jeans"
    steps = table(db, select(store.cycle_steps.c.step, store.cycle_steps.c.status))
    assert steps.count(("retrain", "running")) == 1 and ("retrain", "done") in steps
    assert table(db, select(store.cycles.c.status)) == [("done",)]


def test_the_lock_refuses_a_second_cycle_and_a_dead_holders_lock_is_taken_over(tmp_path):
    db = tmp_path / "crawl.db"
    with cycle.cycle_lock(db):
        refused = subprocess.run([sys.executable, "-m", "modeling.cycle", "--db", str(db)], cwd=PROJECT_ROOT,
                                 capture_output=True, text=True, timeout=120,
                                 env={**os.environ, "SHOPSTYLE_API_KEY": KEY})  # else refused sooner, for no key
    assert refused.returncode == 3
    assert f"another cycle is running on {db} (pid {os.getpid()} since " in refused.stderr
    assert not db.exists()  # refused before touching the database

    with subprocess.Popen([sys.executable, "-c", "import sys; from modeling.cycle import cycle_lock\n"
                           f"with cycle_lock({str(db)!r}):\n print('held', flush=True); sys.stdin.read()"],
                          cwd=PROJECT_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(cycle.CycleLocked, match=f"pid {holder.pid} since"), cycle.cycle_lock(db):
            pass
        holder.kill()
    assert f"pid {holder.pid}" in cycle.lock_path(db).read_text()  # the dead holder's file is still there
    with cycle.cycle_lock(db) as path:  # and taken over
        assert path.read_text().startswith(f"pid {os.getpid()} ")


def test_a_first_cycle_trains_the_first_model_after_the_refresh_and_files_with_it(crawl_zero, tmp_path, monkeypatch):
    """A crawl with no model in service: the cycle refreshes it, trains the first model on it (put in service as a
    database's first is), files what the refresh met with that model, and does not train again at retrain."""
    db, images = copied(crawl_zero, tmp_path, monkeypatch)
    before = crawled(db)
    with SandboxProcess(*CATALOG, as_of=WEEK) as sandbox:
        result = run_cycle(db, images, sandbox.url, "--audit", "never", "--cv", "3")
    assert ("2/5 predict: no model in service, so one trained first: model 1 is in service (the database's first "
            "model), replacing no model; ") in result.stdout
    with closing(store.connect(db, readonly=True)) as connection:
        assert registry.in_service(connection) == 1
    assert table(db, select(store.experiments.c.id, store.experiments.c.name)) == [(1, "cycle 1 (first model)")]
    after = crawled(db)
    arrived = after.keys() - before.keys()
    changed = {p for p in before if after[p][2] is None and after[p][:2] != before[p][:2]}
    rows = table(db, select(store.filings.c.product_id, store.filings.c.decision, store.filings.c.model_id))
    assert arrived and sorted(r[0] for r in rows) == sorted(arrived | changed)  # what the refresh met, each once
    assert {r[2] for r in rows} == {1} and any(r[1] != "review" for r in rows)  # filed by the model it trained
    steps = table(db, select(store.cycle_steps.c.step, store.cycle_steps.c.status))
    assert ("retrain", "skipped") in steps and table(db, select(store.cycles.c.status)) == [("done",)]


def test_the_cycle_refuses_what_it_cannot_do_before_touching_anything(crawl_zero, tmp_path, capsys, monkeypatch):
    """--retrain never on a database with no model in service would crawl and have nothing to file with: refused,
    naming the command that trains the first model; a key given as a spider argument would be stored in the
    database with the cycle's options: refused, and not echoed. Neither creates a database or a cycle."""
    db = copy_db(crawl_zero[0], tmp_path / "crawl.db")
    with closing(sqlite3.connect(db)) as connection:
        before = list(connection.iterdump())
    assert cycle.main(["--db", str(db), "--images", str(crawl_zero[1]), "--retrain", "never"]) == 2
    error = capsys.readouterr().err
    assert f"{db} has no model in service and --retrain never" in error
    assert f"python -m modeling.train --db {db} --images {crawl_zero[1]}" in error
    with closing(sqlite3.connect(db)) as connection:
        assert list(connection.iterdump()) == before  # no cycle opened, nothing written
    fresh = tmp_path / "fresh" / "crawl.db"
    monkeypatch.delenv("SHOPSTYLE_API_KEY", raising=False)
    assert cycle.main(["--db", str(fresh)]) == 2  # no key for a first cycle: nothing created
    assert "no API key for a first cycle" in capsys.readouterr().err and not fresh.parent.exists()
    monkeypatch.setenv("SHOPSTYLE_API_KEY", "secret-key")
    assert cycle.main(["--db", str(fresh), "--retrain", "never"]) == 2
    assert cycle.main(["--db", str(fresh), "--crawl-arg", "api_key=secret-key"]) == 2
    error = capsys.readouterr().err
    assert "--crawl-arg api_key=...: refused" in error and "SHOPSTYLE_API_KEY" in error
    assert "secret-key" not in error and not fresh.parent.exists()
    for refused in (["--crawl-arg", "api_key:secret-key"], ["--api-url", "http://127.0.0.1:9/api/v2?pid=secret-key"]):
        assert cycle.main(["--db", str(fresh), *refused]) == 2
        error = capsys.readouterr().err
        assert "secret-key" not in error and ("NAME=VALUE" in error or "carries the API key" in error), error
    assert not fresh.parent.exists()


def test_a_product_filed_twice_keeps_both_rows_and_the_newest_is_in_force(review_setup, tmp_path):
    """predict --input --queue DB stores a file's products under their identity; filed again (leaf level only this
    time), each keeps both rows and the export shows the newest; a record that could not be read is never stored."""
    db = copy_db(review_setup.db, tmp_path / "crawl.db")
    common = ["--model", str(review_setup.model), "--input", str(review_setup.new_products), "--queue", str(db),
              "--photo-store", str(tmp_path / "photos"), "--no-progress"]
    assert predict.main([*common, "--target-accuracy", TARGET, "--output", str(tmp_path / "first.jsonl")]) == 0
    assert predict.main([*common, "--target-accuracy", "0.98", "--levels", "leaf", "--output",
                         str(tmp_path / "second.jsonl")]) == 0
    second = [json.loads(line) for line in (tmp_path / "second.jsonl").read_text().splitlines()]
    decided = {line["id"]: line for line in second if "decision" in line}
    assert "bad" not in decided and len(decided) == 5
    rows = table(db, select(store.filings.c.id, store.filings.c.subject, store.filings.c.decision,
                            store.filings.c.model_id, store.filings.c.target))
    name = review_setup.new_products.name
    assert sorted(r[1] for r in rows) == sorted(2 * [identity.filed(name, i) for i in decided])
    assert {r[3] for r in rows} == {1}  # the registered model that filed them
    assert [r[4] for r in rows] == 5 * [0.95] + 5 * [0.98]
    assert predict.main([*common, "--target-accuracy", "0.98", "--no-filings", "--output",
                         str(tmp_path / "third.jsonl")]) == 0
    assert len(table(db, select(store.filings.c.id))) == 10  # --no-filings stores nothing
    assert all(r[2] != "parent" for r in rows[5:])  # --levels leaf: the second filing never at the parent
    out = io.StringIO()
    with closing(store.connect(db, readonly=True)) as connection:
        assert filings.export_csv(connection, out, ["leaf", "parent", "review"]) == 5
    exported = {r["subject"]: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    for record_id, line in decided.items():
        row = exported[identity.filed(name, record_id)]
        assert row["decision"] == line["decision"] and row["product_id"] == "" and row["target"] == "0.98"
        assert row["category"] == line["category"] and float(row["score"]) == line["score"]
    # the command takes --db before or after its subcommand (people type both): the same CSV
    before, after = tmp_path / "before.csv", tmp_path / "after.csv"
    everything = ["--decisions", "leaf,parent,review"]
    assert filings.main(["--db", str(db), "export", "--out", str(before), *everything]) == 0
    assert filings.main(["export", "--db", str(db), "--out", str(after), *everything]) == 0
    assert before.read_bytes() == after.read_bytes()
    with before.open(encoding="utf-8", newline="") as written:
        assert list(csv.DictReader(written)) == list(csv.DictReader(io.StringIO(out.getvalue())))


def test_the_refresh_reads_every_product_again_when_the_last_full_read_is_old(project):
    """--refresh auto: refresh=new while every product was read within --full-refresh-days, refresh=all once the
    last full read (a finished refresh=all, else the first crawl) is older, so a label the feed fixed reaches the
    crawl; --refresh new|all as given."""
    db, _ = project
    assert cycle.refresh_mode(db, "auto", 28)[0] == "new"  # the crawl is minutes old
    old = (datetime.now(UTC) - timedelta(days=30)).isoformat(timespec="seconds")
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE products SET first_seen = ?", (old,))
    mode, why = cycle.refresh_mode(db, "auto", 28)
    assert mode == "all" and why == "every product last read 30 days ago (--full-refresh-days 28)"
    assert cycle.refresh_mode(db, "auto", 0)[0] == "new" and cycle.refresh_mode(db, "new", 28)[0] == "new"
    with sqlite3.connect(db) as connection:  # a full read that did not finish does not count
        connection.execute("INSERT INTO refreshes (mode, started_at) VALUES ('all', ?)", (cycle.now(),))
    assert cycle.refresh_mode(db, "auto", 28)[0] == "all"
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE refreshes SET finished_at = ?", (cycle.now(),))
    assert cycle.refresh_mode(db, "auto", 28)[0] == "new" and cycle.refresh_mode(db, "all", 28)[0] == "all"
