"""Progress of long work: tqdm's bar on a terminal, plain lines anywhere else.

A bar redraws itself with carriage returns; written to a file or a CI log those become thousands of updates on one
"line". Where standard error is not a terminal the same tqdm counter writes a whole line instead: when the work
starts, every ``PLAIN_INTERVAL_S`` seconds while it runs, and when it ends.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from tqdm.auto import tqdm as terminal_bar
from tqdm.std import tqdm as plain_bar

__all__ = ["PLAIN_INTERVAL_S", "progress_bar"]

PLAIN_INTERVAL_S = 30.0  # at most one line this often while a step runs in a log
PLAIN_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} in {elapsed}"
PLAIN_FORMAT_OPEN = "{desc}: {n_fmt} {unit} in {elapsed}"  # when the total is not known


class _Lines:
    """A text stream for tqdm that turns each redraw (``"\\r" + status + padding``) into one line."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.strip("\r\n ")
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable: Iterable | None = None, *, desc: str, unit: str, total: int | None = None,
                 enabled: bool = True, stream: TextIO | None = None) -> terminal_bar:
    """A tqdm counter over ``iterable`` (or updated by hand): a bar when ``stream`` (standard error by default) is a
    terminal, plain lines otherwise, nothing when not ``enabled``."""
    stream = stream if stream is not None else sys.stderr
    if not enabled:
        return plain_bar(iterable, total=total, disable=True)
    if stream.isatty():
        return terminal_bar(iterable, desc=desc, unit=unit, total=total, file=stream)
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    return plain_bar(iterable, desc=desc, unit=unit, total=total, file=_Lines(stream), mininterval=PLAIN_INTERVAL_S,
                     maxinterval=PLAIN_INTERVAL_S, bar_format=PLAIN_FORMAT if total is not None else PLAIN_FORMAT_OPEN,
                     ascii=True)
