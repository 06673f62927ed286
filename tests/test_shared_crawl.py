"""One crawl shared by several processes through Redis (``REDIS_URL``): one request queue (scrapy-redis), one
ledger of the leaves in progress, one API budget. Real redis-server on 127.0.0.1, real sandboxes, real
`scrapy crawl` subprocesses writing one sqlite file and one image folder, as two workers on one machine do."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections import Counter

import pytest

from shopstyle_spider.config import PROJECT_ROOT
from shopstyle_spider.runner import crawl_command, crawl_env, run_crawl
from shopstyle_spider.sandbox import RedisServerProcess, SandboxProcess

from .apiclient import KEY
from .test_crawl import rows, snapshot, stored

redis = pytest.importorskip("redis", reason="the scale-out extra is not installed: pip install '.[scale]'")

PER_MINUTE = 300  # the limited sandbox's limit and each crawl's budget: 5 requests a second
LEAVES = ("boots,pumps,sandals,womens-sneakers", "bootcut-jeans,skinny-jeans,day-dresses,mini-skirts")
ALL_LEAVES = ",".join(LEAVES)
# pages of 5: the 8 leaves' 400 products take 80 pages, 16 s at the budget, long enough for both workers to share
SHARED = {"SHOPSTYLE_REQUESTS_PER_MINUTE": PER_MINUTE, "SHOPSTYLE_PAGE_SIZE": 5, "RETRY_TIMES": 10,
          "LOG_LEVEL": "DEBUG", "SHOPSTYLE_FRONTIER_IDLE_TIMEOUT": 30}
CRAWLED = re.compile(r"Crawled \(\d+\) <GET (\S+)>")


@pytest.fixture(scope="module")
def redis_server():
    try:
        with RedisServerProcess() as server:
            yield redis.Redis.from_url(server.url)
    except FileNotFoundError as error:
        pytest.skip(f"{error} (.ci/run installs it)")


@pytest.fixture
def redis_url(redis_server):
    """An empty Redis database for each test."""
    redis_server.flushall()
    return f"redis://127.0.0.1:{redis_server.connection_pool.connection_kwargs['port']}/0"


@pytest.fixture(scope="module")
def limited_sandbox():
    with SandboxProcess("--catalog", "synthetic", "--seed", "7", "--products-per-category", "50",
                        "--rate-limit", str(PER_MINUTE), "--rate-burst", "3") as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def one_process_crawl(synthetic_sandbox, tmp_path_factory):
    """What one process alone stores of the eight leaves."""
    folder = tmp_path_factory.mktemp("alone")
    result = run_crawl(synthetic_sandbox.url, folder / "crawl.db", folder / "images", api_key=KEY,
                       spider_args={"categories": ALL_LEAVES}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return snapshot(folder / "crawl.db", folder / "images", synthetic_sandbox.url)


def start(sandbox, db, images, spider_args: dict, settings: dict) -> subprocess.Popen:
    """A crawl process logging to a file beside its database (a pipe nobody reads while another process is
    waited for would fill up and block it)."""
    log = db.parent / f"crawl-{time.monotonic_ns()}.log"
    with log.open("w") as output:  # the child keeps its own copy of the file
        process = subprocess.Popen(crawl_command(sandbox.url, db, images, spider_args, settings), cwd=PROJECT_ROOT,
                                   env=crawl_env(KEY), stdout=output, stderr=subprocess.STDOUT)
    process.log = log
    return process


def finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    process.wait(timeout=240)
    return subprocess.CompletedProcess(process.args, process.returncode, "", process.log.read_text())


def answered_429(result: subprocess.CompletedProcess) -> int:
    return int(re.search(r"(\d+) answered 429", result.stderr).group(1))


def test_two_processes_share_one_crawl_fetch_each_url_once_and_store_what_one_stores(
        limited_sandbox, redis_url, one_process_crawl, tmp_path):
    db, images = tmp_path / "crawl.db", tmp_path / "images"
    settings = {**SHARED, "REDIS_URL": redis_url}
    results = [finish(process) for process in
               [start(limited_sandbox, db, images, {"categories": ALL_LEAVES}, settings) for _ in range(2)]]
    fetched = Counter()
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
        assert answered_429(result) == 0  # the budget is shared: together they stay within it
        assert KEY not in result.stderr
        urls = CRAWLED.findall(result.stderr)
        assert any("/products?" in url for url in urls), "each process read pages of the shared crawl"
        fetched.update(urls)
    assert [url for url, times in fetched.items() if times > 1] == []
    assert sum("/products?" in url for url in fetched) == 8 * 50 // 5
    assert snapshot(db, images, limited_sandbox.url) == one_process_crawl
    assert rows(db, "SELECT count(*) FROM leaves") == [(8,)]
    # the last process removed the finished crawl's frontier (the budget's schedule expires by itself): a new crawl
    # starts afresh, and finds it complete
    assert [key for key in redis.Redis.from_url(redis_url).keys("shopstyle:*")
            if not key.startswith(b"shopstyle:budget:")] == []
    again = run_crawl(limited_sandbox.url, db, images, api_key=KEY, spider_args={"categories": ALL_LEAVES},
                      settings=settings, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "8 skipped as already complete" in again.stderr


def test_two_processes_pacing_the_budget_alone_send_twice_it(limited_sandbox, tmp_path):
    """The contrast to the shared budget above: without Redis, two crawls (each of its own leaves) each send the
    whole budget, and the sandbox's limiter answers 429."""
    processes = [start(limited_sandbox, tmp_path / f"crawl{n}.db", tmp_path / f"images{n}", {"categories": leaves},
                       {**SHARED, "SHOPSTYLE_PAGE_SIZE": 10, "LOG_LEVEL": "INFO"})
                 for n, leaves in enumerate(LEAVES)]
    results = [finish(process) for process in processes]
    assert all(result.returncode == 0 for result in results)
    assert sum(answered_429(result) for result in results) > 0


def test_a_killed_process_loses_pages_that_the_reconcile_step_queues_again(
        limited_sandbox, redis_url, one_process_crawl, tmp_path):
    db, images = tmp_path / "crawl.db", tmp_path / "images"
    # an idle timeout of 1 s: Scrapy's 5 s heartbeat would see it pass at 5 s, the 0.5 s poll at 1-1.5 s, and a
    # busy machine delaying the poll has 3.5 s before the two could be mistaken (with 3 s, a poll 1 s late on a
    # loaded machine read "5s", the heartbeat's figure, and failed the test)
    settings = {**SHARED, "REDIS_URL": redis_url, "LOG_LEVEL": "INFO", "SHOPSTYLE_FRONTIER_IDLE_TIMEOUT": 1}
    doomed = start(limited_sandbox, db, images, {"categories": ALL_LEAVES}, settings)
    deadline = time.monotonic() + 60
    while stored(db, "products") < 30 and time.monotonic() < deadline and doomed.poll() is None:
        time.sleep(0.05)
    doomed.send_signal(signal.SIGKILL)
    assert finish(doomed).returncode == -signal.SIGKILL  # killed mid-crawl, not after it ended on its own
    server = redis.Redis.from_url(redis_url)
    frontier = [server.dump(key) for key in server.keys("*")]
    assert any(b"/products?" in value for value in frontier), "requests wait in the shared queue"
    assert not any(KEY.encode() in value for value in frontier), "the queue keeps no API key"

    # another process takes up the queue; the pages the killed one had popped are gone: it stops, saying so
    survivor = run_crawl(limited_sandbox.url, db, images, api_key=KEY, spider_args={"categories": ALL_LEAVES},
                         settings=settings, timeout=300)
    assert survivor.returncode == 0, survivor.stderr[-3000:]
    assert "-a reconcile=true" in survivor.stderr
    # the idle survivor looked at the crawl every SHOPSTYLE_FRONTIER_POLL_INTERVAL (0.5 s), so it saw the timeout
    # pass within a look; on Scrapy's 5 s heartbeat it would have seen it no sooner than 5 s
    waited = re.search(r"has not moved for (\d+)s", survivor.stderr)
    assert waited is not None and 1 <= int(waited[1]) <= 4, survivor.stderr[-3000:]
    assert rows(db, "SELECT count(*) FROM leaves")[0][0] < 8

    reconciled = run_crawl(limited_sandbox.url, db, images, api_key=KEY,
                           spider_args={"categories": ALL_LEAVES, "reconcile": "true"}, settings=settings,
                           timeout=300)
    assert reconciled.returncode == 0, reconciled.stderr[-3000:]
    assert "reconcile: leaf" in reconciled.stderr
    assert rows(db, "SELECT count(*) FROM leaves") == [(8,)]
    assert snapshot(db, images, limited_sandbox.url) == one_process_crawl
    assert KEY not in survivor.stderr + reconciled.stderr


def test_a_shared_crawl_stopped_with_ctrl_c_resumes_from_its_queue(
        limited_sandbox, redis_url, one_process_crawl, tmp_path):
    """SCHEDULER_PERSIST: the queue and the ledger outlive a graceful stop; the next process carries on from them
    and ends equal to an uninterrupted crawl, with no reconcile step."""
    db, images = tmp_path / "crawl.db", tmp_path / "images"
    settings = {**SHARED, "REDIS_URL": redis_url, "LOG_LEVEL": "INFO"}
    stopped = start(limited_sandbox, db, images, {"categories": ALL_LEAVES}, settings)
    deadline = time.monotonic() + 60
    while stored(db, "products") < 30 and time.monotonic() < deadline and stopped.poll() is None:
        time.sleep(0.05)
    assert stopped.poll() is None, "the crawl ended before it could be stopped"
    stopped.send_signal(signal.SIGINT)
    assert finish(stopped).returncode == 0
    assert rows(db, "SELECT count(*) FROM leaves")[0][0] < 8
    assert redis.Redis.from_url(redis_url).zcard("shopstyle:requests") > 0, "the queue persists"

    resumed = run_crawl(limited_sandbox.url, db, images, api_key=KEY, spider_args={"categories": ALL_LEAVES},
                        settings=settings, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "joining the crawl shared through REDIS_URL" in resumed.stderr
    assert "has not moved" not in resumed.stderr
    assert snapshot(db, images, limited_sandbox.url) == one_process_crawl


def test_a_rejected_key_stops_a_shared_crawl_without_holding_up_the_next(synthetic_sandbox, redis_url, tmp_path):
    """The process that claimed the category tree and could not read it gives the claim back: the next process
    fetches the tree itself instead of waiting for it."""
    db, images = tmp_path / "crawl.db", tmp_path / "images"
    settings = {"REDIS_URL": redis_url, "SHOPSTYLE_FRONTIER_IDLE_TIMEOUT": 30}
    rejected = run_crawl(synthetic_sandbox.url, db, images, api_key="not-the-key",
                         spider_args={"categories": "boots,pumps"}, settings=settings, timeout=120)
    assert rejected.returncode == 1 and "the API rejected the key" in rejected.stderr
    crawl = run_crawl(synthetic_sandbox.url, db, images, api_key=KEY, spider_args={"categories": "boots,pumps"},
                      settings=settings, timeout=120)
    assert crawl.returncode == 0, crawl.stderr[-3000:]
    assert "2 leaves completed" in crawl.stderr
