"""Start a sandbox in a subprocess and learn its URL from its first stdout line (Scrapy's mock-server pattern); start
a throwaway Redis for crawls shared by several processes.

Tests, benchmarks and the demo all start their servers through these helpers.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from datetime import date
from types import TracebackType

from ..runner import terminate

URL_PREFIX = "SANDBOX_URL="


class SandboxProcess:
    """``with SandboxProcess("--catalog", "synthetic") as sandbox: sandbox.url`` -> ``http://127.0.0.1:PORT/api/v2``;
    ``as_of`` serves the catalog as it stood that day (``--as-of``)."""

    def __init__(self, *args: str, stderr=subprocess.DEVNULL, as_of: date | None = None):
        self.args = [*args, *(("--as-of", as_of.isoformat()) if as_of is not None else ())]
        self.stderr = stderr
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> SandboxProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shopstyle_spider.sandbox", *self.args],
            stdout=subprocess.PIPE, stderr=self.stderr, text=True,
        )
        line = self.process.stdout.readline().strip()
        if not line.startswith(URL_PREFIX):
            code = self.process.wait(timeout=30)
            raise RuntimeError(f"sandbox {' '.join(self.args)} did not start (exit {code}, said {line!r})")
        self.url = line.removeprefix(URL_PREFIX)
        return self

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT``, where image URLs live."""
        return self.url.removesuffix("/api/v2")

    def stop(self) -> int | None:
        if self.process is None:
            return None
        code = terminate(self.process)
        self.process.stdout.close()
        return code

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server the tests or benchmarks start."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServerProcess:
    """A throwaway redis-server on 127.0.0.1 and a free port, saving nothing, for shared crawls in tests and
    benchmarks: ``with RedisServerProcess() as redis: redis.url`` -> ``redis://127.0.0.1:PORT/0``."""

    def __init__(self, executable: str | None = None):
        self.executable = executable or shutil.which("redis-server")
        if self.executable is None:
            raise FileNotFoundError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServerProcess:
        self.port = free_port()
        self.process = subprocess.Popen([self.executable, "--bind", "127.0.0.1", "--port", str(self.port),
                                         "--save", "", "--appendonly", "no"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def __enter__(self) -> RedisServerProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
