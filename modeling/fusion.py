"""The meta-model of the stacking: a log-linear fusion of the branches' probabilities, fitted by maximum likelihood.

p(k) is proportional to exp(sum over branches b of w_b * log p_b(k) + bias_k). With one branch this is temperature
scaling plus class priors: it calibrates without reordering a branch's guesses much. With two it learns how far to
trust the photo against the text. Its handful of parameters (a weight per branch, or per branch and class, and a
bias per class) fit reliably on the few thousand products with photos, where a full logistic regression over all
branch probabilities (K x 2K weights) overfits and loses accuracy on small catalogs.

scikit-learn has no conditional-logit model with weights shared across classes, so this is written out here: the
objective and its gradient are a few lines, minimised with SciPy's L-BFGS (SciPy is scikit-learn's own dependency).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["LogLinearFusion"]

_EPS = 1e-6


class LogLinearFusion(ClassifierMixin, BaseEstimator):
    """Fuse ``n_branches`` blocks of K class probabilities (columns ``[p_1(0..K-1), p_2(0..K-1), ...]``).

    Targets are column indices 0..K-1, so that a class absent from the training rows still has its column.

    Parameters
    ----------
    n_branches : int
        How many probability blocks the columns hold.
    per_class : bool
        One weight per branch and class instead of one per branch.
    alpha : float
        L2 penalty pulling weights towards 1 and biases towards 0 (per training row).
    max_iter : int
        L-BFGS iterations.

    >>> p_text = np.array([[0.6, 0.4], [0.3, 0.7], [0.8, 0.2], [0.45, 0.55]])
    >>> p_image = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.9, 0.1]])
    >>> fusion = LogLinearFusion(n_branches=2).fit(np.hstack([p_text, p_image]), [0, 1, 0, 0])
    >>> fusion.predict(np.hstack([p_text, p_image])).tolist()
    [0, 1, 0, 0]
    """

    def __init__(self, n_branches: int = 1, per_class: bool = False, alpha: float = 1e-3, max_iter: int = 500):
        self.n_branches = n_branches
        self.per_class = per_class
        self.alpha = alpha
        self.max_iter = max_iter

    def _blocks(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] % self.n_branches:
            raise ValueError(f"expected {self.n_branches} blocks of class probabilities, got shape {X.shape}")
        n, width = X.shape
        return np.log(np.clip(X, _EPS, 1.0)).reshape(n, self.n_branches, width // self.n_branches)

    def fit(self, X, y):
        logs = self._blocks(X)
        n, branches, k = logs.shape
        y = np.asarray(y, dtype=int)
        if y.shape != (n,) or y.min() < 0 or y.max() >= k:
            raise ValueError(f"y must hold {n} column indices in 0..{k - 1}")
        onehot = np.zeros((n, k))
        onehot[np.arange(n), y] = 1.0
        weight_shape = (branches, k if self.per_class else 1)
        n_weights = int(np.prod(weight_shape))

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            weights = theta[:n_weights].reshape(weight_shape)
            bias = theta[n_weights:]
            log_p = log_softmax(np.einsum("nbk,bk->nk", logs, np.broadcast_to(weights, (branches, k))) + bias, axis=1)
            loss = -(onehot * log_p).sum() / n
            residual = (np.exp(log_p) - onehot) / n
            grad_weights = np.einsum("nk,nbk->bk", residual, logs)
            if not self.per_class:
                grad_weights = grad_weights.sum(axis=1, keepdims=True)
            loss += self.alpha * (((weights - 1) ** 2).sum() + (bias ** 2).sum())
            grad = np.concatenate([(grad_weights + 2 * self.alpha * (weights - 1)).ravel(),
                                   residual.sum(axis=0) + 2 * self.alpha * bias])
            return loss, grad

        start = np.concatenate([np.ones(n_weights), np.zeros(k)])
        result = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": self.max_iter})
        self.weights_ = result.x[:n_weights].reshape(weight_shape)
        self.bias_ = result.x[n_weights:]
        self.classes_ = np.arange(k)
        self.n_iter_ = result.nit
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "weights_")
        logs = self._blocks(X)
        _, branches, k = logs.shape
        if k != len(self.classes_):
            raise ValueError(f"fitted on {len(self.classes_)} classes, got blocks of {k}")
        z = np.einsum("nbk,bk->nk", logs, np.broadcast_to(self.weights_, (branches, k))) + self.bias_
        return np.exp(log_softmax(z, axis=1))

    def predict(self, X) -> np.ndarray:
        return np.argmax(self.predict_proba(X), axis=1)
