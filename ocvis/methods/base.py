"""The ``Method`` interface every method and baseline implements, and its config helpers.

A method is ``fit(task, hooks=None) -> self`` on the normal training images (labels never
reach it), then

* ``scores(x) -> {name: normality}``: every score the method computes, the primary one first
  (higher = more normal, as in scikit-learn; anomaly score = ``-score``). A features +
  detector method has one per detector it offers, an end-to-end classifier its own output,
  CLAD its ODIN and maximum-softmax scores, E3Outlier its PL / MP / NE scores;
* ``score_samples(x)``: the primary score alone;
* ``embed(x)``: the representation the Latent page projects;
* ``sample_columns(x) -> {name: per-sample array}``: extra per-sample values a page may
  show or colour by (pseudo-labels, a predicted operation, ...); those named in
  ``grouping_columns`` are clusterings of the images, whose agreement with the true classes
  a run records after ``fit``;
* ``fit_info()`` (JSON) and ``fit_arrays()`` (arrays) of the fit itself: detector
  convergence, a split of the training data, a collapse check, ...;
* ``score_model(head)`` / ``explain_heads`` / ``cam_layers()``: a differentiable
  ``x -> normality`` for Integrated Gradients and GradCAM;
* ``config`` (a JSON-able dataclass), ``history`` (per-step named losses),
  ``state_dict()`` / ``load_state_dict()`` (tensors and plain values only, so a run restores
  with ``torch.load(..., weights_only=True)``).

The run store, Evaluate, Latent and Explain read only this interface, so a method is one
module plus a registry entry. :class:`FeatureMethod` is the features + shallow detector
family (the ICS feature-learning paper and the two-stage paper's second stage).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

import numpy as np
import torch

from ocvis.detectors import Detector, make_detector
from ocvis.errors import DataError, OcvisWarning
from ocvis.train import History, Hooks, SafeHooks

log = logging.getLogger(__name__)
CONFIG_VERSION = 2  # 1: before the Method refactor (no version stored); 2: DeepConfig


def option(default, help: str = "", choices=None, min=None, max=None, log: bool = False):
    """A config field with what a generated form needs to know."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "log": log}
    if isinstance(default, (list, tuple)):
        value = tuple(default)
        return field(default_factory=lambda: value, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class BaseConfig:
    """What every method's config has."""

    seed: int = option(0, "random seed (weights, shuffling, detector)", min=0)


@dataclass
class DetectorConfig(BaseConfig):
    """Features + a shallow one-class detector."""

    detector: str = option("ocsvm", "one-class detector on the features",
                           choices=("ocsvm", "kde", "gde", "iforest"))
    nu: float = option(0.1, "OC-SVM nu (ICS paper Sec. 4.1.2: 0.1)", min=0.001, max=1.0)
    standardize: bool = option(False, "OC-SVM: scale every feature to unit variance first "
                                      "(not in the paper; helps saturated latents)")


def config_to_dict(cfg) -> dict:
    d = asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _default(f):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def config_fields(cfg_cls) -> list[dict]:
    """Field descriptions for generated forms: name, type, default, help, choices, bounds."""
    out = []
    for f in fields(cfg_cls):
        default = _default(f)
        out.append({"name": f.name, "type": type(default).__name__, "default": default,
                    **{k: f.metadata.get(k) for k in ("help", "choices", "min", "max", "log")}})
    return out


def _scalar_ok(v, default) -> bool:
    if isinstance(default, bool):
        return isinstance(v, (bool, np.bool_))
    if isinstance(default, int):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
    if isinstance(default, float):
        return isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)
    return isinstance(v, type(default))


def validate_config(cfg) -> None:
    """Check every field against its declared type, choices and bounds (clear messages).

    NaN and infinite numbers are refused (NaN passes every ``<`` comparison)."""
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        default = _default(f)
        items = v if isinstance(default, tuple) else (v,)
        proto = default[0] if isinstance(default, tuple) and default else \
            (None if isinstance(default, tuple) else default)
        if isinstance(default, tuple) and not isinstance(v, (tuple, list)):
            raise DataError(f"{f.name} must be a list, got {v!r}")
        for item in items:
            if proto is not None and not _scalar_ok(item, proto):
                raise DataError(f"{f.name} must be a {type(proto).__name__}, got {item!r}")
            if isinstance(item, (float, np.floating)) and not math.isfinite(item):
                raise DataError(f"{f.name}={item!r} is not a finite number")
            ch, lo, hi = f.metadata.get("choices"), f.metadata.get("min"), f.metadata.get("max")
            if ch and item not in ch:
                raise DataError(f"{f.name}={item!r} is not allowed; choose one of "
                                f"{', '.join(map(str, ch))}")
            if lo is not None and item < lo:
                raise DataError(f"{f.name}={item!r} is below its minimum {lo}")
            if hi is not None and item > hi:
                raise DataError(f"{f.name}={item!r} is above its maximum {hi}")


def parse_field_value(cfg_cls, name: str, value):
    """``value`` (often a string from the command line or a text box) as field ``name``
    of ``cfg_cls`` wants it; tuple fields take ``"a,b,c"``."""
    by_name = {f.name: f for f in fields(cfg_cls)}
    if name not in by_name:
        raise DataError(f"unknown setting {name!r}; known: {', '.join(sorted(by_name))}")
    default = _default(by_name[name])

    def one(v, proto):
        if not isinstance(v, str):
            return v
        s = v.strip()
        try:
            if isinstance(proto, bool):
                low = s.lower()
                if low in ("true", "1", "yes", "on"):
                    return True
                if low in ("false", "0", "no", "off"):
                    return False
                raise ValueError
            if isinstance(proto, int):
                return int(s)
            if isinstance(proto, float):
                return float(s)
        except ValueError:
            raise DataError(f"{name}={v!r} is not a {type(proto).__name__}") from None
        return s

    if isinstance(default, tuple):
        items = value.split(",") if isinstance(value, str) else list(value)
        proto = default[0] if default else ""
        return tuple(one(i, proto) for i in items if not (isinstance(i, str) and not i.strip()))
    return one(value, default)


def config_from_dict(cfg_cls, data: dict | None, *, strict: bool = False):
    """A config from a stored dict: unknown keys are dropped (with a warning, or an error
    when ``strict``), missing ones take their default, lists become tuples."""
    data = dict(data or {})
    data.pop("config_version", None)
    names = {f.name: f for f in fields(cfg_cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        msg = (f"{cfg_cls.__name__}: ignoring unknown setting(s) {', '.join(unknown)} "
               "(stored by another version of ocvis)")
        if strict:
            raise DataError(f"unknown setting(s) {', '.join(unknown)}; known: "
                            f"{', '.join(sorted(names))}")
        warnings.warn(msg, OcvisWarning, stacklevel=2)
    kw = {}
    for k, v in data.items():
        if k in unknown:
            continue
        if isinstance(_default(names[k]), tuple) and isinstance(v, list):
            v = tuple(v)
        kw[k] = v
    return cfg_cls(**kw)


def as_images(x) -> torch.Tensor:
    """Accept a Task, a tensor or an array of images ``N x C x 32 x 32`` in [0, 1]."""
    if hasattr(x, "x_train") and hasattr(x, "protocol"):
        x = x.x_train
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise DataError("expected images shaped N x C x H x W")
    return x.float()


class Method:
    """Base of every method: a config dataclass, presets, a fit that never sees labels.

    Subclasses write ``_fit(x, hooks)`` and ``_scores(x)`` (and ``_embed``); the rest has
    defaults. Class attributes name the paper a method reproduces (``paper``, its key and
    table label in ``paper_results.csv``) and where the method sits in a table.
    """

    name: ClassVar[str] = "method"
    title: ClassVar[str] = ""
    paper: ClassVar[str] = ""               # citation shown on the pages
    paper_key: ClassVar[str | None] = None  # column "paper" of paper_results.csv
    paper_label: ClassVar[str | None] = None  # column "method" of that paper's tables
    paper_also: ClassVar[dict[str, str]] = {}  # other papers' (key: label) of a baseline
    # further scores that a paper reports under a label of its own: score -> (key, label)
    paper_scores: ClassVar[dict[str, tuple[str, str]]] = {}
    table_order: ClassVar[int] = 100        # position in benchmark tables
    Config: ClassVar[type] = BaseConfig
    presets: ClassVar[dict[str, dict]] = {"paper": {}, "cpu": {}}
    deep: ClassVar[bool] = False
    stages: ClassVar[tuple[str, ...]] = ()  # training stages, in order (for progress)
    score_names: ClassVar[tuple[str, ...]] = ("score",)  # primary first
    # the ``sample_columns`` that group the images the way classes would (CLAD's
    # pseudo-labels): a run records their agreement with the true classes (``column_nmi``)
    grouping_columns: ClassVar[tuple[str, ...]] = ()
    #: settings added after runs were stored, with the value those older runs were trained
    #: with (a stored config without the key gets this, not the new default)
    older_config: ClassVar[dict[str, Any]] = {}
    #: one line per score name for the pages ("what does this score measure")
    score_help: ClassVar[dict[str, str]] = {}

    def __init__(self, config=None, **overrides: Any) -> None:
        cfg = self.Config() if config is None else config
        if isinstance(cfg, dict):
            cfg = config_from_dict(self.Config, cfg)
        self.config = replace(cfg, **overrides) if overrides else cfg
        self.history = History()

    @classmethod
    def from_preset(cls, preset: str = "cpu", **overrides: Any) -> "Method":
        if preset not in cls.presets:
            raise DataError(f"unknown preset {preset!r} for {cls.name}; choose one of "
                            f"{', '.join(cls.presets)}")
        return cls(cls.Config(**{**cls.presets[preset], **overrides}))

    # -- the interface ------------------------------------------------------------------
    def fit(self, task, hooks: Hooks | None = None) -> "Method":
        validate_config(self.config)
        x = as_images(task)
        if len(x) < 2:
            raise DataError(f"{self.name} needs at least two training images, got {len(x)}")
        if float(x.std()) == 0.0:
            warnings.warn("all training images are identical (constant): the features cannot "
                          "describe the normal class and every score is about the same",
                          OcvisWarning, stacklevel=2)
        hooks = SafeHooks(hooks or Hooks())
        t0 = time.perf_counter()
        self.history = History()
        self.fitted_ = False
        train_scores = self._fit(x, hooks)
        self.fitted_ = True
        if train_scores is None:
            hooks.on_status("scoring the training images")
            train_scores = self.scores(x)
        self.train_scores_ = {k: np.asarray(v, np.float64) for k, v in train_scores.items()}
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    @property
    def primary_score(self) -> str:
        return self.score_names[0]

    def scores(self, x) -> dict[str, np.ndarray]:
        """Every normality score of the method (higher = more normal), primary first."""
        self._check_fitted()
        out = self._scores(as_images(x))
        return {k: np.asarray(out[k], dtype=np.float64) for k in self.score_names if k in out}

    def score_samples(self, x) -> np.ndarray:
        """The primary normality score: higher = more normal; anomaly = ``-score_samples``."""
        return self.scores(x)[self.primary_score]

    def embed(self, x) -> np.ndarray:
        """The representation the Latent page projects (a deep method's latent space)."""
        return self._embed(as_images(x))

    def embed_train(self, x) -> np.ndarray:
        """``embed`` of the training images the method was fitted on (may reuse the fit's)."""
        return self.embed(x)

    def sample_columns(self, x) -> dict[str, np.ndarray]:
        """Extra per-sample values (e.g. pseudo-labels) a page can show or colour by."""
        return {}

    def fit_info(self) -> dict:
        """JSON-able facts of the fit stored with the run (convergence, reuse, ...)."""
        return {}

    def fit_arrays(self) -> dict[str, np.ndarray]:
        """Per-training-sample arrays of the fit stored with the run (e.g. a split)."""
        return {}

    # -- explanations ---------------------------------------------------------------------
    explain_heads: ClassVar[tuple[str, ...]] = ()
    #: what each of a method's own heads is, for the Explain page ("kde" and "own" are named
    #: there for every method)
    explain_head_names: ClassVar[dict[str, str]] = {}

    def score_model(self, head: str) -> torch.nn.Module:
        """A differentiable ``x -> normality`` (``N x C x H x W`` -> ``N``) for ``head``."""
        raise DataError(f"{self.name} cannot be explained (no differentiable score)")

    def cam_layers(self) -> list[tuple[str, torch.nn.Module, int]]:
        """Convolution layers for GradCAM: ``(name, module, output size)``."""
        return []

    # -- persistence ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Tensors (and plain JSON-able values) that restore the fitted method."""
        self._check_fitted()
        return {}

    def load_state_dict(self, sd: dict[str, Any]) -> "Method":
        raise NotImplementedError

    # -- for subclasses -------------------------------------------------------------------
    def _fit(self, x: torch.Tensor, hooks: Hooks) -> dict[str, np.ndarray] | None:
        """Learn from the training images; may return the training scores (else they are
        computed with ``scores``)."""
        raise NotImplementedError

    def _scores(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _embed(self, x: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def _is_fitted(self) -> bool:
        return bool(getattr(self, "fitted_", False))

    def _check_fitted(self) -> None:
        if not self._is_fitted():
            raise DataError(f"{self.name} is not fitted yet: call fit first")


class FeatureMethod(Method):
    """Features + a shallow one-class detector (``config.detector``).

    ``_fit_features(x, hooks)`` learns the feature extractor (nothing for pixels or HOG),
    ``_embed(x)`` computes features; the detector is fitted on the training features and
    restored from them (deterministic), so ``state_dict`` holds the network and the
    features, not a pickled detector.

    ``extra_detectors`` (score name -> detector name) are further detectors fitted on the same
    training features and stored as further scores of the run, so one trained network gives
    a paper's several baselines (CAE's latent OC-SVM and its Isolation Forest, CAE-IF)
    without training it again; name them in ``score_names`` too.
    """

    Config: ClassVar[type] = DetectorConfig
    score_names: ClassVar[tuple[str, ...]] = ("score",)
    explain_heads: ClassVar[tuple[str, ...]] = ("kde", "own")
    extra_detectors: ClassVar[dict[str, str]] = {}

    def _fit(self, x: torch.Tensor, hooks: Hooks) -> dict[str, np.ndarray]:
        self._fit_features(x, hooks)
        hooks.on_status("fitting the detector")
        self.train_features_ = self.embed(x)
        self._fit_detector()
        return self._detector_train_scores()

    def _detector_train_scores(self) -> dict[str, np.ndarray]:
        extra = getattr(self, "extra_detectors_", {})  # a subclass may fit its own detectors
        out = {"score": self.detector_.train_scores_}
        out.update({k: d.train_scores_ for k, d in extra.items()})
        return out

    def _fit_features(self, x: torch.Tensor, hooks: Hooks) -> None:
        """Learn the feature extractor; nothing to learn for fixed features."""

    def embed_train(self, x) -> np.ndarray:
        return self.train_features_

    def _scores(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        f, extra = self._embed(x), getattr(self, "extra_detectors_", {})
        out = {"score": self.detector_.score_samples(f)}
        out.update({k: d.score_samples(f) for k, d in extra.items()})
        return out

    def make_detector(self, kind: str | None = None) -> Detector:
        """The detector ``kind`` (default: the config's) with the config's settings."""
        c = self.config
        kind = c.detector if kind is None else kind
        if kind == "ocsvm":
            return make_detector("ocsvm", nu=c.nu, gamma="auto",
                                 standardize=bool(getattr(c, "standardize", False)))
        if kind == "iforest":
            return make_detector("iforest", random_state=int(c.seed))
        return make_detector(kind)

    def _fit_detector(self) -> None:
        self.detector_ = self.make_detector().fit(self.train_features_)
        self.extra_detectors_ = {k: self.make_detector(d).fit(self.train_features_)
                                 for k, d in self.extra_detectors.items()}

    def fit_info(self) -> dict:
        info = dict(super().fit_info())
        fi = getattr(self.detector_, "fit_info", None)
        if callable(fi):
            info["detector"] = fi()
        return info

    # -- explanations -----------------------------------------------------------------------
    def torch_features(self) -> torch.nn.Module | None:
        """A differentiable feature extractor ``x -> features`` (None: not differentiable)."""
        return None

    def score_model(self, head: str) -> torch.nn.Module:
        from ocvis.explain import ScoreModel, detector_module

        feats = self.torch_features()
        if feats is None:
            raise DataError(f"{self.name} has no differentiable feature extractor to explain")
        if head == "kde":
            module = make_detector("kde").fit(self.train_features_).module_
        elif head == "own":
            module = detector_module(self.detector_)
        else:
            raise DataError(f"unknown head {head!r}; choose one of "
                            f"{', '.join(self.explain_heads)}")
        return ScoreModel(feats, module.to(torch.float64))

    # -- persistence ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        self._check_fitted()
        sd: dict[str, Any] = {f"net.{k}": v for k, v in self._net_state().items()}
        sd["train_features"] = torch.from_numpy(np.asarray(self.train_features_))
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> "FeatureMethod":
        self._load_net_state({k[4:]: v for k, v in sd.items() if k.startswith("net.")})
        self.train_features_ = sd["train_features"].numpy()
        self._fit_detector()
        self.train_scores_ = self._detector_train_scores()
        self.fitted_ = True
        return self

    def _net_state(self) -> dict[str, Any]:
        return {}

    def _load_net_state(self, sd: dict[str, Any]) -> None:
        pass
