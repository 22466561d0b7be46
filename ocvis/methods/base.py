"""The ``Method`` interface every method and baseline implements.

``fit(task, hooks=None) -> self``, ``score_samples(x) -> np.ndarray`` (higher = more normal,
as in scikit-learn), ``embed(x) -> np.ndarray``, ``config`` (a JSON-able dataclass) and
``history`` (per-step named losses). ``state_dict()`` holds only tensors, so a run restores
with ``torch.load(..., weights_only=True)``: networks as their ``state_dict``, and the
detector re-fitted on the stored training features (deterministic).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

import numpy as np
import torch

from ocvis.detectors import Detector, make_detector
from ocvis.errors import DataError
from ocvis.train import History, Hooks


def option(default, help: str = "", choices=None, min=None, max=None, log: bool = False):
    """A config field with what a generated form needs to know."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "log": log}
    return field(default=default, metadata=meta)


@dataclass
class DetectorConfig:
    """What every feature-based method shares: the detector on top of the features."""

    detector: str = option("ocsvm", "one-class detector on the features",
                           choices=("ocsvm", "kde", "gde", "iforest"))
    nu: float = option(0.1, "OC-SVM nu (ICS paper Sec. 4.1.2: 0.1)", min=0.001, max=1.0)
    seed: int = option(0, "random seed (weights, shuffling, detector)", min=0)


def config_to_dict(cfg) -> dict:
    return asdict(cfg)


def config_fields(cfg_cls) -> list[dict]:
    """Field descriptions for generated forms: name, type, default, help, choices, bounds."""
    out = []
    for f in fields(cfg_cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out.append({"name": f.name, "type": type(default).__name__, "default": default,
                    **{k: f.metadata.get(k) for k in ("help", "choices", "min", "max", "log")}})
    return out


def validate_config(cfg) -> None:
    """Check every field against its declared type, choices and bounds (clear messages)."""
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, bool):
            ok = isinstance(v, bool)
        elif isinstance(default, int):
            ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
        elif isinstance(default, float):
            ok = isinstance(v, (int, float, np.floating)) and not isinstance(v, bool)
        else:
            ok = isinstance(v, type(default))
        if not ok:
            raise DataError(f"{f.name} must be a {type(default).__name__}, got {v!r}")
        ch, lo, hi = f.metadata.get("choices"), f.metadata.get("min"), f.metadata.get("max")
        if ch and v not in ch:
            raise DataError(f"{f.name}={v!r} is not allowed; choose one of {', '.join(map(str, ch))}")
        if lo is not None and v < lo:
            raise DataError(f"{f.name}={v!r} is below its minimum {lo}")
        if hi is not None and v > hi:
            raise DataError(f"{f.name}={v!r} is above its maximum {hi}")


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
    """Base class: a config dataclass, presets, a fit that never sees labels."""

    name: ClassVar[str] = "method"
    title: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    Config: ClassVar[type] = DetectorConfig
    presets: ClassVar[dict[str, dict]] = {"paper": {}, "cpu": {}}
    deep: ClassVar[bool] = False
    stages: ClassVar[tuple[str, ...]] = ()   # training stages, in order (for progress)

    def __init__(self, config=None, **overrides: Any) -> None:
        cfg = self.Config() if config is None else config
        if isinstance(cfg, dict):
            cfg = self.Config(**cfg)
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
            import warnings

            from ocvis.data.datasets import OcvisWarning

            warnings.warn("all training images are identical (constant): the features cannot "
                          "describe the normal class and every score is about the same",
                          OcvisWarning, stacklevel=2)
        hooks = hooks or Hooks()
        t0 = time.perf_counter()
        self.history = History()
        self._fit(x, hooks)
        hooks.on_status("fitting the detector")
        self.train_features_ = self.embed(x)
        self._fit_detector()
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def embed(self, x) -> np.ndarray:
        """Features the detector sees (the latent space of deep methods)."""
        return self._embed(as_images(x))

    def score_samples(self, x) -> np.ndarray:
        """Normality score: higher = more normal. Anomaly score = ``-score_samples``."""
        self._check_fitted()
        return self.detector_.score_samples(self.embed(x))

    # -- persistence (tensors only) ------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        self._check_fitted()
        sd = {f"net.{k}": v for k, v in self._net_state().items()}
        sd["train_features"] = torch.from_numpy(np.asarray(self.train_features_))
        return sd

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> "Method":
        self._load_net_state({k[4:]: v for k, v in sd.items() if k.startswith("net.")})
        self.train_features_ = sd["train_features"].numpy()
        self._fit_detector()
        return self

    # -- for subclasses -------------------------------------------------------------------
    def _fit(self, x: torch.Tensor, hooks: Hooks) -> None:
        """Learn the feature extractor; nothing to learn for fixed features (pixels, HOG)."""

    def _embed(self, x: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def _net_state(self) -> dict[str, torch.Tensor]:
        return {}

    def _load_net_state(self, sd: dict[str, torch.Tensor]) -> None:
        pass

    def make_detector(self) -> Detector:
        c = self.config
        if c.detector == "ocsvm":
            return make_detector("ocsvm", nu=c.nu, gamma="auto")
        if c.detector == "iforest":
            return make_detector("iforest", random_state=int(c.seed))
        return make_detector(c.detector)

    def _fit_detector(self) -> None:
        self.detector_ = self.make_detector().fit(self.train_features_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "detector_"):
            raise DataError(f"{self.name} is not fitted yet: call fit first")
