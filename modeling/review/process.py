"""Start the review app in a subprocess and learn its URL from uvicorn's start-up line (tests, benchmarks): a real
server on a free loopback port, stoppable politely or killed outright."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import deque
from types import TracebackType

from shopstyle_spider.runner import terminate

__all__ = ["ReviewProcess"]

STARTED = "Uvicorn running on "


class ReviewProcess:
    """``with ReviewProcess("--db", db, "--model", model) as app: app.url`` -> ``http://127.0.0.1:PORT``."""

    def __init__(self, *args: str, timeout: float = 120):
        self.args, self.timeout = [str(a) for a in args], timeout
        self.process: subprocess.Popen | None = None
        self.url = ""
        self._drain: threading.Thread | None = None
        self.log: deque[str] = deque(maxlen=200)  # the server's last lines (log and requests), for an error message

    def start(self) -> ReviewProcess:
        # uvicorn logs requests on stdout and everything else on stderr: one pipe keeps both, in order
        self.process = subprocess.Popen([sys.executable, "-m", "modeling.review", "--port", "0", *self.args],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        errors="backslashreplace")  # a stray byte must not end the draining
        found = threading.Event()

        def drain() -> None:  # read every line, so a chatty server never blocks on a full pipe
            for line in self.process.stdout:
                self.log.append(line.rstrip())
                if not found.is_set() and STARTED in line:
                    self.url = line.split(STARTED, 1)[1].split()[0]
                    found.set()
            found.set()

        self._drain = threading.Thread(target=drain, daemon=True)
        self._drain.start()
        if not found.wait(self.timeout) or not self.url:
            self.stop()
            raise RuntimeError("the review app did not start: " + " | ".join(list(self.log)[-5:]))
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash or an out-of-memory killer would end it: nothing gets to clean up."""
        self.process.kill()
        self._close()

    def _close(self) -> None:
        self.process.wait()
        self._drain.join(timeout=15)
        self.process.stdout.close()

    def stop(self) -> int | None:
        if self.process is None:
            return None
        terminate(self.process)
        if not self.process.stdout.closed:
            self._close()
        return self.process.returncode

    def __enter__(self) -> ReviewProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
