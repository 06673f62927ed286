"""Saving and loading a trained model: one joblib file holding one scikit-learn estimator, and a JSON card beside it.

A ``.joblib`` file is a pickle: loading it runs code. Load only models you trained or got from a source you trust.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from pathlib import Path

import joblib
from sklearn.exceptions import InconsistentVersionWarning

__all__ = ["ModelFileError", "card_path", "dump_pending", "load_model", "publish_model", "save_model"]


class ModelFileError(RuntimeError):
    """A model file that cannot be used: absent, truncated, corrupted, or not one of ours."""


def card_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


def save_model(model, path: str | Path, card: dict) -> Path:
    """Write the model and its card atomically: a crash leaves the previous files or none, never half a model."""
    return publish_model(dump_pending(model, Path(path).parent), path, card)


def dump_pending(model, folder: str | Path) -> Path:
    """Pickle the model under a temporary name in ``folder``, before its final name is known (``modeling.train``
    learns it from the experiment row it commits afterwards); ``publish_model`` gives it its name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pending = folder / f".pending-{uuid.uuid4().hex}.joblib"
    try:
        joblib.dump(model, pending)
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    return pending


def publish_model(pending: Path, path: str | Path, card: dict) -> Path:
    """Rename a pending model file to ``path`` and write its card beside it, each atomically."""
    path = Path(path)
    os.replace(pending, path)
    card_file = card_path(path)
    partial_card = card_file.with_name(card_file.name + ".partial")
    partial_card.write_text(json.dumps(card, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(partial_card, card_file)
    return path


def load_model(path: str | Path, *, image_runtime: str | None = None):
    """The fitted estimator in ``path``; a clear error naming the file when it is unusable, and a clear warning when
    it was trained with another scikit-learn version (its predictions may then differ). ``image_runtime`` (``auto``,
    ``openvino``, ``keras``) is how this process embeds photos: this machine's choice, not the one the model was
    trained with."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no model file there (train one with `python -m modeling.train`)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InconsistentVersionWarning)
        try:
            model = joblib.load(path)
        except Exception as error:  # unpickling a damaged file raises anything from EOFError to KeyError
            raise ModelFileError(f"{path}: not a readable model file, truncated or corrupted "
                                 f"({type(error).__name__}: {error})") from error
    versions = {(w.message.original_sklearn_version, w.message.current_sklearn_version)
                for w in caught if issubclass(w.category, InconsistentVersionWarning)}
    for warning in caught:
        if not issubclass(warning.category, InconsistentVersionWarning):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if versions:
        trained, running = versions.pop()
        warnings.warn(f"{path} was trained with scikit-learn {trained} and this is {running}: its predictions may "
                      "differ from the ones it was evaluated with; retrain it with this version", UserWarning,
                      stacklevel=2)
    if not (hasattr(model, "predict_proba") and hasattr(model, "classes_")):
        raise ModelFileError(f"{path}: holds a {type(model).__name__}, not a trained classifier")
    if image_runtime is not None and getattr(model, "image_", None) is not None:
        model.image_.set_params(runtime=image_runtime)
    return model
