"""Training on a Dask cluster: ``python -m modeling.train --cluster tcp://HOST:8786``.

Two kinds of work leave this machine. Photos are embedded on the workers: each loads the backbone once and keeps
it for every later task, and gets the photos' bytes rather than their paths, so workers need no access to the
image store (only to the backbone: a ``keras.applications`` name, or a ``.keras`` file at the same path on every
worker, checked against the fingerprint this machine computed). Workers run the network on the runtime training
asked for (``--image-runtime``); an OpenVINO conversion is made in memory once per worker process, since the
training machine's cache folder means nothing on a worker's disk. The branches' fits run through joblib's Dask
backend, all at once: each is the fit a local run makes (same folds, same seeds, same data), so the model predicts
what the local one predicts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from pathlib import Path

import joblib
import numpy as np

from .backbones import BackboneError, backbone_fingerprint
from .photos import decode_into, embed_batch, new_batch
from .runtime import Network, build_network

__all__ = ["ClusterError", "active_client", "dask_cluster", "embed_on_cluster", "embed_photos"]

log = logging.getLogger(__name__)

_client: ContextVar = ContextVar("dask_client", default=None)
_networks: dict[tuple[str, str | None, str], Network] = {}  # in a worker process: each backbone built once


class ClusterError(RuntimeError):
    """The cluster cannot be used: dask.distributed is missing or the scheduler does not answer."""


@contextmanager
def dask_cluster(address: str, timeout: str = "30s") -> Iterator:
    """Within the block, photos are embedded on the cluster at ``address`` and joblib runs on it."""
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError("--cluster needs dask.distributed: pip install -e '.[scale]'") from None
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as error:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {error}") from None
    workers = len(client.scheduler_info()["workers"])
    log.info("Dask cluster at %s: %d workers", address, workers)
    token = _client.set(client)
    try:
        with joblib.parallel_config(backend="dask", n_jobs=-1):
            yield client
    finally:
        _client.reset(token)
        client.close()


def active_client():
    """The Dask client of the enclosing ``dask_cluster`` block, or None."""
    return _client.get()


def embed_photos(backbone: str, weights: str | None, fingerprint: str, photos: list[tuple[str, str, bytes]],
                 runtime: str = "auto") -> tuple[dict[str, np.ndarray], list[str]]:
    """On a worker: (content key, name, bytes) -> ({key: vector}, problems), the backbone built on first use."""
    network = _networks.get((backbone, weights, runtime))
    if network is None:
        found = backbone_fingerprint(backbone, weights)
        if found != fingerprint:
            raise BackboneError(f"image backbone {backbone} on this worker is not the one training uses "
                                f"(fingerprint {found} != {fingerprint})")
        network = _networks[(backbone, weights, runtime)] = build_network(backbone, weights, fingerprint=fingerprint,
                                                                          runtime=runtime)
    batch = new_batch(network, len(photos))
    return embed_batch(network, batch, ((key, partial(decode_into, batch, row, name, content))
                                        for row, (key, name, content) in enumerate(photos)))


def embed_on_cluster(client, backbone: str, weights: str | None, fingerprint: str, items: list[tuple[str, str]],
                     chunk_size: int, runtime: str = "auto") -> Iterator[tuple[int, dict[str, np.ndarray], list[str]]]:
    """(photos done, {key: vector}, problems) per chunk of ``items`` (content key, path) as workers finish them.

    Photos are read here and sent with their task; two chunks per worker are in flight, so memory holds a few
    chunks of photos, not the whole catalog's.
    """
    from distributed import as_completed

    chunks = (items[start:start + chunk_size] for start in range(0, len(items), chunk_size))

    def submit(chunk: list[tuple[str, str]]):
        photos = []
        for key, path in chunk:
            try:
                photos.append((key, path, Path(path).read_bytes()))
            except OSError as error:
                log.warning("%s: cannot be read (%s)", path, error)
        return client.submit(embed_photos, backbone, weights, fingerprint, photos, runtime, pure=False), len(chunk)

    sizes = {}
    pending = as_completed()
    for _ in range(2 * max(1, len(client.scheduler_info()["workers"]))):
        chunk = next(chunks, None)
        if chunk is None:
            break
        future, size = submit(chunk)
        sizes[future.key] = size
        pending.add(future)
    for future in pending:
        vectors, problems = future.result()
        yield sizes.pop(future.key), vectors, problems
        chunk = next(chunks, None)
        if chunk is not None:
            future, size = submit(chunk)
            sizes[future.key] = size
            pending.add(future)
