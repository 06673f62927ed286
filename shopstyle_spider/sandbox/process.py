"""Start a sandbox in a subprocess and learn its URL from its first stdout line (Scrapy's mock-server pattern).

Tests, benchmarks and the demo all start their sandbox through this one helper.
"""

from __future__ import annotations

import subprocess
import sys
from types import TracebackType

URL_PREFIX = "SANDBOX_URL="


class SandboxProcess:
    """``with SandboxProcess("--catalog", "synthetic") as sandbox: sandbox.url`` -> ``http://127.0.0.1:PORT/api/v2``."""

    def __init__(self, *args: str, stderr=subprocess.DEVNULL):
        self.args = list(args)
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
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        return self.process.returncode

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
