"""Which Keras network turns a photo into an embedding: a ``keras.applications`` name or a ``.keras`` file.

(``modeling.runtime`` decides what runs it: Keras as built here, or its OpenVINO conversion.)

A backbone here is a spec (a string and a weights choice), never a live Keras object: the image transformer stores
the spec and a fingerprint, and rebuilds the network on first use, so a fitted model pickles without Keras inside.
Keras is imported only when a network is built, so the crawler never loads TensorFlow.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shopstyle_spider import config

__all__ = ["APPLICATIONS", "BackboneError", "LoadedBackbone", "backbone_fingerprint", "keras_module", "load_backbone"]

# name -> (keras.applications module, constructor, input side in pixels)
APPLICATIONS: dict[str, tuple[str, str, int]] = {
    "inception_v3": ("inception_v3", "InceptionV3", 299),
    "mobilenet_v2": ("mobilenet_v2", "MobileNetV2", 224),
    "efficientnet_b0": ("efficientnet", "EfficientNetB0", 224),
    "resnet50": ("resnet50", "ResNet50", 224),
}


class BackboneError(ValueError):
    """A backbone spec that cannot be built here; the message says what to pass instead."""


def keras_module():
    """Keras, imported on first need, with TensorFlow's start-up chatter on stderr quietened unless asked for."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def _offline_advice() -> str:
    return (f"pass --image-backbone {config.mobilenet_v2_backbone()} (the offline MobileNetV2 with ImageNet weights), "
            "the path of another .keras file that takes raw RGB 0..255 and returns pooled features, or "
            "--image-backbone none for a text-only model")


@dataclass
class LoadedBackbone:
    """A built network and how to feed it: square input side, and the preprocessing it needs outside the model."""

    model: Any
    input_size: int
    preprocess: Any  # callable on a float32 batch of raw RGB 0..255, or None when the model does it itself

    @property
    def n_features(self) -> int:
        return int(self.model.output_shape[-1])

    def embed(self, batch):
        batch = batch.astype("float32")
        if self.preprocess is not None:
            batch = self.preprocess(batch)
        return self.model.predict_on_batch(batch)

    def embed_batches(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """``embed`` of each batch in turn (Keras runs one call at a time)."""
        return map(self.embed, batches)


def backbone_fingerprint(spec: str, weights: str | None) -> str:
    """What identifies the embeddings a spec produces: a file's content hash, or the application, weights and Keras
    version. The embedding cache and a reloaded model use it to tell one backbone's vectors from another's."""
    path = Path(spec)
    if spec.endswith(".keras"):
        if not path.is_file():
            raise BackboneError(f"image backbone file {spec} does not exist; {_offline_advice()}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return f"file-{digest[:32]}"
    if spec not in APPLICATIONS:
        raise BackboneError(f"unknown image backbone {spec!r}: expected one of {', '.join(APPLICATIONS)}, "
                            f"a path ending in .keras, or none")
    return f"{spec}-{weights or 'random'}-keras{keras_module().__version__}"


def load_backbone(spec: str, weights: str | None = "imagenet") -> LoadedBackbone:
    """Build the network for a spec; offline, a named application with ImageNet weights fails at once with advice."""
    keras = keras_module()

    if spec.endswith(".keras"):
        if not Path(spec).is_file():
            raise BackboneError(f"image backbone file {spec} does not exist; {_offline_advice()}")
        try:
            model = keras.models.load_model(spec, compile=False)
        except Exception as error:  # Keras raises plain ValueError/OSError/zipfile errors for a bad file
            raise BackboneError(f"{spec}: not a loadable Keras model ({error})") from error
        shape = model.input_shape
        if len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] != 3 or len(model.output_shape) != 2:
            raise BackboneError(f"{spec}: expected input (N, S, S, 3) and output (N, D), found {shape} -> "
                                f"{model.output_shape}")
        return LoadedBackbone(model, int(shape[1]), None)
    if spec not in APPLICATIONS:
        raise BackboneError(f"unknown image backbone {spec!r}: expected one of {', '.join(APPLICATIONS)}, "
                            f"a path ending in .keras, or none")
    module_name, constructor, size = APPLICATIONS[spec]
    module = importlib.import_module(f"keras.applications.{module_name}")
    try:
        model = getattr(module, constructor)(include_top=False, pooling="avg", weights=weights,
                                             input_shape=(size, size, 3))
    except Exception as error:  # keras.utils.get_file raises a bare Exception("URL fetch failure ...")
        if "fetch failure" in str(error) or "urlopen" in str(error).lower():
            raise BackboneError(f"cannot download the ImageNet weights of {spec} (no network here); "
                                f"{_offline_advice()}") from error
        raise
    return LoadedBackbone(model, size, module.preprocess_input)
