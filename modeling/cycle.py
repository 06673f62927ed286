"""``python -m modeling.cycle``: the weekly cycle, one command a cron line can run.

Steps, each the command a person would type, in a subprocess, its summary printed as it ends:

1. refresh: ``scrapy crawl shopstyle -a refresh=new`` into the database (``shopstyle_spider.runner``); every
   ``--full-refresh-days`` (28) ``refresh=all`` instead, which also meets what changed among the products already
   crawled: a product the feed re-filed (a label fixed: the model learns from it, and it is filed again), one gone.
   The key comes from ``SHOPSTYLE_API_KEY`` only (never an option: the cycle stores its options in the database);
2. predict: the products first seen or changed since the last cycle, with the model in service, filed at the
   target (``--target-accuracy``), the rest queued for a person; every decision stored in ``filings``. A database
   with no model in service (a first cycle) has its first model trained here, on what the refresh crawled, and put
   in service (as ``modeling.train`` does a database's first model), rather than a crawl that ends in nothing to
   file with; with ``--retrain never`` the cycle refuses to start instead, naming the command that trains one;
3. audit: the crawl's labels, text only (out-of-fold probabilities need the whole crawl, so it audits every
   product, what changed among them; a decided product is never flagged again), when anything changed;
4. retrain: when ``--retrain-after`` decisions were made since the model in service was trained, or drift
   (``modeling.drift``) calls for it: ``modeling.train --promote if-better``;
5. report: ``modeling.analyze --plots``.

Safe from cron. One cycle at a time: an exclusive ``flock`` on a lock file beside the database (for PostgreSQL, in
its models folder). The kernel drops the lock when its process dies, however it dies, so a dead cycle's lock is
taken over by the next run with no stale-pid guessing; the file's content (pid, start) only names the holder in the
refusal. A PostgreSQL database may be cycled by cron on several machines, whose files cannot see each other: there
the cycle also holds a session advisory lock on the database itself (``pg_try_advisory_lock``), which the server
drops when the holder's connection ends, however it ends; the holder is named by its connection's
``application_name``.

Each cycle and each of its steps is a row (``cycles``, ``cycle_steps``): a step that fails (or a cycle killed
mid-step) leaves the cycle unfinished, and the next run resumes it from that step, with the same ``since``. Nothing
a step does is lost or undone by a failure after it: predict appends filings and queue rows a chunk at a time (a
resumed predict skips what this model already filed), a person's decisions are only read, and a model is put in
service only at the end of a training that compared it with the one in service. The steps' processes die with the
cycle (Linux ``PR_SET_PDEATHSIG``), so a killed cycle leaves no crawl or training running behind it.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import func, insert, select, text, update

from shopstyle_spider import cli, config, schema, settings
from shopstyle_spider.changes import since_argument
from shopstyle_spider.redaction import API_KEY_PARAMETER, redact_url
from shopstyle_spider.runner import LIBRARY_NOISE, crawl_command, crawl_env, crawl_summary

from . import filings, registry, reviews, store
from .filing import TARGETS, batch_argument, levels_argument
from .photo_store import images_location

__all__ = ["STEPS", "CycleLocked", "lock_path", "main"]

STEPS = ("refresh", "predict", "audit", "retrain", "report")
PR_SET_PDEATHSIG = 1  # linux/prctl.h
ADVISORY_LOCK_KEY = 727_011_927  # an arbitrary constant: the cycles' lock among a PostgreSQL database's advisory locks


class CycleLocked(RuntimeError):
    """Another cycle holds this database's lock."""


class StepFailed(RuntimeError):
    """A step's command failed: the cycle stops there, and the next run resumes it."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def lock_path(db: str | Path) -> Path:
    """Beside a sqlite database; for PostgreSQL (no file of its own here), in the database's models folder."""
    if schema.is_url(db):
        return registry.models_folder(db) / "cycle.lock"
    return Path(db).with_name(Path(db).name + ".cycle.lock")


@contextmanager
def cycle_lock(db: str | Path):
    """Hold the database's cycle lock, or raise CycleLocked naming its holder."""
    path = lock_path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "holder unknown"
            raise CycleLocked(f"another cycle is running on {schema.display_name(db)} ({holder}; lock {path})"
                              ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} since {now()}\n")
        f.flush()
        with database_lock(db):
            yield path


@contextmanager
def database_lock(db: str | Path):
    """On PostgreSQL, hold the database's cycle advisory lock (cycles on other machines), or raise CycleLocked naming
    the holder; nothing to do for sqlite, whose file lock is the database's own machine's."""
    if not schema.is_url(db):
        yield
        return
    holder = f"modeling.cycle pid {os.getpid()} on {socket.gethostname()} since {now()}"
    with closing(store.connect(db, readonly=True)) as connection:
        with connection.begin():  # a session lock: it outlives this transaction, held until the connection ends
            connection.execute(select(func.set_config("application_name", holder, False)))
            taken = connection.execute(select(func.pg_try_advisory_lock(ADVISORY_LOCK_KEY))).scalar()
        if not taken:
            with connection.begin():
                other = connection.execute(text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE "
                    "l.locktype = 'advisory' AND l.granted AND l.objid = :key"), {"key": ADVISORY_LOCK_KEY}).scalar()
            raise CycleLocked(f"another cycle is running on {schema.display_name(db)} ({other or 'holder unknown'}; "
                              "PostgreSQL advisory lock)")
        try:
            yield
        finally:
            with connection.begin():
                connection.execute(select(func.pg_advisory_unlock(ADVISORY_LOCK_KEY)))


def _die_with_parent() -> None:
    """In the child before exec: killed when the cycle dies (Linux), so no step outlives a killed cycle."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def not_noise(line: str) -> bool:
    return not LIBRARY_NOISE.match(line)


def log_tail(errors: list[str]) -> str:
    """Why a command failed, by default: the end of its error output (where the project's commands say it)."""
    return "\n".join(errors[-5:]).strip()


def crawl_failure(errors: list[str]) -> str:
    """Why a crawl failed: its log's ERROR lines (a rejected key, a category tree it could not read, a database it
    could not write), not the end of its log, which is the crawl's summary whatever stopped it."""
    causes = dict.fromkeys(line.split("] ERROR: ", 1)[1].strip() for line in errors if "] ERROR: " in line)
    return "; ".join(list(causes)[-3:]) or log_tail(errors)


def run_command(command: list[str], env: dict[str, str] | None = None, relayed: Callable[[str], bool] = not_noise,
                explain: Callable[[list[str]], str] = log_tail) -> tuple[list[str], list[str]]:
    """Run a step's command: the lines of its standard error that ``relayed`` keeps passed on as they come (its
    progress), its standard output collected; (output lines, error lines), or StepFailed with what ``explain`` finds
    in its error output. Both pipes are read at once (a thread for standard error), so neither can fill and stall
    the step."""
    with subprocess.Popen(command, cwd=config.PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, errors="replace", preexec_fn=_die_with_parent) as process:
        errors: list[str] = []

        def relay() -> None:
            for line in process.stderr:
                errors.append(line.rstrip("\n"))
                if relayed(line):
                    sys.stderr.write(line)
                    sys.stderr.flush()

        reader = threading.Thread(target=relay, daemon=True)
        reader.start()
        lines = [line.rstrip("\n") for line in process.stdout]
        reader.join()
    if process.returncode != 0:
        why = explain(errors)
        raise StepFailed(f"{Path(command[2] if command[1] == '-m' else command[0]).name} exited "
                         f"{process.returncode}" + (f": {why}" if why else ""))
    return lines, errors


def module(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", name, *args]


@dataclass
class Cycle:
    """What the steps need: the cycle's row and how it was started."""
    id: int
    started_at: str
    since: str
    options: dict
    db: str | Path


def open_cycle(db: str | Path, options: dict, since: str | None) -> tuple[Cycle, bool]:
    """The unfinished cycle to resume (True: its window and finished steps kept, run with this run's options), or a
    new one (False) whose ``since`` is ``since``, else when the last finished predict step began, else its own start
    (only what its refresh meets is new)."""
    with closing(store.connect(db)) as connection, connection.begin():
        table = store.cycles
        row = connection.execute(select(table).where(table.c.status != "done").order_by(table.c.id.desc())
                                 .limit(1)).mappings().first()
        if row is not None:
            # this run's options: a step that failed for a wrong one (an API address) is fixed by running again
            connection.execute(update(table).where(table.c.id == row["id"]).values(status="running",
                                                                                   options=json.dumps(options)))
            return Cycle(row["id"], row["started_at"], row["since"], options, db), True
        started = now()
        steps = store.cycle_steps
        # what a finished predict step met was changed before it began: the next cycle's work starts there
        last = connection.execute(select(func.max(steps.c.started_at)).where(
            steps.c.step == "predict", steps.c.status == "done")).scalar()
        since = since or last or started
        cycle_id = connection.execute(insert(table).values(started_at=started, status="running", since=since,
                                                           options=json.dumps(options))).inserted_primary_key[0]
    return Cycle(cycle_id, started, since, options, db), False


def done_steps(db: str | Path, cycle_id: int) -> set[str]:
    with closing(store.connect(db, readonly=True)) as connection:
        table = store.cycle_steps
        return set(connection.execute(select(table.c.step).where(table.c.cycle_id == cycle_id,
                                                                 table.c.status.in_(("done", "skipped")))).scalars())


def record_step(db: str | Path, cycle_id: int, step: str) -> int:
    with closing(store.connect(db)) as connection, connection.begin():
        return connection.execute(insert(store.cycle_steps).values(
            cycle_id=cycle_id, step=step, status="running", pid=os.getpid(), started_at=now())).inserted_primary_key[0]


def finish_step(db: str | Path, step_id: int, status: str, summary: str) -> None:
    with closing(store.connect(db)) as connection, connection.begin():
        connection.execute(update(store.cycle_steps).where(store.cycle_steps.c.id == step_id).values(
            status=status, finished_at=now(), summary=summary))


def finish_cycle(db: str | Path, cycle_id: int, status: str) -> None:
    with closing(store.connect(db)) as connection, connection.begin():
        connection.execute(update(store.cycles).where(store.cycles.c.id == cycle_id).values(
            status=status, finished_at=now() if status == "done" else None))


def work_of(cycle: Cycle) -> int:
    """How many products this cycle has to file: first seen or changed since its ``since``, less those filed before
    it began (timestamps are whole seconds, so the second a cycle's predict began is looked at again by the next)."""
    with closing(store.connect(cycle.db, readonly=True)) as connection:
        changed = filings.changed_since(connection, cycle.since)
        if not changed or not store.has_table(connection, store.filings):
            return len(changed)
        table = store.filings
        filed = set(connection.execute(select(table.c.product_id).where(table.c.filed_at < cycle.started_at,
                                                                        table.c.filed_at >= cycle.since)).scalars())
        return len(changed - filed)


def crawl_progress(line: str) -> bool:
    """The crawl's lines worth passing on as it runs: Scrapy's minute-by-minute counts and its errors."""
    return "[scrapy.extensions.logstats]" in line or "] ERROR: " in line


def refresh_mode(db: str | Path, option: str, every_days: int) -> tuple[str, str]:
    """``new`` or ``all`` for ``--refresh`` (``auto``: ``all`` when no product was read again for ``every_days``:
    since the last finished ``refresh=all``, else since the first crawl), and why."""
    if option != "auto":
        return option, f"--refresh {option}"
    if every_days <= 0:
        return "new", "--full-refresh-days 0"
    with closing(store.connect(db, readonly=True)) as connection:
        table = schema.refreshes
        last = connection.execute(select(func.max(table.c.finished_at)).where(table.c.mode == "all")).scalar() \
            if store.has_table(connection, table) else None
        last = last or connection.execute(select(func.min(schema.products.c.first_seen))).scalar()
    if last is None:
        return "new", "nothing crawled yet"
    age = datetime.now(UTC) - datetime.fromisoformat(last).astimezone(UTC)
    if age.days >= every_days:
        return "all", f"every product last read {age.days} days ago (--full-refresh-days {every_days})"
    return "new", f"every product read {age.days} days ago"


def step_refresh(cycle: Cycle) -> tuple[str, str]:
    o = cycle.options
    key = os.environ.get("SHOPSTYLE_API_KEY", "")
    if not key:  # said here, for the cycle: the spider's own message offers `-a api_key`, which the cycle refuses
        raise StepFailed(f"no API key for the refresh's crawl of {o['api_url']}: set SHOPSTYLE_API_KEY in the "
                         "cycle's environment (export SHOPSTYLE_API_KEY=KEY, then run the cycle again; from cron, "
                         "a file only its owner reads, sourced first); the cycle takes the key from there only")
    mode, why = refresh_mode(cycle.db, o.get("refresh", "new"), o.get("full_refresh_days", 0))
    spider_args = {"refresh": mode, **dict(arg.split("=", 1) for arg in o["crawl_arg"])}
    command = crawl_command(o["api_url"], Path(cycle.db) if not schema.is_url(cycle.db) else cycle.db, o["images"],
                            spider_args, {"STATS_DUMP": False})
    _, log = run_command(command, env=crawl_env(key), relayed=crawl_progress, explain=crawl_failure)
    print("\n".join(crawl_summary("\n".join(log))), file=sys.stderr, flush=True)
    return "done", f"refresh={mode} ({why}): {work_of(cycle)} products new or changed since {cycle.since}"


def step_predict(cycle: Cycle) -> tuple[str, str]:
    o = cycle.options
    first = ""
    if serving_model(cycle.db) is None:  # a first cycle: its first model, from what the refresh crawled
        lines, _ = run_command(train_command(cycle, f"cycle {cycle.id} (first model)"))
        first = f"no model in service, so one trained first: {promotion_of(lines)}; "
    out = Path(o["out"]) / f"cycle-{cycle.id}-filed.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    run_command(module("modeling.predict", "--db", str(cycle.db), "--images", str(o["images"]), "--changed-since",
                       cycle.since, "--target-accuracy", str(o["target_accuracy"]), "--levels", o["levels"],
                       "--queue", "--output", str(out), *(["--no-progress"] if o["no_progress"] else [])))
    decided = Counter(json.loads(line).get("decision", "error")
                      for line in out.read_text(encoding="utf-8").splitlines() if line.strip())
    return "done", (first + f"{sum(decided.values())} products predicted at {o['target_accuracy']:.1%}: "
                    f"{decided['leaf']} filed at the leaf, {decided['parent']} at the parent, {decided['review']} "
                    "queued for a person"
                    + (f", {decided['error']} unreadable" if decided["error"] else "") + f" ({out})")


def step_audit(cycle: Cycle) -> tuple[str, str]:
    o = cycle.options
    if o["audit"] == "never" or (o["audit"] == "changed" and not work_of(cycle)):
        return "skipped", f"not run (--audit {o['audit']}" + (", nothing changed)" if o["audit"] == "changed" else ")")
    lines, _ = run_command(module("modeling.audit", "--db", str(cycle.db), "--images", str(o["images"]),
                               "--image-backbone", "none", "--top", "5", "--no-progress"))
    return "done", (lines[0] if lines else "audited") + " (text only)"


def serving_model(db: str | Path) -> int | None:
    """The model in service (its experiment id); None for a database never trained on, or a sqlite file not
    created yet (read without creating it, so a refused cycle leaves nothing behind)."""
    if not schema.is_url(db) and not Path(db).exists():
        return None
    with closing(store.connect(db, readonly=True)) as connection:
        return registry.in_service(connection) if store.has_table(connection, store.promotions) else None


def new_decisions(db: str | Path) -> tuple[int, str | None]:
    """Decisions in force made since the model in service was trained, and when it was (None: no model)."""
    serving = serving_model(db)
    if serving is None:
        return 0, None
    with closing(store.connect(db, readonly=True)) as connection:
        trained = connection.execute(select(store.models.c.created_at)
                                     .where(store.models.c.experiment_id == serving)).scalar()
        return sum(s.created_at >= trained for s in reviews.in_force(connection).values()), trained


def drift_found(cycle: Cycle) -> bool:
    lines, _ = run_command(module("modeling.analyze", "--db", str(cycle.db), "--images",
                                  str(cycle.options["images"]), "--drift", "--json"))
    return bool(json.loads("\n".join(lines)).get("drift"))


def step_retrain(cycle: Cycle) -> tuple[str, str]:
    o = cycle.options
    decided, trained = new_decisions(cycle.db)
    if trained is None:
        raise StepFailed(f"{schema.display_name(cycle.db)}: no model in service to compare with (train one first: "
                         "python -m modeling.train)")
    why = None
    if o["retrain"] == "always":
        why = "--retrain always"
    elif o["retrain"] == "auto" and decided >= o["retrain_after"]:
        why = f"{decided} decisions since the model in service was trained (>= {o['retrain_after']})"
    elif o["retrain"] == "auto" and drift_found(cycle):
        why = "drift beyond noise since the model in service was trained"
    if why is None:
        if o["retrain"] == "never":
            return "skipped", "not run (--retrain never)"
        return "skipped", (f"not needed ({decided} decisions since the model in service was trained, fewer than "
                           f"{o['retrain_after']}; no drift)")
    lines, _ = run_command(train_command(cycle, f"cycle {cycle.id}"))
    return "done", f"{why}: {promotion_of(lines)}"


def train_command(cycle: Cycle, name: str) -> list[str]:
    """``modeling.train`` with the cycle's options: the model goes into service if it beats the one in service at
    the cycle's target, or if it is the database's first."""
    o = cycle.options
    return module("modeling.train", "--db", str(cycle.db), "--images", str(o["images"]),
                  "--image-backbone", o["image_backbone"], "--promote", "if-better",
                  "--promote-targets", str(o["target_accuracy"]), "--levels", o["levels"], "--name", name,
                  *(["--cv", o["cv"]] if o.get("cv") else []),
                  *(["--batch-promise", str(o["batch_promise"])] if o.get("batch_promise") else []),
                  *(["--no-progress"] if o["no_progress"] else []))


def promotion_of(lines: list[str]) -> str:
    """What ``modeling.train`` said of the new model's promotion (its last line that names the model)."""
    return next((line for line in reversed(lines) if line.startswith("model ")), "trained")


def step_report(cycle: Cycle) -> tuple[str, str]:
    folder = Path(cycle.options["out"]) / "report"
    run_command(module("modeling.analyze", "--db", str(cycle.db), "--plots", str(folder)))
    return "done", f"the report: {(folder / 'index.html').resolve()}"


STEP_RUNS: dict[str, Callable[[Cycle], tuple[str, str]]] = {
    "refresh": step_refresh, "predict": step_predict, "audit": step_audit, "retrain": step_retrain,
    "report": step_report}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modeling.cycle", description=__doc__,
                                     formatter_class=cli.HelpFormatter)
    parser.add_argument("--db", type=schema.location, default=config.crawl_db(),
                        help="the crawl database (sqlite file or postgresql:// URL) with a model in service")
    parser.add_argument("--images", type=images_location, default=config.images_dir(),
                        help="the crawl's IMAGES_STORE (where the refresh stores photos and the models read them)")
    parser.add_argument("--api-url", default=settings.SHOPSTYLE_API_URL,
                        help="the API the refresh crawls (the key comes from SHOPSTYLE_API_KEY in the environment)")
    parser.add_argument("--crawl-arg", action="append", default=[], metavar="NAME=VALUE",
                        help="a spider argument for the refresh (repeatable), e.g. root=women; refresh is set, and "
                             "api_key is refused (the cycle stores its options in the database): use "
                             "SHOPSTYLE_API_KEY")
    parser.add_argument("--refresh", choices=("auto", "new", "all"), default="auto",
                        help="the refresh's mode: 'new' reads each leaf's newest products, 'all' every product again "
                             "(re-filed, gone); 'auto': 'all' every --full-refresh-days, else 'new'")
    parser.add_argument("--full-refresh-days", type=int, default=28,
                        help="with --refresh auto, days after which every product is read again (0: never)")
    parser.add_argument("--target-accuracy", type=float, choices=TARGETS, default=0.98,
                        help="the accuracy the filed products must reach (the model card's guaranteed thresholds)")
    levels_argument(parser, "where products may be filed: 'leaf' only, or the leaf or its parent")
    parser.add_argument("--audit", choices=("changed", "always", "never"), default="changed",
                        help="audit the crawl's labels (text only) when anything changed since the last cycle, "
                             "every cycle, or never")
    parser.add_argument("--retrain", choices=("auto", "always", "never"), default="auto",
                        help="'auto': when --retrain-after decisions were made since the model in service was "
                             "trained, or drift calls for it; with no model in service, the first is trained after "
                             "the refresh unless 'never'")
    parser.add_argument("--retrain-after", type=int, default=100,
                        help="people's decisions since the model in service was trained that call for retraining")
    parser.add_argument("--image-backbone", default=str(config.mobilenet_v2_backbone()),
                        help="the retraining's image backbone, as modeling.train's; 'none' for text only")
    parser.add_argument("--batch-promise", type=batch_argument, metavar="N",
                        help="the retraining's --batch-promise, as modeling.train's: every batch of N products a "
                             "level files (a week's) at least the target accurate, not only the level (default: "
                             "none, the level's accuracy is promised)")
    parser.add_argument("--cv", help="the retraining's --cv (folds, or a held-out fraction), as modeling.train's "
                                     "(default: train's own)")
    parser.add_argument("--since", metavar="DATE", type=since_argument,
                        help="a new cycle's work: products first seen or changed from this ISO time on (default: "
                             "since the last cycle's predict step began; the first cycle: what its refresh meets)")
    parser.add_argument("--out", type=Path,
                        help="where the cycles write their filed products and the report (default: "
                             f"{config.data_dir() / 'cycles'}/<the database's models folder name>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress lines from the steps")
    return parser


def promise_note(db: str | Path, batch: int | None) -> str | None:
    """A line when the model in service makes another promise than ``--batch-promise`` asks for: this cycle files by
    the model's card, and the option reaches the filing only with the next model promoted."""
    serving = next((entry for entry in registry.entries(db) if entry.in_service), None)
    if serving is None:
        return None
    try:
        promised = json.loads(serving.card_path.read_text(encoding="utf-8")).get("guarantee", {}).get("batch")
    except (OSError, ValueError):
        return None  # the predict step names an unreadable card
    if promised == batch:
        return None
    return (f"note: model {serving.experiment_id}, in service, promises {_promise(promised)}; --batch-promise asks "
            f"for {_promise(batch)}: this cycle files by model {serving.experiment_id}'s card, and the option holds "
            "from the next model it retrains and promotes")


def _promise(batch: int | None) -> str:
    return "each level's accuracy" if batch is None else f"every batch of {batch} filed products"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = {"api_url": args.api_url, "crawl_arg": args.crawl_arg, "images": str(args.images),
               "refresh": args.refresh, "full_refresh_days": args.full_refresh_days,
               "target_accuracy": args.target_accuracy, "levels": args.levels, "audit": args.audit,
               "retrain": args.retrain, "retrain_after": args.retrain_after, "image_backbone": args.image_backbone,
               "cv": args.cv, "batch_promise": args.batch_promise,
               "out": str(args.out or config.data_dir() / "cycles" / registry.folder_name(args.db)),
               "no_progress": args.no_progress}
    bad = [number for number, arg in enumerate(args.crawl_arg, 1) if "=" not in arg]
    if bad:  # not echoed: a mistyped api_key:KEY would print the key
        print(f"modeling.cycle: --crawl-arg number {bad[0]}: expected NAME=VALUE", file=sys.stderr)
        return 2
    if API_KEY_PARAMETER in parse_qs(urlsplit(args.api_url).query, keep_blank_values=True):  # stored, printed
        print(f"modeling.cycle: --api-url {redact_url(args.api_url)} carries the API key ({API_KEY_PARAMETER}=...): "
              "refused, the cycle stores its options in the database; give the key in SHOPSTYLE_API_KEY",
              file=sys.stderr)
        return 2
    if any(arg.split("=", 1)[0].strip() == "api_key" for arg in args.crawl_arg):
        # not echoed: the value is the key
        print("modeling.cycle: --crawl-arg api_key=...: refused, the cycle stores its options in the database and "
              "the key must stay out of it; give the key in SHOPSTYLE_API_KEY (export SHOPSTYLE_API_KEY=KEY)",
              file=sys.stderr)
        return 2
    if not os.environ.get("SHOPSTYLE_API_KEY") and not schema.is_url(args.db) and not Path(args.db).exists():
        # a first cycle cannot even crawl: refused before the database (and its cycle record) is created, so the
        # commands that name the demo's database where the default one is missing still do
        print(f"modeling.cycle: no API key for a first cycle into {args.db}, which does not exist yet: set "
              "SHOPSTYLE_API_KEY in the cycle's environment (export SHOPSTYLE_API_KEY=KEY); nothing was created",
              file=sys.stderr)
        return 2
    try:
        if args.retrain == "never" and serving_model(args.db) is None:
            print(f"modeling.cycle: {schema.display_name(args.db)} has no model in service and --retrain never "
                  "forbids training one, so the cycle would crawl and have nothing to file with: train the first "
                  f"model (python -m modeling.train --db {schema.display_name(args.db)} --images {args.images}), or "
                  "run the cycle without --retrain never, which trains it after the refresh", file=sys.stderr)
            return 2
        with cycle_lock(args.db):
            cycle, resumed = open_cycle(args.db, options, args.since)
            print(f"cycle {cycle.id}" + (" resumed" if resumed else "") + f": products new or changed since "
                  f"{cycle.since}", flush=True)
            if (note := promise_note(args.db, args.batch_promise)) is not None:
                print(note, flush=True)
            done = done_steps(args.db, cycle.id)
            for number, step in enumerate(STEPS, start=1):
                if step in done:
                    print(f"{number}/{len(STEPS)} {step}: done before", flush=True)
                    continue
                step_id = record_step(args.db, cycle.id, step)
                print(f"{number}/{len(STEPS)} {step} ...", flush=True)
                try:
                    status, summary = STEP_RUNS[step](cycle)
                except StepFailed as error:
                    finish_step(args.db, step_id, "failed", str(error))
                    finish_cycle(args.db, cycle.id, "failed")
                    # a model goes into service only when a training finishes: a first model trained before a
                    # predict that failed stays there, so name it rather than promise nothing changed
                    serving = serving_model(args.db)
                    print(f"modeling.cycle: cycle {cycle.id} stopped at {step}: {error}; every decision is as it "
                          "was, the model in service is " + (f"model {serving}" if serving else "none yet")
                          + "; the next run resumes here", file=sys.stderr)
                    return 1
                finish_step(args.db, step_id, status, summary)
                print(f"{number}/{len(STEPS)} {step}: {summary}", flush=True)
            finish_cycle(args.db, cycle.id, "done")
            print(f"cycle {cycle.id} done", flush=True)
    except CycleLocked as error:
        print(f"modeling.cycle: {error}", file=sys.stderr)
        return 3
    except (schema.SchemaError, registry.RegistryError) as error:
        print(f"modeling.cycle: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
