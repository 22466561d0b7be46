"""Intra-class splitting as a component: the splitting autoencoder (stage 1, cached on disk)
and the split of the normal training data by reconstruction similarity (stage 2).

Schlachter et al. 2019 (feature learning, Sec. 3.2 / 3.4.2) and Schlachter, Liao, Yang
(end-to-end): an autoencoder learns to reconstruct the normal training images; the rho % of
them least similar (SSIM) to their reconstruction are *atypical*, the rest *typical*.

:class:`Choice (``bn_recalibrate``, default on): after training, the batch-norm running statistics
are re-estimated on the training images (:func:`ocvis.train.recalibrate_batchnorm`). The
paper's Keras model keeps moving averages with momentum 0.99, which after its 50 epochs have
converged to about these values; after the ``cpu`` schedule (e.g. 50 steps on digits) they
are still near their initial values and every reconstruction was a flat grey image.

:class:`SplitAutoencoder` is a :class:`~ocvis.methods.deep.DeepMethod` whose score is the
similarity of an image to its reconstruction (higher = more normal), so it is also the
end-to-end paper's ``ssim-error`` baseline. Other methods use it as a component:
``pretrain(x)`` trains (or loads) the autoencoder, ``compute_split(x)`` splits. The cache key
holds everything that changes the weights: the training images, the settings, the code
version of the network and loop, torch's version and, on the CPU, the thread count
(one and two threads give slightly different weights).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch

from ocvis import losses as L
from ocvis.config import cache_root
from ocvis.methods.base import as_images, option
from ocvis.methods.deep import DeepConfig, DeepMethod
from ocvis.nets import PaperAutoencoder
from ocvis.nets.e2e_ae import ReleasedE2EAutoencoder
from ocvis.nets.paper_ae import conv_weights
from ocvis.split import SplitResult, split
from ocvis.ssim import ssim
from ocvis.train import Hooks, SafeHooks, recalibrate_batchnorm, seeded

log = logging.getLogger(__name__)
LATENT_DIM = 64        # feature-learning paper, Sec. 4.1.2
BATCH_SIZE = 64        # Sec. 4.1.2
L2_WEIGHT = 1e-6       # Sec. 4.1.2, every conv layer
RHO = 10.0             # Sec. 4.1.2, % atypical
#: bump when the network or the stage-1 loop changes the weights it produces
STAGE1_CODE_VERSION = 3  # 3: batch-norm statistics re-estimated after training


@dataclass
class SplitConfig(DeepConfig):
    """The splitting autoencoder and the split (``epochs`` = stage-1 epochs)."""

    latent_dim: int = option(LATENT_DIM, "latent units (paper: 64)", min=2, max=1024)
    l2: float = option(L2_WEIGHT, "L2 weight on conv kernels (paper: 1e-6)", min=0.0, max=1.0)
    rec_reduction: str = option("mean", "L_rec over pixels: mean (Keras mse) or sum (eq. 2)",
                                choices=("sum", "mean"))
    reuse_pretrain: bool = option(True, "reuse a cached autoencoder with equal settings")
    bn_recalibrate: bool = option(True, "re-estimate the batch-norm statistics on the "
                                        "training images after each stage (short schedules "
                                        "leave Keras-momentum running statistics near their "
                                        "initial values)")
    rho: float = option(RHO, "% of the normal data declared atypical (paper: 10)",
                        min=0.0, max=99.0)
    similarity: str = option("ssim", "split metric between x and its reconstruction",
                             choices=("ssim", "mse"))
    network: str = option("paper", "splitting autoencoder: the feature-learning paper's "
                                   "(Tables 2-3) or the released end-to-end code's",
                          choices=("paper", "released-e2e"))
    ssim_data_range: float = option(1.0, "SSIM data range L (C1 = (0.01 L)^2, C2 = (0.03 L)^2)"
                                         " for images in [0, 1]; the released end-to-end code"
                                         " got 2 (skimage's old float default)", min=0.01,
                                    max=100.0)


SPLIT_PRESETS = {
    "paper": {"epochs": 50},
    "cpu": {"epochs": 8, "min_steps": 50},  # digits: 25 epochs
    "tiny": {"epochs": 1},
}


def _digest(x: torch.Tensor) -> str:
    return hashlib.sha1(x.contiguous().numpy().tobytes()).hexdigest()


class SplitAutoencoder(DeepMethod):
    """The splitting autoencoder; score = similarity of x to its reconstruction."""

    name = "split-ae"
    title = "Splitting autoencoder (SSIM of the reconstruction)"
    paper = "Schlachter et al. 2019, One-Class Feature Learning Using Intra-Class Splitting"
    Config = SplitConfig
    presets = SPLIT_PRESETS
    stages = ("pretrain",)
    score_names = ("similarity",)
    net_factories: ClassVar[dict] = {"paper_ae": PaperAutoencoder,
                                     "released_e2e_ae": ReleasedE2EAutoencoder}

    @property
    def model_(self) -> PaperAutoencoder:
        return self.nets["model"]

    # -- stage 1 -------------------------------------------------------------------------
    def cache_key(self, x: torch.Tensor) -> str:
        c = self.config
        keys: dict[str, Any] = {k: getattr(c, k) for k in
                                ("latent_dim", "batch_size", "lr", "optimizer", "momentum",
                                 "weight_decay", "lr_schedule", "l2", "rec_reduction", "seed",
                                 "bn_recalibrate")}
        keys["epochs"] = self.epochs_for(c.epochs, self.steps_per_epoch(len(x)))
        if c.network != "paper":  # the paper network's keys stay as they were (its caches)
            keys["network"] = c.network
        keys.update(data=_digest(x), torch=torch.__version__.split("+")[0],
                    code=STAGE1_CODE_VERSION, device=self.device_.type)
        if self.device_.type == "cpu":
            keys["threads"] = torch.get_num_threads()
        return hashlib.sha1(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:20]

    def pretrain(self, x: torch.Tensor, hooks: Hooks | None = None) -> PaperAutoencoder:
        """Stage 1: the autoencoder on all normal training images, reconstruction only
        (L_rec, eq. 2, + the paper's L2 on conv kernels); loaded from the cache when one with
        the same key exists. Sets ``pretrain_seconds_`` and ``pretrain_reused_``."""
        hooks = SafeHooks(hooks or Hooks())
        c = self.config
        x = as_images(x)
        path = cache_root() / "pretrain" / f"{self.cache_key(x)}.pt"
        with seeded(int(c.seed)) as g:
            self.generator_ = g
            if c.network == "released-e2e":  # its latent is 2 x 2 x 128 (released code)
                model = self.build("model", "released_e2e_ae", in_channels=int(x.shape[1]))
            else:
                model = self.build("model", "paper_ae", in_channels=int(x.shape[1]),
                                   latent_dim=int(c.latent_dim))
            if c.reuse_pretrain and path.exists() and self._load_cache(path, hooks):
                return model
            t0 = time.perf_counter()
            index = self.epoch_batches(len(x))

            def step(i: int):
                xb = x[index(i)].to(self.device_, non_blocking=True)
                _, xh = model(xb)
                return {"rec": L.reconstruction(xb, xh, c.rec_reduction)}       # eq. 2

            self.train_stage(model, step, stage="pretrain", epochs=c.epochs,
                             steps_per_epoch=self.steps_per_epoch(len(x)), hooks=hooks,
                             l2=c.l2, l2_params=conv_weights(model))
        if c.bn_recalibrate:
            hooks.on_status("re-estimating the batch-norm statistics")
            recalibrate_batchnorm(model, x, self.device_)
        model.eval()
        self.pretrain_seconds_ = time.perf_counter() - t0
        self.pretrain_reused_ = False
        if c.reuse_pretrain:
            self._save_cache(path)
        return model

    def _load_cache(self, path, hooks) -> bool:
        try:
            blob = torch.load(path, map_location=self.device_, weights_only=True)
            self.model_.load_state_dict(blob["state"])
        except Exception as exc:  # noqa: BLE001 - a bad cache entry is retrained
            log.warning("ignoring unreadable stage-1 cache %s: %s", path, exc)
            return False
        self.model_.eval()
        for rec in blob["history"]:
            self.history.append(rec)
        self.pretrain_seconds_ = float(blob["seconds"])
        self.pretrain_reused_ = True
        hooks.on_status("reused a cached stage-1 autoencoder")
        for rec in blob["history"]:  # replay so live curves show stage 1 too
            hooks.on_step(rec)
        return True

    def _save_cache(self, path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{id(self)}.tmp")
            torch.save({"state": {k: v.cpu() for k, v in self.model_.state_dict().items()},
                        "history": [r for r in self.history.to_json()
                                    if r.get("stage") == "pretrain"],
                        "seconds": self.pretrain_seconds_}, tmp)
            tmp.replace(path)
        except OSError as exc:
            log.warning("could not cache the stage-1 autoencoder: %s", exc)

    # -- stage 2 -------------------------------------------------------------------------
    def reconstruct(self, x) -> torch.Tensor:
        return self.predict(lambda b: self.model_(b)[1], as_images(x))

    def compute_split(self, x, hooks: Hooks | None = None, rho: float | None = None,
                      x_hat: torch.Tensor | None = None) -> SplitResult:
        """Stage 2: similarity of each image to its reconstruction -> typical / atypical."""
        c = self.config
        (hooks or Hooks()).on_status(f"measuring {c.similarity.upper()} of every "
                                     "reconstruction")
        x = as_images(x)
        x_hat = self.reconstruct(x) if x_hat is None else x_hat
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # reported where it matters
            return split(x, x_hat, rho=c.rho if rho is None else rho, metric=c.similarity,
                         data_range=c.ssim_data_range)

    # -- as a method ----------------------------------------------------------------------
    def _fit(self, x, hooks):
        self.pretrain(x, hooks)
        self.split_ = self.compute_split(x, hooks)
        return {"similarity": self.split_.similarity}

    def _scores(self, x):
        x_hat = self.reconstruct(x)
        if self.config.similarity == "ssim":
            return {"similarity": ssim(x, x_hat, data_range=self.config.ssim_data_range,
                                       exact=True).numpy()}
        return {"similarity": -(x - x_hat).pow(2).flatten(1).mean(1).numpy()}

    def _embed(self, x):
        return self.predict(self.model_.encoder, x).numpy().astype(np.float64)

    def fit_info(self) -> dict:
        return stage1_info(self)

    def fit_arrays(self) -> dict[str, np.ndarray]:
        return split_arrays(getattr(self, "split_", None))

    def state_dict(self):
        self._check_fitted()
        return self.nets_state()

    def load_state_dict(self, sd):
        self.load_nets_state(sd)
        self.fitted_ = True
        return self


def stage1_info(m) -> dict:
    """Whether a method's stage-1 autoencoder came from the cache, and its seconds."""
    return {"pretrain_reused": bool(getattr(m, "pretrain_reused_", False)),
            "pretrain_seconds": float(getattr(m, "pretrain_seconds_", 0.0))}


def split_arrays(split) -> dict[str, np.ndarray]:
    """A split's per-training-sample arrays, as runs store them (none without a split)."""
    if split is None:
        return {}
    return {"split_similarity": split.similarity, "split_atypical": split.atypical}


def stage1_config(cfg, epochs_field: str = "pretrain_epochs") -> SplitConfig:
    """The splitting-autoencoder settings inside another method's config (same names;
    ``epochs_field`` holds the stage-1 epochs)."""
    names = {f.name for f in fields(SplitConfig)} - {"epochs"}
    kw = {k: getattr(cfg, k) for k in names if hasattr(cfg, k)}
    kw["epochs"] = getattr(cfg, epochs_field)
    return SplitConfig(**kw)


class SSIMError(SplitAutoencoder):
    """The end-to-end paper's SSIM baseline: SSIM between an image and its reconstruction by
    the splitting autoencoder is the normality score (Table 1's SSIM)."""

    name = "ssim-error"
    title = "SSIM of the autoencoder's reconstruction"
    paper = "Schlachter, Liao, Yang 2019, Deep One-Class Classification Using Intra-Class Splitting"
    paper_key = "ics_end_to_end"
    paper_label = "SSIM"
    table_order = 35
    explain_heads = ("own",)

    def score_model(self, head):
        if head != "own":
            return super().score_model(head)
        return _SSIMScore(self.model_.eval())

    def cam_layers(self):
        return self.model_.encoder.conv_layers()


class _SSIMScore(torch.nn.Module):
    def __init__(self, ae) -> None:
        super().__init__()
        self.ae = ae

    def forward(self, x):
        return ssim(x, self.ae(x)[1]).to(torch.float64)
