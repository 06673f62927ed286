"""Saving and loading a trained model: one joblib file holding one scikit-learn estimator, and a JSON card beside it.

A ``.joblib`` file is a pickle: loading it runs code. Load only models you trained or got from a source you trust.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import joblib
from sklearn.exceptions import InconsistentVersionWarning

__all__ = ["ModelFileError", "card_path", "load_model", "save_model"]


class ModelFileError(RuntimeError):
    """A model file that cannot be used: absent, truncated, corrupted, or not one of ours."""


def card_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


def save_model(model, path: str | Path, card: dict) -> Path:
    """Write the model and its card atomically: a crash leaves the previous files or none, never half a model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    joblib.dump(model, partial)
    os.replace(partial, path)
    card_file = card_path(path)
    partial_card = card_file.with_name(card_file.name + ".partial")
    partial_card.write_text(json.dumps(card, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(partial_card, card_file)
    return path


def load_model(path: str | Path):
    """The fitted estimator in ``path``; a clear error naming the file when it is unusable, and a clear warning when
    it was trained with another scikit-learn version (its predictions may then differ)."""
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
    return model
