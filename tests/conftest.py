"""Fixtures shared by the test suite: sandboxes in subprocesses (Scrapy's mock-server pattern) and shared data."""

from __future__ import annotations

import pytest

from shopstyle_spider import config
from shopstyle_spider.sandbox import SandboxProcess


@pytest.fixture(scope="session")
def fashion_dir():
    folder = config.fashion_dir()
    if not (folder / "styles.csv").is_file():
        pytest.fail(f"the shared fashion catalog is missing at {folder} (set SHARED_DIR)")
    return folder


@pytest.fixture(scope="session")
def sample_dir():
    folder = config.shopstyle_sample_dir()
    if not (folder / "products.jsonl").is_file():
        pytest.fail(f"the shared ShopStyle sample is missing at {folder} (set SHARED_DIR)")
    return folder


@pytest.fixture(scope="session")
def synthetic_sandbox():
    """The demo's catalog, a little smaller: 50 products a leaf, an exact page multiple."""
    with SandboxProcess("--catalog", "synthetic", "--seed", "7", "--products-per-category", "50",
                        "--rate-limit", "0") as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def fashion_sandbox(fashion_dir):
    with SandboxProcess("--catalog", f"fashion:{fashion_dir}", "--rate-limit", "0") as sandbox:
        yield sandbox
