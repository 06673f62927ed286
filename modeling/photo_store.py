"""Photos from wherever the crawl stored them: a local folder, or an S3 bucket (``IMAGES_STORE = s3://bucket/prefix``).

Models read photos from local files (Pillow decodes them; the embedding cache is keyed by their content), so photos in
a bucket are copied once into a local mirror under ``data/cache/images`` and checked against the checksum the crawl
recorded: a second run downloads nothing, and a photo the crawl replaced is downloaded again.

The bucket is reached the way Scrapy's own S3 store reaches it, through botocore: credentials and the endpoint
(``AWS_ENDPOINT_URL`` for MinIO, Ceph or moto) come from the environment or ``~/.aws``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shopstyle_spider import config

from .progress import progress_bar

log = logging.getLogger(__name__)

DOWNLOAD_THREADS = 16


class PhotoStoreError(RuntimeError):
    """The photo store cannot be read at all (no botocore, no credentials, no such bucket)."""


def is_remote(images: str | Path | None) -> bool:
    return str(images).startswith("s3://")


def images_location(text: str) -> str | Path:
    """An ``--images`` argument: an s3:// URI stays text (a Path would fold its double slash), anything else a Path."""
    return text if is_remote(text) else Path(text)


def _split(uri: str) -> tuple[str, str]:
    """Bucket and key prefix, joined to a stored path exactly as Scrapy's S3FilesStore joins them (no slash added)."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise PhotoStoreError(f"{uri}: no bucket name (expected s3://bucket/prefix/)")
    return bucket, prefix


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def s3_client():
    try:
        import botocore.session
        from botocore.config import Config
    except ImportError:
        raise PhotoStoreError("reading photos from s3:// needs botocore: pip install botocore") from None
    return botocore.session.get_session().create_client("s3", config=Config(max_pool_connections=DOWNLOAD_THREADS))


def fetch_photos(uri: str, paths: list[str], checksums: list[str | None], *, progress: bool = True) -> list[str | None]:
    """Local copies of the photos stored at ``uri`` + each of ``paths``, in order; None where one is not in the bucket.

    A local copy whose MD5 differs from the recorded checksum (Scrapy's checksum, which S3 reports as the ETag of
    a single-part upload) is downloaded again.
    """
    bucket, prefix = _split(uri)
    mirror = config.remote_images_cache_dir() / bucket
    local = [mirror / f"{prefix}{path}" for path in paths]
    stale = [i for i, (file, checksum) in enumerate(zip(local, checksums, strict=True))
             if not file.is_file() or (checksum and _md5(file) != checksum)]
    if stale:
        import botocore.exceptions

        client = s3_client()
        log.info("fetching %d photos from %s into %s", len(stale), uri, mirror)

        def fetch(i: int) -> bool:
            try:
                body = client.get_object(Bucket=bucket, Key=f"{prefix}{paths[i]}")["Body"].read()
            except client.exceptions.NoSuchKey:
                return False
            local[i].parent.mkdir(parents=True, exist_ok=True)
            partial = local[i].with_name(f".{local[i].name}.{os.getpid()}.partial")
            partial.write_bytes(body)
            os.replace(partial, local[i])  # a run killed mid-write leaves no half photo behind
            return True

        try:
            with ThreadPoolExecutor(DOWNLOAD_THREADS) as pool:
                found = list(progress_bar(pool.map(fetch, stale), total=len(stale), desc="photos from S3",
                                          unit="photos", enabled=progress))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise PhotoStoreError(f"cannot read photos from {uri}: {error}") from None
        for i, ok in zip(stale, found, strict=True):
            if not ok:
                log.warning("photo %s%s is not in bucket %s: product left without a photo", prefix, paths[i], bucket)
                local[i] = None
    return [str(file) if file is not None else None for file in local]
