"""Progress bars on a terminal, whole lines in a log (modeling.progress)."""

from __future__ import annotations

import io
import os

from modeling.progress import progress_bar
from shopstyle_spider.runner import LIBRARY_NOISE


def test_a_log_gets_whole_lines_and_no_carriage_returns():
    log = io.StringIO()
    with progress_bar(total=500, desc="embedding photos", unit="photos", stream=log) as bar:
        for _ in range(5):
            bar.update(100)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0] == "embedding photos: 0/500 photos in 00:00"
    assert lines[-1].startswith("embedding photos: 500/500 photos in ")
    assert len(lines) == 2  # the updates came faster than one line every PLAIN_INTERVAL_S


def test_a_log_gets_the_count_of_an_iterable_of_unknown_length():
    log = io.StringIO()
    assert list(progress_bar(iter(range(7)), desc="predicting", unit="products", stream=log)) == list(range(7))
    assert log.getvalue().splitlines()[-1].startswith("predicting: 7 products in ")


def test_a_terminal_gets_tqdms_bar():
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal, progress_bar(total=3, desc="fitting branches", unit="fits",
                                                           stream=terminal) as bar:
        bar.update(3)
    chunks = []  # a pty hands its output over in pieces; once the writer closed, Linux ends it with EIO
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    drawn = b"".join(chunks).decode()
    assert "\r" in drawn and "fitting branches: 100%" in drawn and "3/3" in drawn


def test_disabled_writes_nothing():
    log = io.StringIO()
    with progress_bar(total=3, desc="x", unit="y", enabled=False, stream=log) as bar:
        bar.update(3)
    assert log.getvalue() == ""


def test_tensorflows_own_lines_are_told_from_ours():
    """absl writes its time as HH:MM:SS.micro, or before it knows the time as 00:00:<epoch seconds>.micro (TF 2.21)."""
    for noise in ("I0000 00:00:1796695823.070688   18042 port.cc:153] oneDNN custom operations are on.",
                  "W1208 02:10:37.236000   18042 cpu_feature_guard.cc:210] This TensorFlow binary is optimized",
                  "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"):
        assert LIBRARY_NOISE.match(noise), noise
    for ours in ("modeling.predict: 6 products predicted, 1 records with errors",
                 "I0000 is the id of a product, not a log line"):
        assert not LIBRARY_NOISE.match(ours), ours
