"""Shallow one-class detectors on features, one API (scikit-learn style).

``fit(X)`` then ``score_samples(X)`` -> normality (higher = more normal) everywhere.
``__init__`` only stores keyword arguments; ``fit`` validates them against ``_constraints``
and stores what it learns with a trailing underscore (scikit-learn / PyOD conventions).

* ``ocsvm``  scikit-learn OneClassSVM, RBF kernel; ICS feature-learning paper Sec. 4.1.2:
             nu = 0.1, gamma = 1 / #features. Score = decision function (signed distance).
             The solver's tolerance follows the kernel's spread (``tol="auto"``): on features
             whose pairwise distances are tiny (a saturated sigmoid latent) every kernel value
             is 1 - 1e-7, and scikit-learn's default ``tol=1e-3`` stops the solver after 0-1
             iterations with the first ``nu * n`` points as support vectors -- an unconverged
             fit whose ranking depends on the order of the training images.
* ``kde``    Gaussian kernel density of the two-stage paper (Sohn et al., App. A.1 / A.4):
             features L2-normalised, gamma = 10 / (D * Var(features)), score =
             1/gamma log sum_i exp(-gamma ||x - x_i||^2). A differentiable ``torch.nn.Module`` too,
             so attributions can flow through it (``ocvis.explain``).
* ``gde``    Gaussian density estimation: one full-covariance Gaussian (log-likelihood).
* ``iforest`` Isolation Forest (E3Outlier's CAE-IF / SSD-IF baselines).
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch
from torch import nn

from ocvis.errors import DataError


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise DataError(f"features must be 2-D (samples x features), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError("features contain NaN or infinite values (did training diverge?)")
    return x


class Detector:
    """Base: subclasses declare ``_constraints`` and write ``_fit`` / ``score_samples``."""

    _constraints: dict = {}
    name = "detector"

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in self._constraints}

    def _validate(self) -> None:
        for k, check in self._constraints.items():
            v = getattr(self, k)
            ok, allowed = check(v)
            if not ok:
                raise DataError(f"{type(self).__name__}: {k}={v!r} is not allowed; {allowed}")

    def fit(self, X, y=None) -> "Detector":
        self._validate()
        X = _as_numpy(X)
        if len(X) < 2:
            raise DataError("a detector needs at least two training samples")
        self.n_features_in_ = X.shape[1]
        self._fit(X)
        return self

    def _fit(self, X: np.ndarray) -> None:
        raise NotImplementedError

    def score_samples(self, X) -> np.ndarray:
        raise NotImplementedError

    def fit_info(self) -> dict:
        """How the fit went (JSON-able): settings resolved, convergence, what is off."""
        return {"detector": self.name, "converged": bool(getattr(self, "converged_", True)),
                "problem": getattr(self, "problem_", None)}

    def threshold(self, quantile: float = 0.1, X=None) -> float:
        """Normality threshold leaving ``quantile`` of the training scores below it."""
        s = self.train_scores_ if X is None else self.score_samples(X)
        return float(np.quantile(s, quantile))


def _positive(v):
    return isinstance(v, Real) and v > 0, "a positive number"


def _nu(v):
    return isinstance(v, Real) and 0 < v <= 1, "a number in (0, 1]"


def _gamma(v):
    return (v == "auto") or (isinstance(v, Real) and v > 0), "'auto' or a positive number"


NU_SLACK = 0.05  # a converged OC-SVM leaves about nu of its training points outside


def kernel_spread(X: np.ndarray, gamma: float, n_pairs: int = 4000, seed: int = 0) -> float:
    """Median of ``1 - k(x_i, x_j)`` over random training pairs (RBF kernel): how far the
    kernel values are from 1, i.e. the scale of the OC-SVM's dual gradient."""
    rng = np.random.default_rng(seed)
    n = len(X)
    i, j = rng.integers(0, n, n_pairs), rng.integers(0, n, n_pairs)
    keep = i != j
    if not keep.any():
        return 0.0
    d2 = ((X[i[keep]] - X[j[keep]]) ** 2).sum(1)
    return float(np.median(-np.expm1(-gamma * d2)))


class OCSVM(Detector):
    """One-class SVM with RBF kernel; ``gamma="auto"`` = 1 / #features (paper Sec. 4.1.2).

    ``tol="auto"``: ``min(1e-3, 1e-3 * kernel_spread)``, so the solver's stopping criterion
    is as strict relative to the kernel's variation as scikit-learn's default is for a
    well-spread kernel (spread ~ 1). ``max_iter`` bounds the solver. ``standardize``
    (off by default, the paper's setting) scales every feature to unit variance first.
    After ``fit``: ``tol_``, ``kernel_spread_``, ``n_iter_``, ``train_outlier_fraction_``
    (share of training points with a negative decision value; about ``nu`` when the
    solver converged), ``converged_`` and ``problem_``.
    """

    name = "ocsvm"
    _constraints = {"nu": _nu, "gamma": _gamma,
                    "tol": lambda v: ((v == "auto") or (isinstance(v, Real) and v > 0),
                                      "'auto' or a positive number"),
                    "max_iter": lambda v: (isinstance(v, int) and (v > 0 or v == -1),
                                           "a positive int or -1 (no limit)"),
                    "standardize": lambda v: (isinstance(v, bool), "a bool"),
                    "kernel": lambda v: (v in ("rbf", "linear"), "'rbf' or 'linear'")}

    def __init__(self, *, nu: float = 0.1, gamma: float | str = "auto",
                 tol: float | str = "auto", max_iter: int = 10_000_000,
                 standardize: bool = False, kernel: str = "rbf") -> None:
        self.nu = nu
        self.gamma = gamma
        self.tol = tol
        self.max_iter = max_iter
        self.standardize = standardize
        self.kernel = kernel

    def _prep(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_ if self.standardize else X

    def _fit(self, X):
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.svm import OneClassSVM

        if self.standardize:
            self.mean_ = X.mean(0)
            self.scale_ = np.where(X.std(0) > 1e-12, X.std(0), 1.0)
        X = self._prep(X)
        self.gamma_ = 1.0 / X.shape[1] if self.gamma == "auto" else float(self.gamma)
        # the linear kernel's values are not near 1 by construction: scikit-learn's tol
        self.kernel_spread_ = kernel_spread(X, self.gamma_) if self.kernel == "rbf" else 1.0
        self.tol_ = min(1e-3, 1e-3 * max(self.kernel_spread_, 1e-15)) \
            if self.tol == "auto" else float(self.tol)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            self.model_ = OneClassSVM(kernel=self.kernel, nu=self.nu, gamma=self.gamma_,
                                      tol=self.tol_, max_iter=self.max_iter).fit(X)
        hit_limit = any(issubclass(w.category, ConvergenceWarning) for w in caught)
        self.n_iter_ = int(np.sum(getattr(self.model_, "n_iter_", [0])))
        self.train_scores_ = self.model_.decision_function(X)
        self.train_outlier_fraction_ = float(np.mean(self.train_scores_ < 0))
        off = abs(self.train_outlier_fraction_ - self.nu) > NU_SLACK
        self.converged_ = not hit_limit and not off
        self.problem_ = None
        if hit_limit:
            self.problem_ = f"the solver stopped at max_iter={self.max_iter}"
        elif off:
            self.problem_ = (f"{100 * self.train_outlier_fraction_:.0f} % of the training "
                             f"points lie outside the boundary, nu = {100 * self.nu:.0f} %")

    def score_samples(self, X) -> np.ndarray:
        return self.model_.decision_function(self._prep(_as_numpy(X)))

    def fit_info(self) -> dict:
        return {**super().fit_info(), "nu": self.nu, "gamma": self.gamma_, "tol": self.tol_,
                "kernel_spread": self.kernel_spread_, "n_iter": self.n_iter_,
                "n_support": int(len(self.model_.support_)),
                "train_outlier_fraction": self.train_outlier_fraction_,
                "standardize": self.standardize, "kernel": self.kernel}


class GDE(Detector):
    """A single Gaussian with full covariance (regularised by ``reg`` on the diagonal)."""

    name = "gde"
    _constraints = {"reg": lambda v: (isinstance(v, Real) and v >= 0, "a number >= 0")}

    def __init__(self, *, reg: float = 1e-6) -> None:
        self.reg = reg

    def _fit(self, X):
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(0)
        d = X - self.mean_
        cov = (d.T @ d) / max(len(X) - 1, 1) + self.reg * np.eye(X.shape[1])
        # One symmetric eigendecomposition gives the precision (pseudo-inverse: directions
        # with no variance at all are dropped), the log-determinant and the condition number;
        # scoring is then one GEMM, ||(x - mean) V / sqrt(e)||^2 (perf: ~4x fewer decompositions).
        eig, vec = np.linalg.eigh(cov)
        keep = eig > 1e-15 * max(float(eig.max()), 1e-300)
        self.whiten_ = vec[:, keep] / np.sqrt(eig[keep])
        self.logdet_ = float(np.sum(np.log(eig))) if keep.all() else -math.inf
        self.condition_ = float(eig.max() / max(eig.min(), 1e-300))
        raw = eig - self.reg  # the data's own covariance spectrum
        empty = int(np.sum(raw <= 1e-10 * max(float(raw.max()), 1e-300)))
        self.train_scores_ = self.score_samples(X)
        self.converged_ = empty == 0
        self.problem_ = None if self.converged_ else (
            f"the covariance is ill-conditioned: {empty} of {len(eig)} feature directions "
            f"hold no variance (only the regulariser {self.reg:g} keeps it invertible, "
            f"condition number {self.condition_:.1e})")

    @property
    def precision_(self) -> np.ndarray:
        return self.whiten_ @ self.whiten_.T

    def fit_info(self) -> dict:
        return {**super().fit_info(), "reg": self.reg, "condition": self.condition_}

    def score_samples(self, X) -> np.ndarray:
        z = (_as_numpy(X) - self.mean_) @ self.whiten_
        m = np.einsum("ij,ij->i", z, z)
        return -0.5 * (m + self.logdet_ + len(self.mean_) * math.log(2 * math.pi))


class IForest(Detector):
    """Isolation Forest (Liu et al. 2008), seeded."""

    name = "iforest"
    _constraints = {"n_estimators": lambda v: (isinstance(v, int) and v > 0, "a positive int"),
                    "random_state": lambda v: (isinstance(v, int), "an int")}

    def __init__(self, *, n_estimators: int = 100, random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.random_state = random_state

    def _fit(self, X):
        from sklearn.ensemble import IsolationForest

        self.model_ = IsolationForest(n_estimators=self.n_estimators,
                                      random_state=self.random_state).fit(X)
        self.train_scores_ = self.model_.score_samples(X)

    def score_samples(self, X) -> np.ndarray:
        return self.model_.score_samples(_as_numpy(X))


class KDEModule(nn.Module):
    """Differentiable Gaussian KDE normality score (two-stage paper, App. A.1 / A.4).

    ``forward(f) = 1/gamma * log sum_i exp(-gamma ||f/|f| - b_i||^2)`` (App. A.1) where
    ``b_i`` are the L2-normalised training features (a registered buffer, so a
    ``state_dict`` restores it).
    """

    def __init__(self, bank: torch.Tensor, gamma: float, normalize: bool = True) -> None:
        super().__init__()
        self.register_buffer("bank", bank)
        self.register_buffer("gamma", torch.tensor(float(gamma), dtype=bank.dtype))
        self.normalize = normalize

    def forward(self, f: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        f = f.to(self.bank.dtype)
        if self.normalize:
            f = nn.functional.normalize(f, dim=1)
        out = []
        for i in range(0, f.shape[0], chunk):
            fi = f[i:i + chunk]
            # expanded squared distance: smooth everywhere (cdist's gradient is NaN at 0)
            d2 = (fi.pow(2).sum(1, keepdim=True) + self.bank.pow(2).sum(1)
                  - 2.0 * fi @ self.bank.T).clamp_min(0.0)
            out.append(torch.logsumexp(-self.gamma * d2, dim=1) / self.gamma)
        return torch.cat(out)


class KDE(Detector):
    """Gaussian KDE on L2-normalised features; ``gamma="auto"`` = 10 / (D * Var(features)).

    Var is the variance of all entries of the normalised training features (the two-stage
    paper's choice). ``module_`` is the differentiable torch version.
    """

    name = "kde"
    _constraints = {"gamma": _gamma, "normalize": lambda v: (isinstance(v, bool), "a bool")}

    def __init__(self, *, gamma: float | str = "auto", normalize: bool = True) -> None:
        self.gamma = gamma
        self.normalize = normalize

    def _fit(self, X):
        bank = torch.from_numpy(X)
        if self.normalize:
            bank = nn.functional.normalize(bank, dim=1)
        var = float(bank.var(unbiased=False)) if bank.numel() > 1 else 1.0
        d = bank.shape[1]
        self.var_ = var
        self.gamma_ = 10.0 / (d * max(var, 1e-12)) if self.gamma == "auto" else float(self.gamma)
        self.module_ = KDEModule(bank, self.gamma_, self.normalize)
        self.train_scores_ = self.score_samples(X)
        self.converged_ = var > 1e-12
        self.problem_ = None if self.converged_ else (
            "the features have no variance (collapsed): the density is flat")

    def fit_info(self) -> dict:
        return {**super().fit_info(), "gamma": self.gamma_, "feature_var": self.var_,
                "bandwidth": float(np.sqrt(1.0 / (2.0 * self.gamma_)))}

    def score_samples(self, X) -> np.ndarray:
        with torch.no_grad():
            return self.module_(torch.from_numpy(_as_numpy(X))).numpy()


DETECTORS = {"ocsvm": OCSVM, "kde": KDE, "gde": GDE, "iforest": IForest}


def make_detector(name: str, **kwargs) -> Detector:
    if name not in DETECTORS:
        raise DataError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    return DETECTORS[name](**kwargs)
