"""Which inference runtime runs the backbone: Keras itself, or the same network converted once for OpenVINO.

Embedding photos is the slowest step of training and prediction, and OpenVINO runs the shared MobileNetV2 2.46x
faster than Keras end to end on the same two cores of a quiet machine (1.6x under a heavy load; bench/RESULTS.md).
The network is converted from the Keras model (``keras.Model.export(format="openvino")``, Keras' own exporter)
once per backbone and kept beside the embedding cache under the backbone's fingerprint, so later runs load it
without importing TensorFlow.

The runtime changes how a vector is computed, not which vector: inference runs in float32 (OpenVINO's default on
CPUs with bfloat16 units is bfloat16, too coarse for vectors shared with Keras), both runtimes agree to
about 1e-5, and the embedding cache key stays the backbone's fingerprint, so a cache filled by one runtime serves
the other. ONNX Runtime was measured as well and was slower here than OpenVINO (bench/RESULTS.md), so it is not
offered.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from .backbones import BackboneError, keras_module, load_backbone

__all__ = ["RUNTIMES", "RUNTIME_HELP", "Network", "OpenVINONetwork", "build_network", "converted_path"]

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "openvino", "keras")
RUNTIME_HELP = ("what runs the image backbone: openvino (converted once, kept beside the embedding cache), keras, or "
                "auto (OpenVINO where installed, else Keras, saying why); the vectors and their cache are the same")


class Network(Protocol):
    """What the image branch needs from a built backbone, whichever runtime runs it."""

    input_size: int
    n_features: int

    def embed(self, batch: np.ndarray) -> np.ndarray: ...

    def embed_batches(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """``embed`` of each batch, in order; a runtime may start on the next batches before a result is taken."""


class OpenVINONetwork:
    """A backbone compiled by OpenVINO for this machine's CPU, taking raw RGB 0..255 like the ``.keras`` contract.

    Compiled for throughput: OpenVINO runs several independent streams (two on two cores), and each batch is split
    among them and run at once. With one stream every layer is a barrier for all cores, and the thread decoding the
    next photos stalls them all whenever it takes a core; with a stream per core it delays one stream only. On the
    2-core VM this embedded 16% more photos/s end to end than one latency stream (bench/RESULTS.md, embedding).
    """

    def __init__(self, openvino: ModuleType, compiled: Any, input_size: int, n_features: int):
        self.compiled, self.input_size, self.n_features = compiled, input_size, n_features
        self._openvino = openvino
        self._requests = self._new_requests()
        self._lock = threading.RLock()  # one thread at a time on _requests; a thread may nest its own calls

    def _new_requests(self) -> Any:
        """As many infer requests as the compiled model runs at once, each handing its vectors to ``_collect``."""
        requests = self._openvino.AsyncInferQueue(self.compiled)
        requests.set_callback(self._collect)
        return requests

    @staticmethod
    def _collect(request: Any, where: tuple[list, int]) -> None:
        results, index = where
        results[index] = request.get_output_tensor(0).data.copy()

    @staticmethod
    def _start(requests: Any, batch: np.ndarray) -> list:
        """Start ``batch`` split among ``requests`` (waiting for idle ones); its parts' vectors land in the list."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        parts = np.array_split(batch, max(1, min(len(requests), len(batch))))
        results: list = [None] * len(parts)
        for index, part in enumerate(parts):
            requests.start_async({0: part}, (results, index))
        return results

    def embed(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            results = self._start(self._requests, batch)
            self._requests.wait_all()
        return np.concatenate(results)

    def embed_batches(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Each batch's vectors, in order, with the streams kept busy: the next batch starts as soon as a stream is
        free, while the caller stores the last result and waits for the next photos to be decoded.

        The network's own requests when no other thread holds them, else requests made for this call (about 4 ms
        to make), so a server's threads never wait for each other. Whatever ends the iteration, nothing is left
        running."""
        shared = self._lock.acquire(blocking=False)
        requests = self._requests if shared else self._new_requests()
        running: deque[list] = deque()
        try:
            for batch in batches:
                running.append(self._start(requests, batch))
                while running and all(part is not None for part in running[0]):
                    yield np.concatenate(running.popleft())
            requests.wait_all()
            while running:
                yield np.concatenate(running.popleft())
        finally:
            requests.wait_all()
            if shared:
                self._lock.release()


def converted_path(cache_dir: str | Path, fingerprint: str) -> Path:
    """Where the OpenVINO conversion of a backbone is kept: beside its embeddings, under the same fingerprint."""
    return Path(cache_dir) / f"{fingerprint}.openvino" / "model.xml"


def build_network(spec: str, weights: str | None, *, fingerprint: str, runtime: str = "auto",
                  cache_dir: str | Path | None = None) -> Network:
    """The backbone ready to embed with ``runtime``: ``"keras"``, ``"openvino"`` (an error when it cannot be used),
    or ``"auto"`` (OpenVINO when it can be imported and converts the network, else Keras with a warning saying why).

    The conversion is kept in ``cache_dir`` (none: converted again by every process) and reused while the
    backbone's fingerprint is the same; a bad spec raises ``BackboneError`` whatever the runtime.
    """
    if runtime not in RUNTIMES:
        raise BackboneError(f"unknown image runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    if runtime == "keras":
        return load_backbone(spec, weights)
    try:
        import openvino
    except ImportError as error:
        if runtime == "openvino":
            raise BackboneError(f"image runtime openvino: openvino cannot be imported ({error}); "
                                "pip install openvino, or pass --image-runtime keras") from error
        log.warning("image runtime auto: openvino cannot be imported (%s), so photos are embedded with Keras "
                    "(pip install openvino to embed about twice as fast)", error)
        return load_backbone(spec, weights)
    try:
        return _openvino_network(openvino, spec, weights, fingerprint, cache_dir)
    except BackboneError:
        raise
    except Exception as error:  # a conversion or compilation failure of OpenVINO (RuntimeError, OpConversionFailure)
        if runtime == "openvino":
            raise BackboneError(f"image runtime openvino: {spec} cannot be run by OpenVINO ({error}); "
                                "pass --image-runtime keras") from error
        log.warning("image runtime auto: OpenVINO cannot run %s (%s), so photos are embedded with Keras", spec, error)
        return load_backbone(spec, weights)


def _openvino_network(openvino, spec: str, weights: str | None, fingerprint: str,
                      cache_dir: str | Path | None) -> OpenVINONetwork:
    core = openvino.Core()
    version = openvino.get_version()
    if cache_dir is None:
        with tempfile.TemporaryDirectory() as folder:
            model = core.read_model(_export(spec, weights, Path(folder)))
        log.info("image runtime: OpenVINO %s, %s converted for this process", version, spec)
    else:
        xml = converted_path(cache_dir, fingerprint)
        if xml.is_file():
            log.info("image runtime: OpenVINO %s, the conversion of %s kept in %s", version, spec, xml.parent)
        else:
            xml.parent.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{fingerprint}-", dir=xml.parent.parent))
            try:
                _export(spec, weights, staging)
                staging.rename(xml.parent)  # atomic: a conversion killed half-way leaves nothing at xml
            except OSError:  # another process kept its conversion first: same fingerprint, same network
                if not xml.is_file():
                    raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            log.info("image runtime: OpenVINO %s, %s converted and kept in %s", version, spec, xml.parent)
        model = core.read_model(xml)
    # float32 everywhere: on CPUs with bfloat16 units OpenVINO would otherwise compute in bfloat16 and the vectors
    # would no longer be interchangeable with Keras' ones (the embedding cache serves both runtimes).
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "THROUGHPUT"})
    shape, out = compiled.input(0).get_partial_shape(), compiled.output(0).get_partial_shape()
    if shape.rank.get_length() != 4 or not shape[1].is_static or shape[1] != shape[2] or out.rank.get_length() != 2:
        raise BackboneError(f"{spec}: expected input (N, S, S, 3) and output (N, D), found {shape} -> {out}")
    return OpenVINONetwork(openvino, compiled, shape[1].get_length(), out[1].get_length())


def _export(spec: str, weights: str | None, folder: Path) -> Path:
    """``folder/model.xml``: the Keras network as OpenVINO IR, its preprocessing included so that it takes raw RGB."""
    loaded = load_backbone(spec, weights)
    model = loaded.model
    if loaded.preprocess is not None:  # a keras.applications network: its preprocessing becomes part of the graph
        keras = keras_module()
        inputs = keras.Input((loaded.input_size, loaded.input_size, 3))
        model = keras.Model(inputs, loaded.model(loaded.preprocess(inputs)))
    xml = folder / "model.xml"
    model.export(str(xml), format="openvino", verbose=False)
    return xml
