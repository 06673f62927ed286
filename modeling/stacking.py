"""One estimator for a product: text and image branches stacked by a meta-model trained on out-of-fold probabilities.

Why out-of-fold: a branch is far surer on products it was trained on than on new ones, so a meta-model fitted on
in-sample probabilities learns to trust it too much. Each training product's branch probabilities therefore come
from a copy of the branch that never saw it; the branches are then refitted on everything.

Products without a usable photo get their own meta-model over the text probabilities alone, so they are served,
and their confidence is calibrated on products like them rather than borrowed from products with photos.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

from .fusion import LogLinearFusion
from .image import ImageEmbedder, make_image_classifier
from .progress import progress_bar
from .text import make_text_pipeline

__all__ = ["ProductClassifier"]

log = logging.getLogger(__name__)

INPUT_COLUMNS = ("name", "description", "image_path")


def _proba_in(estimator, X, classes: np.ndarray) -> np.ndarray:
    """``predict_proba`` laid out on ``classes``; classes the estimator never saw get probability 0."""
    proba = estimator.predict_proba(X)
    out = np.zeros((proba.shape[0], len(classes)), dtype=np.float64)
    out[:, np.searchsorted(classes, estimator.classes_)] = proba
    return out


def out_of_fold_splits(y: np.ndarray, cv: int | float, random_state: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, held) row indices: ``cv`` shuffled folds for an int, one held-out fraction ``cv`` for a float.

    Stratified where every class can be; otherwise plain shuffled (a class rarer than the folds is then absent from
    some training parts, and its column there is 0, which is what out-of-fold means). A fraction trains each branch
    once more instead of ``cv`` times: on a large catalog the meta-models' few parameters need far fewer
    out-of-fold rows than the catalog has.

    >>> [len(held) for _, held in out_of_fold_splits(np.array(list("aabbccdd")), 2, 0)]
    [4, 4]
    >>> [len(held) for _, held in out_of_fold_splits(np.array(list("aabbccddee")), 0.5, 0)]
    [5]
    """
    _, counts = np.unique(y, return_counts=True)
    if isinstance(cv, float):
        if not 0.0 < cv < 1.0:
            raise ValueError(f"cv as a fraction held out must be between 0 and 1, got {cv}")
        held = round(cv * len(y))
        stratify = counts.min() >= 2 and min(held, len(y) - held) >= len(counts)
        splitter = (StratifiedShuffleSplit if stratify else ShuffleSplit)(n_splits=1, test_size=cv,
                                                                         random_state=random_state)
    else:
        if cv < 2:
            raise ValueError(f"cv as a number of folds must be at least 2, got {cv}")
        n_splits = min(cv, len(y))
        splitter = (StratifiedKFold if counts.min() >= n_splits else KFold)(n_splits=n_splits, shuffle=True,
                                                                             random_state=random_state)
    return list(splitter.split(np.zeros(len(y)), y))


def _restricted(splits: list[tuple[np.ndarray, np.ndarray]], rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The same splits over the subset ``rows`` (a boolean mask), indexed within it: the image branch is held out
    on exactly the products the text branch is, so the fusion sees both branches' out-of-fold scores together."""
    position = np.full(len(rows), -1)
    position[rows] = np.arange(rows.sum())
    return [(position[train][position[train] >= 0], position[held][position[held] >= 0]) for train, held in splits]


def _rows(X, index: np.ndarray):
    return X.iloc[index] if isinstance(X, pd.DataFrame) else X[index]


def _fit_part(estimator, X, y: np.ndarray, train: np.ndarray, held: np.ndarray | None, classes: np.ndarray):
    """One fit of a branch on the rows ``train``: (the fitted estimator, None, seconds) without ``held`` rows, or
    (None, their probabilities laid out on ``classes``, seconds) with them (the fold's model is not kept)."""
    started = time.perf_counter()
    fitted = estimator.fit(_rows(X, train), y[train])
    if held is None:
        return fitted, None, time.perf_counter() - started
    return None, _proba_in(fitted, _rows(X, held), classes), time.perf_counter() - started


class ProductClassifier(ClassifierMixin, BaseEstimator):
    """Leaf category of a product from a DataFrame with ``name``, ``description`` and (optional) ``image_path``.

    Parameters
    ----------
    text : estimator or None
        The text branch, taking the frame; None means ``make_text_pipeline()``.
    image : ImageEmbedder or None
        Photo paths -> embeddings; None for a text-only model.
    image_classifier : estimator or None
        Embeddings -> category probabilities; None means ``make_image_classifier()``.
    meta_per_class : bool
        Whether the fusion of text and image learns a weight per class and branch rather than per branch.
    meta_alpha : float
        L2 penalty of the fusion meta-models (see ``LogLinearFusion``).
    cv : int or float
        Where the meta-models' out-of-fold probabilities come from: an int is that many folds (every product held
        out once; each branch trained ``cv`` + 1 times), a float that fraction of the products held out once (each
        branch trained twice). The default holds out a fifth: on the fashion catalog's validation split it is as
        accurate as 5 folds (97.86% against 97.89%, one product in 3,700) and trains 1.9 times faster
        (``bench/choices.py``). ``modeling.train --cv auto`` takes 5 folds up to 50,000 training products all the
        same: its filing guarantee is computed on these out-of-fold probabilities, and folds give one for every
        training product.
    random_state : int
        Seed of the folds.
    category_parents : dict or None
        Leaf -> parent category, carried with the model so that its users can report parents without the database.
    n_jobs : int or None
        Branch fits run at once through joblib (None: one at a time, unless a ``joblib.parallel_config`` says
        otherwise, as ``modeling.train --cluster`` does with the Dask backend).

    >>> import pandas as pd
    >>> X = pd.DataFrame({"name": ["red maxi dress", "blue midi dress", "black ankle boots", "brown knee boots"] * 3,
    ...                   "description": [""] * 12})
    >>> y = ["dresses", "dresses", "boots", "boots"] * 3
    >>> model = ProductClassifier(cv=2).fit(X, y)
    >>> model.predict(pd.DataFrame({"name": ["green wrap dress"], "description": [""]})).tolist()
    ['dresses']
    """

    def __init__(self, text=None, image: ImageEmbedder | None = None, image_classifier=None,
                 meta_per_class: bool = False, meta_alpha: float = 1e-2, cv: int | float = 0.2, random_state: int = 0,
                 category_parents: dict[str, str] | None = None, n_jobs: int | None = None):
        self.text = text
        self.image = image
        self.image_classifier = image_classifier
        self.meta_per_class = meta_per_class
        self.meta_alpha = meta_alpha
        self.cv = cv
        self.random_state = random_state
        self.category_parents = category_parents
        self.n_jobs = n_jobs

    def _meta_model(self, n_branches: int) -> LogLinearFusion:
        return LogLinearFusion(n_branches, per_class=self.meta_per_class and n_branches > 1, alpha=self.meta_alpha)

    def fit(self, X: pd.DataFrame, y):
        self.fit_out_of_fold(X, y)
        return self

    def fit_out_of_fold(self, X: pd.DataFrame, y, progress: bool = False,
                        text_only: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Fit as ``fit`` does and return each training product's stacked probabilities from the branches' copies
        that never saw it (columns: ``classes_``; NaN rows for products ``cv`` never held out, as a fraction leaves
        some). The label audit reads these: with ``cv`` folds every product gets them, for the cost of one fit.
        ``progress`` shows a bar over the branch fits. ``text_only`` also returns what ``text_only()``'s model
        would have given them (the text fusion for every product), for when training keeps that model instead."""
        X = _check_frame(X)
        y = np.asarray(y).astype(str)
        if type_of_target(y) not in ("binary", "multiclass"):
            raise ValueError(f"y must hold one category per product, got {type_of_target(y)}")
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError("need at least 2 categories to learn from")
        text = self.text if self.text is not None else make_text_pipeline()
        y_index = np.searchsorted(self.classes_, y)

        splits = out_of_fold_splits(y, self.cv, self.random_state)
        branches = {"text": (text, X, y, splits)}

        self.image_ = self.image_classifier_ = self.meta_image_ = None
        if self.image is not None:
            self.image_ = clone(self.image).fit()
            embeddings = self.image_.transform(X)
            usable = ~np.isnan(embeddings[:, 0])
            if len(np.unique(y[usable])) >= 2:
                classifier = self.image_classifier if self.image_classifier is not None else make_image_classifier()
                branches["image"] = (classifier, embeddings[usable], y[usable], _restricted(splits, usable))
            else:
                log.warning("fewer than 2 categories have usable photos: the model uses text only")

        # Every fit of every branch is independent of the others: one batch, in parallel where joblib is asked to.
        tasks = [(name, number, len(parts), estimator, data, labels, train, held)
                 for name, (estimator, data, labels, parts) in branches.items()
                 for number, (train, held) in enumerate([*parts, (np.arange(len(labels)), None)], start=1)]
        results = Parallel(n_jobs=self.n_jobs, return_as="generator" if progress else "list")(
            delayed(_fit_part)(clone(estimator), data, labels, train, held, self.classes_)
            for _, _, _, estimator, data, labels, train, held in tasks)
        if progress:
            results = list(progress_bar(results, total=len(tasks), desc="fitting branches", unit="fits"))
        oof = {name: np.full((len(labels), len(self.classes_)), np.nan)
               for name, (_, _, labels, _) in branches.items()}
        fitted = {}
        for (name, number, folds, _, _, _, _, held), (model, proba, seconds) in zip(tasks, results, strict=True):
            if held is None:
                fitted[name] = model
                log.info("%s branch: fitted on all training products in %.1f s", name, seconds)
            else:
                oof[name][held] = proba
                log.info("%s branch: fold %d/%d in %.1f s", name, number, folds, seconds)

        self.text_ = fitted["text"]
        held = ~np.isnan(oof["text"][:, 0])
        self.meta_text_ = self._meta_model(1).fit(oof["text"][held], y_index[held])
        stacked = np.full_like(oof["text"], np.nan)
        stacked[held] = self.meta_text_.predict_proba(oof["text"][held])
        text_stacked = stacked.copy()
        if "image" in fitted:
            self.image_classifier_ = fitted["image"]
            both = held[usable]
            paired = np.hstack([oof["text"][usable][both], oof["image"][both]])
            self.meta_image_ = self._meta_model(2).fit(paired, y_index[usable][both])
            stacked[np.flatnonzero(usable)[both]] = self.meta_image_.predict_proba(paired)
        return (stacked, text_stacked) if text_only else stacked

    def text_only(self) -> ProductClassifier:
        """This fitted model without its image branch, as fitting it with ``image=None`` would give (the text branch
        and its fusion never see photos, and the folds are seeded), without training the text branch again."""
        check_is_fitted(self, "classes_")
        model = clone(self).set_params(image=None)
        model.__dict__.update({k: v for k, v in self.__dict__.items() if k.endswith("_") and not k.startswith("_")})
        model.image_ = model.image_classifier_ = model.meta_image_ = None
        return model

    def predict_branches(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stacked, text and image probabilities (rows of the image array are NaN where no photo was usable)."""
        check_is_fitted(self, "classes_")
        X = _check_frame(X)
        text = _proba_in(self.text_, X, self.classes_)
        stacked = self.meta_text_.predict_proba(text)
        image = np.full_like(text, np.nan)
        if self.meta_image_ is not None and "image_path" in X:
            embeddings = self.image_.transform(X)
            usable = ~np.isnan(embeddings[:, 0])
            if usable.any():
                image[usable] = _proba_in(self.image_classifier_, embeddings[usable], self.classes_)
                stacked[usable] = self.meta_image_.predict_proba(np.hstack([text[usable], image[usable]]))
        return stacked, text, image

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_branches(X)[0]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _check_frame(X) -> pd.DataFrame:
    """A frame with text columns; a product's missing description or photo is fine, a missing name column is not."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame with columns {', '.join(INPUT_COLUMNS)}, "
                        f"got {type(X).__name__}")
    if "name" not in X:
        raise ValueError(f"the frame has no 'name' column (columns: {', '.join(map(str, X.columns))})")
    return X
