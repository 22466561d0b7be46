"""Autoencoder-based methods of the ICS feature-learning paper (Schlachter et al. 2019).

All three share the paper autoencoder (``ocvis.nets.PaperAutoencoder``, Tables 2 and 3), the
same schedule and the OC-SVM on the encoder output (Sec. 4.1.2: nu = 0.1, gamma = 1/64):

* stage 1 ``pretrain``: reconstruction only (L_rec, eq. 2) on all normal training data;
* stage 2 (ICS only): split by SSIM of x vs. its reconstruction, lowest rho % atypical;
* stage 3 ``joint``:
    - ``ics``: L_rec + alpha L_cls + beta1 L_disp1 + beta2 L_disp2 (eq. 1), closeness on the
      typical, dispersion among the atypical and between the two subsets;
    - ``cls``: L_rec + alpha L_cls on all data (closeness without splitting, Sec. 4.1.3);
    - ``cae``: L_rec only (a plain autoencoder trained for both stages' epochs).

Choices where the paper is silent (all configurable):

* Optimiser Adam, lr 1e-3 (Keras' defaults; the paper names neither). Epochs are not
  stated: the ``paper`` preset trains 50 + 50 epochs, the ``cpu`` preset 8 + 8 with at
  least 50 steps per stage (``min_steps``: 25 + 25 epochs on the small digits set). The
  ``cpu`` preset is enough on Fashion-MNIST but undertrains MNIST: ICS on MNIST 4 gives
  AUROC 90.2 with 8 + 8 and 96.5 with 50 + 50 epochs (paper 95.7), CAE 80.3 and 91.0
  (paper 92.7; bench/NOTES.md).
* L_rec is the per-pixel mean squared error (``rec_reduction="mean"``, Keras' ``"mse"``:
  the text calls it "an ordinary mean squared error loss" and the model is Keras). Eq. 2 as
  printed sums over the pixels (``"sum"``), which makes L_rec ~1000x larger, so alpha = 1
  closeness becomes negligible and CLS behaves like CAE, unlike the paper's Table 1 / Fig. 3
  (measured on MNIST class 3, 8 + 8 epochs: CLS AUROC 82.4 with "sum", 93.5 with "mean";
  commands in bench/NOTES.md).
* L2 1e-6 on every convolution kernel, added to the loss like Keras' ``kernel_regularizer``.
* Stage 3 of ``ics`` (``batch_mode``): the paper does not say how typical and atypical images
  meet in a batch. ``"mixed"`` (default) takes ordinary batches of B images of the whole
  training set and applies each term to the batch's typical / atypical members;
  ``"paired"`` reads eqs. 3-4 literally, B typical + B atypical images per step (an epoch is
  one pass over the typical images, the atypical ones cycle, so they are seen ~9x as often).
  Measured (4,000 images, cpu preset, AUROC, ``bench/compare_configs.py``): Fashion-MNIST
  T-shirt mixed 92.4 vs paired 87.0 (paper 93.0), MNIST 3 mixed 93.2 vs paired 94.1 (paper
  96.5); mixed is also half the cost per epoch.
* The stage-1 autoencoder is cached on disk by a hash of the training images and the stage-1
  settings (``reuse_pretrain``), so the Split page, ``cae``, ``cls`` and ``ics`` with equal
  settings train it once; the stored stage-1 history and time come along.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ocvis import losses as L
from ocvis.config import cache_root
from ocvis.data.datasets import OcvisWarning
from ocvis.errors import DataError
from ocvis.methods.base import DetectorConfig, Method, option
from ocvis.nets import PaperAutoencoder
from ocvis.nets.paper_ae import conv_weights
from ocvis.split import SplitResult, split
from ocvis.train import (Hooks, batches, make_optimizer, predict, resolve_device,
                         run_epochs, seed_everything, to_device)

log = logging.getLogger(__name__)
PAPER = "Schlachter et al. 2019, One-Class Feature Learning Using Intra-Class Splitting"
LATENT_DIM = 64        # Sec. 4.1.2
BATCH_SIZE = 64        # Sec. 4.1.2
L2_WEIGHT = 1e-6       # Sec. 4.1.2, every conv layer
ALPHA = 1.0            # Sec. 4.1.2
BETA = 1e-5            # Sec. 4.1.2, beta1 = beta2
RHO = 10.0             # Sec. 4.1.2, % atypical


@dataclass
class AEConfig(DetectorConfig):
    latent_dim: int = option(LATENT_DIM, "latent units (paper: 64)", min=2, max=1024)
    pretrain_epochs: int = option(50, "stage 1 epochs: reconstruction only", min=1, max=1000)
    epochs: int = option(50, "stage 3 epochs: the method's joint loss", min=0, max=1000)
    batch_size: int = option(BATCH_SIZE, "mini-batch size B (paper: 64)", min=2, max=4096)
    lr: float = option(1e-3, "learning rate", min=1e-6, max=1.0, log=True)
    optimizer: str = option("adam", "optimiser", choices=("adam", "sgd", "rmsprop"))
    l2: float = option(L2_WEIGHT, "L2 weight on conv kernels (paper: 1e-6)", min=0.0, max=1.0)
    rec_reduction: str = option("mean", "L_rec over pixels: mean (Keras mse) or sum (eq. 2)",
                                choices=("sum", "mean"))
    device: str = option("auto", "cuda > mps > cpu when auto",
                         choices=("auto", "cpu", "cuda", "mps"))
    reuse_pretrain: bool = option(True, "reuse a cached stage-1 autoencoder with equal settings")
    min_steps: int = option(0, "at least this many optimiser steps per stage (more epochs "
                               "on small datasets such as the 8x8 digits)", min=0, max=100000)


@dataclass
class CLSConfig(AEConfig):
    alpha: float = option(ALPHA, "closeness weight alpha (paper: 1)", min=0.0, max=1e3)


@dataclass
class ICSConfig(CLSConfig):
    beta1: float = option(BETA, "dispersion weight among atypical (paper: 1e-5)",
                          min=0.0, max=1e3, log=True)
    beta2: float = option(BETA, "dispersion weight typical vs atypical (paper: 1e-5)",
                          min=0.0, max=1e3, log=True)
    rho: float = option(RHO, "% of the normal data declared atypical (paper: 10)",
                        min=0.0, max=99.0)
    similarity: str = option("ssim", "split metric between x and its reconstruction",
                             choices=("ssim", "mse"))
    batch_mode: str = option("mixed", "stage 3 batches: 'paired' = B typical + B atypical "
                                       "per step (eqs. 3-4 literally); 'mixed' = B samples "
                                       "of the whole set, losses on their typical / atypical "
                                       "members", choices=("paired", "mixed"))


AE_PRESETS = {
    "paper": {"pretrain_epochs": 50, "epochs": 50},
    "cpu": {"pretrain_epochs": 8, "epochs": 8, "min_steps": 50},  # digits: 25 + 25 epochs
    "tiny": {"pretrain_epochs": 1, "epochs": 1},
}


def _digest(x: torch.Tensor) -> str:
    return hashlib.sha1(x.contiguous().numpy().tobytes()).hexdigest()


class _AEMethod(Method):
    """Shared machinery: the autoencoder, stage 1 (cached), embedding by the encoder."""

    paper = PAPER
    Config = AEConfig
    presets = AE_PRESETS
    deep = True
    stages = ("pretrain", "joint")

    def _build(self, channels: int) -> PaperAutoencoder:
        return PaperAutoencoder(in_channels=channels, latent_dim=self.config.latent_dim)

    # -- stage 1 -----------------------------------------------------------------------
    def _epochs(self, epochs: int, steps_per_epoch: int) -> int:
        """``epochs``, raised so that a stage takes at least ``min_steps`` steps."""
        need = -(-self.config.min_steps // max(1, steps_per_epoch))
        return max(epochs, need) if epochs > 0 else 0

    def _steps_per_epoch(self, n: int) -> int:
        return len(list(batches(n, self.config.batch_size, torch.Generator(), shuffle=False)))

    def _run_joint(self, step, n_steps: int, opt, weights: dict, hooks: Hooks) -> None:
        """Stage 3: ``epochs`` (at least ``min_steps`` steps) of ``step``, weighted terms,
        the paper's L2 on the conv kernels, history continued after stage 1."""
        c = self.config
        run_epochs(self.model_, step, stage="joint", epochs=self._epochs(c.epochs, n_steps),
                   steps_per_epoch=n_steps, optimizer=opt, weights=weights, l2=c.l2,
                   l2_params=conv_weights(self.model_), hooks=hooks, history=self.history,
                   global_step=len(self.history))

    def _pretrain_key(self, x: torch.Tensor) -> str:
        c = self.config
        keys = {k: getattr(c, k) for k in ("latent_dim", "batch_size", "lr",
                                           "optimizer", "l2", "rec_reduction", "seed")}
        keys["pretrain_epochs"] = self._epochs(c.pretrain_epochs, self._steps_per_epoch(len(x)))
        keys.update(data=_digest(x), torch=torch.__version__.split("+")[0], v=1)
        return hashlib.sha1(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:20]

    def pretrain(self, x: torch.Tensor, hooks: Hooks | None = None) -> None:
        """Stage 1: the autoencoder on all normal training data, reconstruction only."""
        hooks = hooks or Hooks()
        c = self.config
        self.device_ = resolve_device(c.device)
        path = cache_root() / "pretrain" / f"{self._pretrain_key(x)}.pt"
        g = seed_everything(c.seed)
        self.model_ = to_device(self._build(x.shape[1]), self.device_)
        if c.reuse_pretrain and path.exists():
            try:
                blob = torch.load(path, map_location=self.device_, weights_only=True)
                self.model_.load_state_dict(blob["state"])
                for rec in blob["history"]:
                    self.history.append(rec)
                self.pretrain_seconds_ = float(blob["seconds"])
                self.pretrain_reused_ = True
                hooks.on_status("reused a cached stage-1 autoencoder")
                for rec in blob["history"]:  # replay so live curves show stage 1 too
                    hooks.on_step(rec)
                return
            except Exception as exc:  # noqa: BLE001 - a bad cache entry is retrained
                log.warning("ignoring unreadable pretrain cache %s: %s", path, exc)
                self.model_ = to_device(self._build(x.shape[1]), self.device_)
        t0 = time.perf_counter()
        opt = make_optimizer(c.optimizer, self.model_.parameters(), c.lr)
        n_steps = self._steps_per_epoch(len(x))
        state = {"idx": None}

        def step(i: int):
            if i == 0:
                state["idx"] = list(batches(len(x), c.batch_size, g))
            xb = x[state["idx"][i]].to(self.device_, non_blocking=True)
            _, xh = self.model_(xb)
            return {"rec": L.reconstruction(xb, xh, c.rec_reduction)}

        run_epochs(self.model_, step, stage="pretrain",
                   epochs=self._epochs(c.pretrain_epochs, n_steps),
                   steps_per_epoch=n_steps, optimizer=opt, l2=c.l2,
                   l2_params=conv_weights(self.model_), hooks=hooks, history=self.history)
        self.pretrain_seconds_ = time.perf_counter() - t0
        self.pretrain_reused_ = False
        if c.reuse_pretrain:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                torch.save({"state": {k: v.cpu() for k, v in self.model_.state_dict().items()},
                            "history": self.history.to_json(),
                            "seconds": self.pretrain_seconds_}, tmp)
                tmp.replace(path)
            except OSError as exc:
                log.warning("could not cache the stage-1 autoencoder: %s", exc)

    def reconstruct(self, x) -> torch.Tensor:
        from ocvis.methods.base import as_images

        self.model_.eval()
        return predict(lambda b: self.model_(b)[1], as_images(x), self.device_)

    def compute_split(self, x: torch.Tensor, hooks: Hooks | None = None) -> SplitResult:
        """Stage 2: similarity of each image to its stage-1 reconstruction -> typical /
        atypical (ICS trains on it; CAE and CLS keep it for display only, as the paper's
        Fig. 3 colours the CLS latents by it)."""
        (hooks or Hooks()).on_status(f"splitting by {self.similarity.upper()}")
        x_hat = self.reconstruct(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # reported where it matters
            return split(x, x_hat, rho=self.rho, metric=self.similarity)

    @property
    def rho(self) -> float:
        return float(getattr(self.config, "rho", RHO))

    @property
    def similarity(self) -> str:
        return str(getattr(self.config, "similarity", "ssim"))

    # -- stage 3 -----------------------------------------------------------------------
    def _joint(self, x: torch.Tensor, hooks: Hooks) -> None:
        raise NotImplementedError

    def _fit(self, x: torch.Tensor, hooks: Hooks) -> None:
        if len(x) < 2:
            raise DataError("at least two training images are needed")
        self.pretrain(x, hooks)
        self.split_ = self.compute_split(x, hooks)
        self.joint_generator_ = torch.Generator().manual_seed(self.config.seed + 1)
        if self.config.epochs > 0:
            self._joint(x, hooks)
        self.model_.eval()

    def _embed(self, x: torch.Tensor) -> np.ndarray:
        self._check_model()
        self.model_.eval()
        return predict(self.model_.encoder, x, self.device_).numpy().astype(np.float64)

    def torch_features(self) -> torch.nn.Module:
        """The encoder (eval mode): differentiable features for explanations."""
        self._check_model()
        return self.model_.encoder.eval()

    def cam_layers(self) -> list[tuple[str, torch.nn.Module, int]]:
        """Encoder convolutions with their output size (for GradCAM)."""
        self._check_model()
        return self.model_.encoder.conv_layers()

    def _check_model(self) -> None:
        if not hasattr(self, "model_"):
            raise DataError(f"{self.name} is not fitted yet: call fit first")

    def _net_state(self):
        return {k: v.detach().cpu() for k, v in self.model_.state_dict().items()}

    def state_dict(self):
        sd = super().state_dict()
        if hasattr(self, "split_"):
            sd["split_similarity"] = torch.from_numpy(np.array(self.split_.similarity))
        return sd

    def _load_net_state(self, sd):
        channels = int(sd["decoder.conv12.weight"].shape[0]) if "decoder.conv12.weight" in sd \
            else int(next(v for k, v in sd.items() if k.endswith("weight") and v.ndim == 4).shape[1])
        self.device_ = resolve_device(self.config.device)
        self.model_ = to_device(self._build(channels), self.device_)
        self.model_.load_state_dict(sd)
        self.model_.eval()

    def _plain_joint(self, x: torch.Tensor, hooks: Hooks, alpha: float) -> None:
        """Stage 3 on all data: L_rec (+ alpha L_cls when alpha > 0)."""
        c = self.config
        g = self.joint_generator_
        opt = make_optimizer(c.optimizer, self.model_.parameters(), c.lr)
        order = {"idx": None}
        n_steps = self._steps_per_epoch(len(x))

        def step(i: int):
            if i == 0:
                order["idx"] = list(batches(len(x), c.batch_size, g))
            xb = x[order["idx"][i]].to(self.device_, non_blocking=True)
            z, xh = self.model_(xb)
            terms = {"rec": L.reconstruction(xb, xh, c.rec_reduction)}
            if alpha > 0:
                terms["cls"] = L.closeness(z, L.partner_shift(len(z), g))  # eq. 3
            return terms

        self._run_joint(step, n_steps, opt, {"cls": alpha}, hooks)


class CAE(_AEMethod):
    """Convolutional autoencoder baseline (CAE, Sec. 4.1.3): reconstruction only."""

    name = "cae"
    title = "CAE: autoencoder features + OC-SVM"

    def _joint(self, x, hooks):
        self._plain_joint(x, hooks, alpha=0.0)


class CLS(_AEMethod):
    """Autoencoder with closeness loss, no splitting (CLS, Sec. 4.1.3)."""

    name = "cls"
    title = "CLS: autoencoder + closeness loss + OC-SVM"
    Config = CLSConfig

    def _joint(self, x, hooks):
        self._plain_joint(x, hooks, alpha=self.config.alpha)


class ICS(_AEMethod):
    """One-class feature learning by intra-class splitting (the paper's method, eq. 1)."""

    name = "ics"
    title = "ICS: intra-class splitting feature learning + OC-SVM"
    Config = ICSConfig

    def _joint(self, x, hooks):
        c = self.config
        typ = np.flatnonzero(self.split_.typical)
        aty = np.flatnonzero(self.split_.atypical)
        if len(aty) < 2:
            msg = (f"rho = {c.rho} % of {len(x)} images gives {len(aty)} atypical image(s); "
                   "the dispersion losses need at least two, so stage 3 uses closeness and "
                   "reconstruction only")
            warnings.warn(msg, OcvisWarning, stacklevel=2)
            hooks.on_status(msg)
            self._plain_joint(x, hooks, alpha=c.alpha)
            return
        if c.batch_mode == "mixed":
            self._mixed_joint(x, hooks)
            return
        g = self.joint_generator_
        opt = make_optimizer(c.optimizer, self.model_.parameters(), c.lr)
        x_typ, x_aty = x[torch.from_numpy(typ)], x[torch.from_numpy(aty)]
        b_aty = min(c.batch_size, len(aty))
        n_steps = self._steps_per_epoch(len(typ))
        state = {"typ": None, "aty": [], "pos": 0}

        def next_atypical() -> torch.Tensor:
            if state["pos"] + b_aty > len(state["aty"]):
                state["aty"] = torch.randperm(len(aty), generator=g)
                state["pos"] = 0
            idx = state["aty"][state["pos"]:state["pos"] + b_aty]
            state["pos"] += b_aty
            return idx

        def step(i: int):
            if i == 0:
                state["typ"] = list(batches(len(typ), c.batch_size, g))
            xt = x_typ[state["typ"][i]]
            xa = x_aty[next_atypical()]
            xb = torch.cat([xt, xa]).to(self.device_, non_blocking=True)
            z, xh = self.model_(xb)
            zt, za = z[:len(xt)], z[len(xt):]
            perm = torch.randperm(len(zt), generator=g).to(zt.device)
            return {
                "rec": L.reconstruction(xb, xh, c.rec_reduction),                  # eq. 2
                "cls": L.closeness(zt, L.partner_shift(len(zt), g)),               # eq. 3
                "disp1": L.dispersion_atypical(za, L.partner_shift(len(za), g)),   # eq. 4
                "disp2": L.dispersion_typical_atypical(za, zt[perm]),              # eq. 4
            }

        self._run_joint(step, n_steps, opt,
                        {"cls": c.alpha, "disp1": c.beta1, "disp2": c.beta2}, hooks)

    def _mixed_joint(self, x, hooks):
        """Stage 3 with ordinary batches of the whole training set: each loss term uses the
        typical / atypical members of the batch (a term is 0 when its subset has < 2)."""
        c = self.config
        g = self.joint_generator_
        opt = make_optimizer(c.optimizer, self.model_.parameters(), c.lr)
        aty_mask = torch.from_numpy(np.array(self.split_.atypical))
        n_steps = self._steps_per_epoch(len(x))
        state = {"idx": None}
        zero = torch.zeros((), device=self.device_)

        def step(i: int):
            if i == 0:
                state["idx"] = list(batches(len(x), c.batch_size, g))
            idx = state["idx"][i]
            xb = x[idx].to(self.device_, non_blocking=True)
            a = aty_mask[idx].to(self.device_)
            z, xh = self.model_(xb)
            zt, za = z[~a], z[a]
            terms = {"rec": L.reconstruction(xb, xh, c.rec_reduction)}                # eq. 2
            terms["cls"] = L.closeness(zt, L.partner_shift(len(zt), g)) \
                if len(zt) >= 2 else zero                                              # eq. 3
            terms["disp1"] = L.dispersion_atypical(za, L.partner_shift(len(za), g)) \
                if len(za) >= 2 else zero                                              # eq. 4
            if len(za) and len(zt):
                pick = torch.randint(0, len(zt), (len(za),), generator=g).to(zt.device)
                terms["disp2"] = L.dispersion_typical_atypical(za, zt[pick])           # eq. 4
            else:
                terms["disp2"] = zero
            return terms

        self._run_joint(step, n_steps, opt,
                        {"cls": c.alpha, "disp1": c.beta1, "disp2": c.beta2}, hooks)
