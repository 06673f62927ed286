"""Fixtures shared by the test suite: sandboxes in subprocesses (Scrapy's mock-server pattern) and shared data."""

from __future__ import annotations

import os

import pytest

from shopstyle_spider import config
from shopstyle_spider.runner import run_crawl
from shopstyle_spider.sandbox import SandboxProcess

from .apiclient import KEY


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
def synthetic_crawl(synthetic_sandbox, tmp_path_factory):
    """(database, image store, crawl process) of one crawl of the synthetic sandbox; copy it before writing to it."""
    folder = tmp_path_factory.mktemp("crawl")
    db, images = folder / "crawl.db", folder / "images"
    result = run_crawl(synthetic_sandbox.url, db, images, api_key=KEY, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return db, images, result


@pytest.fixture(scope="session")
def fashion_sandbox(fashion_dir):
    with SandboxProcess("--catalog", f"fashion:{fashion_dir}", "--rate-limit", "0") as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory):
    """A random 32x32 Keras CNN with the backbone contract (raw RGB 0..255 in, pooled features out), saved to disk.

    Its features are average-pooled over a 4x4 grid rather than globally, so that even random filters keep the coarse
    silhouette that tells the synthetic catalog's sibling categories apart.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    outputs = keras.layers.Flatten()(keras.layers.AveragePooling2D(8)(x))
    path = tmp_path_factory.mktemp("backbone") / "tiny.keras"
    keras.utils.set_random_seed(0)
    keras.Model(inputs, outputs).save(path)
    return path


@pytest.fixture(scope="session")
def review_setup(synthetic_crawl, tmp_path_factory):
    """The synthetic crawl with a text-only model, a filing queue and an audit (tests/review_fixtures.py); copy its
    database (``review_fixtures.copy_db``) before writing to it."""
    from .review_fixtures import build

    return build(synthetic_crawl, tmp_path_factory.mktemp("review"))


@pytest.fixture(scope="module")
def model(review_setup):
    """The review tests' trained model (``review_setup``), loaded once per module."""
    from modeling.persistence import load_model

    return load_model(review_setup.model)


@pytest.fixture
def db(review_setup, tmp_path):
    """A fresh copy of the review tests' crawl database, for a test to write to."""
    from .review_fixtures import copy_db

    return copy_db(review_setup.db, tmp_path / "crawl.db")
