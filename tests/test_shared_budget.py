"""Two crawl processes sharing one API budget through Redis: together they stay within it (no 429 from the sandbox's
limiter), where two processes pacing alone send twice the budget and are refused. Real redis-server on 127.0.0.1,
real sandbox, real `scrapy crawl` subprocesses."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time

import pytest

from shopstyle_spider.config import PROJECT_ROOT
from shopstyle_spider.runner import crawl_command, crawl_env
from shopstyle_spider.sandbox import SandboxProcess

from .apiclient import KEY

PER_MINUTE = 300  # the sandbox's limit and each crawl's budget: 5 requests a second
LEAVES = ("boots,pumps,sandals,womens-sneakers", "bootcut-jeans,skinny-jeans,day-dresses,mini-skirts")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url():
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (.ci/run installs Debian's redis-server)")
    port = _free_port()
    process = subprocess.Popen([server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly",
                                "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(64).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("redis-server did not start")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def limited_sandbox():
    with SandboxProcess("--catalog", "synthetic", "--seed", "7", "--products-per-category", "50",
                        "--rate-limit", str(PER_MINUTE), "--rate-burst", "3") as sandbox:
        yield sandbox


def crawl_in_parallel(sandbox, tmp_path, **settings) -> list[subprocess.CompletedProcess]:
    """Both crawls at once, each on its own leaves, database and photos; pages of 10 make 21 API requests each."""
    processes = []
    for number, leaves in enumerate(LEAVES):
        command = crawl_command(sandbox.url, tmp_path / f"crawl{number}.db", tmp_path / f"images{number}",
                                {"categories": leaves},
                                {"SHOPSTYLE_REQUESTS_PER_MINUTE": PER_MINUTE, "SHOPSTYLE_PAGE_SIZE": 10,
                                 "RETRY_TIMES": 10, **settings})
        processes.append(subprocess.Popen(command, cwd=PROJECT_ROOT, env=crawl_env(KEY), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return results


def answered_429(result: subprocess.CompletedProcess) -> int:
    return int(re.search(r"(\d+) answered 429", result.stderr).group(1))


def test_two_crawls_sharing_the_budget_through_redis_stay_within_it(limited_sandbox, redis_url, tmp_path):
    shared = crawl_in_parallel(limited_sandbox, tmp_path / "shared", REDIS_URL=redis_url)
    for result in shared:
        assert result.returncode == 0, result.stderr[-3000:]
        assert "4 leaves completed" in result.stderr
        assert answered_429(result) == 0
        assert "'shopstyle/shared_budget/requests': 21" in result.stderr
        assert KEY not in result.stderr

    # the same two crawls, each pacing the budget alone: together they send twice it, and the API says so
    alone = crawl_in_parallel(limited_sandbox, tmp_path / "alone")
    assert all(result.returncode == 0 for result in alone)
    assert sum(answered_429(result) for result in alone) > 0
