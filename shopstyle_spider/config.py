"""Every path the project reads or writes, resolved in one place.

Run outputs land under ``data/`` in the checkout (``SHOPSTYLE_DATA_DIR`` moves them); the shared real data sets
and the offline ImageNet backbone are read from ``../shared`` beside the checkout (``SHARED_DIR`` moves it).
Nothing here touches the disk: importing this module creates no folder.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Where run outputs go."""
    return Path(os.environ.get("SHOPSTYLE_DATA_DIR", PROJECT_ROOT / "data"))


def crawl_db() -> Path:
    return data_dir() / "crawl.db"


def demo_dir() -> Path:
    """Where ``make demo`` (``shopstyle_spider.demo``) crawls into: its own database and photos, never the default
    ones, so the demo can be run again without touching a real crawl."""
    return data_dir() / "demo"


def images_dir() -> Path:
    return data_dir() / "images"


def models_dir() -> Path:
    return data_dir() / "models"


def embedding_cache_dir() -> Path:
    """Photo embeddings, one sqlite file per backbone: a second training run embeds nothing."""
    return data_dir() / "cache" / "embeddings"


def remote_images_cache_dir() -> Path:
    """Local copies of photos the crawl stored in a bucket (IMAGES_STORE = s3://...), mirroring the bucket."""
    return data_dir() / "cache" / "images"


def shared_dir() -> Path:
    """The read-only shared data (never copied into the repo)."""
    return Path(os.environ.get("SHARED_DIR", PROJECT_ROOT.parent / "shared"))


def fashion_dir() -> Path:
    return shared_dir() / "datasets" / "fashion"


def shopstyle_sample_dir() -> Path:
    return shared_dir() / "datasets" / "shopstyle-sample"


def mobilenet_v2_backbone() -> Path:
    return shared_dir() / "models" / "mobilenet_v2_imagenet.keras"


def review_key(db: str | Path) -> Path:
    """The review app's signing key (its sign-ins, forms and status messages outlive a restart): a file beside a
    sqlite crawl database, in the data folder for a PostgreSQL one; never in the database itself."""
    if "://" in str(db):
        return data_dir() / "review.key"
    path = Path(db)
    return path.with_name(path.name + ".review-key")
