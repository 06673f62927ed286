"""Run ``scrapy crawl shopstyle`` in a subprocess: the demo, the cycle, the benchmarks and the tests crawl through
this; and what such a caller shows of a subprocess's log (the crawl's summary, without library noise)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .config import PROJECT_ROOT

# Lines TensorFlow's C++ runtime writes through absl before any log level applies ("I0000 00:00:... port.cc:153]
# oneDNN custom operations are on ...", "W0000 ...", and absl's notice about them): noise in the demo's
# and the cycle's output.
LIBRARY_NOISE = re.compile(r"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] |WARNING: All log messages before "
                           r"absl::InitializeLog\(\) is called|To enable the following instructions: )")


def crawl_command(api_url: str, db: Path, images: Path, spider_args: dict[str, object] | None = None,
                  settings: dict[str, object] | None = None) -> list[str]:
    command = [sys.executable, "-m", "scrapy", "crawl", "shopstyle",
               "-s", f"SHOPSTYLE_API_URL={api_url}", "-s", f"SHOPSTYLE_DB={db}", "-s", f"IMAGES_STORE={images}"]
    for name, value in (spider_args or {}).items():
        command += ["-a", f"{name}={value}"]
    for name, value in (settings or {}).items():
        command += ["-s", f"{name}={value}"]
    return command


def crawl_env(api_key: str | None) -> dict[str, str]:
    """This process's environment with the key in it (never on the command line, where `ps` would show it)."""
    env = {k: v for k, v in os.environ.items() if k != "SHOPSTYLE_API_KEY"}
    if api_key is not None:
        env["SHOPSTYLE_API_KEY"] = api_key
    return env


def run_crawl(api_url: str, db: Path, images: Path, *, api_key: str | None, spider_args=None, settings=None,
              timeout: float | None = None, capture: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(crawl_command(api_url, db, images, spider_args, settings), cwd=PROJECT_ROOT,
                          env=crawl_env(api_key), capture_output=capture, text=True, timeout=timeout)


def terminate(process: subprocess.Popen, grace: float = 15.0) -> int:
    """Stop a server this project started (sandbox, review app): SIGTERM, so it shuts down cleanly and says what it
    did, then SIGKILL if it has not ended within ``grace`` seconds. Returns its exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def crawl_summary(log: str) -> list[str]:
    """The crawl's own summary (``CrawlSummary``) and anything that went wrong, out of Scrapy's whole log."""
    lines, in_summary = [], False
    for line in log.splitlines():
        if "[shopstyle_spider.extensions] INFO: crawl finished" in line:
            in_summary = True
            lines.append("    " + line.split("INFO: ", 1)[1])
        elif in_summary and line.startswith("  "):
            lines.append("  " + line)
        else:
            in_summary = False
            if "] ERROR: " in line:
                lines.append("    " + line)
    return lines
