"""Photos in object storage: the crawl writes them to an S3 bucket through Scrapy's own S3 store, and modeling reads
them back through a local mirror. The bucket is moto's S3 server on 127.0.0.1 (a real HTTP server speaking the S3
protocol, in a thread of the test process); the crawls are real ``scrapy crawl`` subprocesses."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from modeling.data import load_products
from modeling.photo_store import PhotoStoreError, fetch_photos
from shopstyle_spider.runner import run_crawl

from .apiclient import KEY
from .test_crawl import rows

moto_server = pytest.importorskip("moto.server", reason="moto[server] is a dev dependency (pip install -e '.[dev]')")

BUCKET = "photos"
LEAVES = "boots,pumps"


@pytest.fixture(scope="module")
def s3_endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch, tmp_path):
    """A botocore client of an empty bucket; the environment (which the crawl subprocesses inherit) points at it."""
    import botocore.session

    for name, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "SHOPSTYLE_DATA_DIR": str(tmp_path / "data")}.items():
        monkeypatch.setenv(name, value)
    client = botocore.session.get_session().create_client("s3")
    for listed in client.list_objects_v2(Bucket=BUCKET).get("Contents", []) if _exists(client) else []:
        client.delete_object(Bucket=BUCKET, Key=listed["Key"])
    if not _exists(client):
        client.create_bucket(Bucket=BUCKET)
    return client


def _exists(client) -> bool:
    return BUCKET in {b["Name"] for b in client.list_buckets()["Buckets"]}


def objects(client) -> dict[str, dict]:
    return {o["Key"]: o for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_a_crawl_stores_its_photos_in_a_bucket_and_modeling_reads_them_back(s3, synthetic_sandbox, synthetic_crawl,
                                                                            tmp_path, caplog):
    db, store = tmp_path / "crawl.db", f"s3://{BUCKET}/crawl/"
    secret = "moto-secret-4417"  # given on the command line, which Scrapy logs among the overridden settings
    result = run_crawl(synthetic_sandbox.url, db, store, api_key=KEY, spider_args={"categories": LEAVES},
                       settings={"AWS_ACCESS_KEY_ID": "moto", "AWS_SECRET_ACCESS_KEY": secret}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'AWS_SECRET_ACCESS_KEY': 'REDACTED'" in result.stderr and secret not in result.stderr + result.stdout
    photos = dict(rows(db, "SELECT image_path, image_checksum FROM products WHERE image_status = 'ok'"))
    assert len(photos) > 50 and rows(db, "SELECT count(*) FROM products WHERE image_status = 'failed'") == [(0,)]
    stored = objects(s3)
    assert set(stored) == {f"crawl/{path}" for path in photos}
    _, local_images, _ = synthetic_crawl  # the same sandbox crawled into a folder: the same bytes
    for path, checksum in photos.items():
        body = s3.get_object(Bucket=BUCKET, Key=f"crawl/{path}")["Body"].read()
        assert body == (local_images / path).read_bytes() and stored[f"crawl/{path}"]["ETag"].strip('"') == checksum
        with Image.open(io.BytesIO(body)) as image:
            image.load()

    again = run_crawl(synthetic_sandbox.url, db, store, api_key=KEY, spider_args={"categories": LEAVES},
                      timeout=300)
    assert again.returncode == 0 and "this run: 0 products written" in again.stderr
    assert {k: o["LastModified"] for k, o in objects(s3).items()} == {k: o["LastModified"] for k, o in stored.items()}

    frame = load_products(db, store, progress=False).dropna(subset=["image_path"])
    assert len(frame) == len(photos)
    for path, local in zip(rows(db, "SELECT image_path FROM products WHERE image_status = 'ok' ORDER BY id"),
                           frame["image_path"], strict=True):
        assert Path(local).read_bytes() == (local_images / path[0]).read_bytes()

    # a damaged local copy is fetched again; a photo gone from the bucket leaves its product without one
    first, second = frame["image_path"].iloc[0], frame["image_path"].iloc[1]
    Path(first).write_bytes(b"garbage")
    s3.delete_object(Bucket=BUCKET, Key=f"crawl/full/{frame['id'].iloc[1]}.jpg")
    Path(second).write_bytes(b"stale")
    with caplog.at_level(logging.WARNING, logger="modeling.photo_store"):
        reloaded = load_products(db, store, progress=False)
    by_id = dict(zip(reloaded["id"], reloaded["image_path"], strict=True))
    assert Path(by_id[frame["id"].iloc[0]]).read_bytes() == s3.get_object(
        Bucket=BUCKET, Key=f"crawl/full/{frame['id'].iloc[0]}.jpg")["Body"].read()
    assert pd.isna(by_id[frame["id"].iloc[1]]) and "is not in bucket photos" in caplog.text


def test_a_missing_bucket_stops_the_crawl_with_the_reason(s3, synthetic_sandbox, tmp_path):
    result = run_crawl(synthetic_sandbox.url, tmp_path / "crawl.db", "s3://no-such-bucket/crawl/", api_key=KEY,
                       spider_args={"categories": "boots"}, timeout=300)
    assert result.returncode == 1
    assert "cannot write photos to IMAGES_STORE s3://no-such-bucket/crawl/" in result.stderr
    assert "NoSuchBucket" in result.stderr


def test_reading_a_missing_bucket_is_a_clear_error(s3):
    with pytest.raises(PhotoStoreError, match="cannot read photos from s3://no-such-bucket/x/"):
        fetch_photos("s3://no-such-bucket/x/", ["full/1.jpg"], [None], progress=False)
    with pytest.raises(PhotoStoreError, match="no bucket name"):
        fetch_photos("s3:///x/", ["full/1.jpg"], [None], progress=False)
