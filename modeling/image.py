"""The image branch: photo paths -> backbone embeddings (cached on disk) -> a linear classifier.

Embedding is the expensive step of training (minutes per ten thousand photos on a CPU), so it is done once per
photo and backbone: vectors are cached under the backbone's fingerprint and the photo's content hash, and a second
run, or a model retrained with other parameters, embeds nothing. Decoding and resizing run in threads while the
network works on the previous batch. The network runs on OpenVINO or Keras (``modeling.runtime``); either fills
and reads the same cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from .backbones import BackboneError, backbone_fingerprint
from .fields import photo_path
from .photos import MAX_PIXELS, decode_into, decoded_rows, new_batch, read_photo
from .progress import progress_bar
from .runtime import Network, build_network

__all__ = ["MAX_PIXELS", "EmbeddingCache", "ImageEmbedder", "make_image_classifier", "read_photo"]

log = logging.getLogger(__name__)


class EmbeddingCache:
    """Vectors of one backbone keyed by photo content hash, in a small sqlite file that survives interrupted runs."""

    def __init__(self, folder: str | Path, fingerprint: str):
        self.path = Path(folder) / f"{fingerprint}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a cache: a power cut may lose the last batches, never corrupt
        self._db.execute("CREATE TABLE IF NOT EXISTS embeddings (sha TEXT PRIMARY KEY, vector BLOB NOT NULL)")

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        keys = list(keys)
        found = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for sha, blob in self._db.execute(f"SELECT sha, vector FROM embeddings WHERE sha IN ({marks})", chunk):
                found[sha] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?)",
                                 [(sha, np.asarray(v, dtype=np.float32).tobytes()) for sha, v in items])

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM embeddings").fetchone()[0]

    def close(self) -> None:
        self._db.close()


def _content_key(path: str | None) -> str | None:
    """The photo's content hash, or None where there is no readable file."""
    if not isinstance(path, str) or not path:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _batched(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class ImageEmbedder(TransformerMixin, BaseEstimator):
    """Photo paths -> (n, d) float32 embeddings; a row is NaN where the photo is absent or unusable.

    Parameters
    ----------
    backbone : str
        A ``keras.applications`` name (``inception_v3``, ``mobilenet_v2``, ``efficientnet_b0``, ``resnet50``) or the
        path of a ``.keras`` file taking raw RGB 0..255 (N, S, S, 3) and returning pooled features (N, D).
    weights : str or None
        For a named application: ``"imagenet"`` (downloaded by Keras, so online only) or None (random weights,
        for timing an architecture). Ignored for a file.
    batch_size : int
        Photos per network call.
    cache_dir : str or None
        Folder of the embedding cache; None embeds every time.
    workers : int or None
        Threads decoding photos ahead of the network; None: a quarter of the cores, at least one. The network uses
        every core itself, and one thread keeps up with it: a 224-pixel catalog JPEG decodes (and lands in its
        batch as float32) in about 0.6 ms, against about 5 ms of MobileNetV2 a photo on two cores with OpenVINO.
        The network starts on the next batch while this thread stores the last one's vectors.
    progress : bool
        Show a progress bar while embedding.
    runtime : str
        What runs the network: ``"openvino"`` (converted once and kept in ``cache_dir`` beside the embeddings),
        ``"keras"``, or ``"auto"`` (OpenVINO where it is installed and converts the network, else Keras with a
        warning saying why). Vectors agree to about 1e-5 and share one cache, so this is a speed choice only and
        may differ between training and prediction.

    The network itself is never stored on the estimator's pickled state: it is rebuilt from ``backbone`` on first
    use, and refused if its fingerprint is not the one the estimator was fitted with.
    """

    def __init__(self, backbone: str = "mobilenet_v2", weights: str | None = "imagenet", batch_size: int = 32,
                 cache_dir: str | None = None, workers: int | None = None, progress: bool = True,
                 runtime: str = "auto"):
        self.backbone = backbone
        self.weights = weights
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.workers = workers
        self.progress = progress
        self.runtime = runtime

    def fit(self, X=None, y=None):
        """Build the network once (an unusable spec fails here, before any training) and note its fingerprint."""
        self.fingerprint_ = backbone_fingerprint(self.backbone, self.weights)
        loaded = self.network()
        self.input_size_ = loaded.input_size
        self.n_features_out_ = loaded.n_features
        return self

    def network(self) -> Network:
        """The network on its runtime, built on first use and checked against the fingerprint the estimator was
        fitted with."""
        loaded = self.__dict__.get("_loaded")
        if loaded is None:
            fingerprint = backbone_fingerprint(self.backbone, self.weights)
            if hasattr(self, "fingerprint_") and fingerprint != self.fingerprint_:
                raise BackboneError(f"image backbone {self.backbone} is not the network this model was trained "
                                    f"with (fingerprint {fingerprint} != {self.fingerprint_}); restore that file")
            loaded = self._loaded = build_network(self.backbone, self.weights, fingerprint=fingerprint,
                                                  runtime=self.runtime, cache_dir=self.cache_dir)
        return loaded

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_loaded", None)
        return state

    def __setstate__(self, state: dict) -> None:
        state.setdefault("runtime", "auto")  # a model pickled before the runtime was a parameter
        super().__setstate__(state)

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "fingerprint_")
        paths = _image_paths(X)
        out = np.full((len(paths), self.n_features_out_), np.nan, dtype=np.float32)
        workers = self.workers if self.workers is not None else (os.cpu_count() or 1) // 4
        with ThreadPoolExecutor(max(1, workers)) as pool:
            keys = list(pool.map(_content_key, paths))
            cache = EmbeddingCache(self.cache_dir, self.fingerprint_) if self.cache_dir else None
            try:
                known = cache.get_many({k for k in keys if k}) if cache is not None else {}
                todo: dict[str, str] = {}  # content hash -> one path holding it
                for path, key in zip(paths, keys, strict=True):
                    if key and key not in known:
                        todo.setdefault(key, path)
                new = self._embed(todo, pool, cache)
                log.info("%d new photos embedded, %d from the cache", len(new), len(known))
                known.update(new)
            finally:
                if cache is not None:
                    cache.close()
        offered = sum(1 for p in paths if p)
        for row, key in enumerate(keys):
            if key in known:
                out[row] = known[key]
        unusable = offered - int((~np.isnan(out[:, 0])).sum())
        if unusable:
            log.warning("%d of %d photos could not be read or decoded; those products are classified by text only",
                        unusable, offered)
        return out

    def _embed(self, todo: dict[str, str], pool: ThreadPoolExecutor,
               cache: EmbeddingCache | None) -> dict[str, np.ndarray]:
        """Embed each photo once, here or (inside ``modeling.train --cluster``) on the workers, caching as it goes."""
        if not todo:
            return {}
        from .cluster import active_client, embed_on_cluster

        items = list(todo.items())
        client = active_client()
        chunks = (embed_on_cluster(client, self.backbone, self.weights, self.fingerprint_, items,
                                   chunk_size=4 * self.batch_size, runtime=self.runtime)
                  if client is not None else self._embed_here(items, pool))
        embedded: dict[str, np.ndarray] = {}
        with progress_bar(total=len(items), desc=f"embedding photos ({self.backbone})", unit="photos",
                          enabled=self.progress) as bar:
            for done, new, problems in chunks:
                for problem in problems:
                    log.warning("%s", problem)
                embedded.update(new)
                if cache is not None:
                    cache.put_many(new.items())
                bar.update(done)
        return embedded

    def _embed_here(self, items: list[tuple[str, str]],
                    pool: ThreadPoolExecutor) -> Iterator[tuple[int, dict[str, np.ndarray], list[str]]]:
        """(photos done, {key: vector}, problems) per batch, decoding up to a few batches ahead of the network."""
        network = self.network()
        ahead: deque[tuple[list[str], np.ndarray, list[Future]]] = deque()
        batches = _batched(items, self.batch_size)

        def submit_next() -> None:
            batch = next(batches, None)
            if batch is not None:
                pixels = new_batch(network, self.batch_size)
                ahead.append(([key for key, _ in batch], pixels,
                              [pool.submit(decode_into, pixels, row, path) for row, (_, path) in enumerate(batch)]))

        decoded: deque[tuple[list[str], list[int], list[str]]] = deque()  # of the batches handed to the network

        def pixels_of_decoded_batches() -> Iterator[np.ndarray]:
            for _ in range(3):
                submit_next()
            while ahead:
                keys, pixels, futures = ahead.popleft()
                submit_next()
                decoded.append(decoded_rows(zip(keys, (future.result for future in futures), strict=True)))
                if decoded[-1][1]:  # a batch without one usable photo costs no network call
                    yield pixels

        def batch_done(vectors: np.ndarray | None) -> tuple[int, dict[str, np.ndarray], list[str]]:
            keys, rows, problems = decoded.popleft()
            embedded = {} if vectors is None else dict(zip(keys, vectors[rows], strict=True))
            return len(keys) + len(problems), embedded, problems

        for vectors in network.embed_batches(pixels_of_decoded_batches()):
            while not decoded[0][1]:
                yield batch_done(None)
            yield batch_done(np.asarray(vectors, dtype=np.float32))
        while decoded:
            yield batch_done(None)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "n_features_out_")
        return np.asarray([f"embedding{i}" for i in range(self.n_features_out_)], dtype=object)


def _image_paths(X) -> list[str | None]:
    """Paths from a frame's ``image_path`` column, a Series, or a sequence; None, NaN and "" mean no photo."""
    if isinstance(X, pd.DataFrame):
        if "image_path" not in X:
            return [None] * len(X)
        X = X["image_path"]
    return [photo_path(p) for p in (X.tolist() if hasattr(X, "tolist") else list(X))]


def make_image_classifier(*, C: float = 0.3, max_iter: int = 1000) -> LogisticRegression:
    """Logistic regression on the embeddings as they are: the usual linear probe of a backbone. C chosen on the
    fashion catalog's validation photos (``bench/choices.py``): 84.81% at C=0.3, against 84.71% at 0.1 and 83.53%
    at 1.0; standardised features tie at best (84.91% at C=0.03, one photo of 1,014), not worth a second step."""
    return LogisticRegression(C=C, max_iter=max_iter)
