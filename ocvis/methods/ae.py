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
* Stages 1 and 2 are the :class:`~ocvis.methods.split_ae.SplitAutoencoder` component,
  cached on disk by a hash of the training images, the stage-1 settings and the code version
  (``reuse_pretrain``), so the Split page, ``cae``, ``cls`` and ``ics`` with equal settings
  train it once; the stored stage-1 history and time come along. Stage 3 continues training
  the same network.
* After each stage the batch-norm statistics are re-estimated on the training images
  (``bn_recalibrate``; the short ``cpu`` schedules leave Keras-momentum running statistics
  near their initial values, see :mod:`ocvis.methods.split_ae`).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ocvis import losses as L
from ocvis.errors import DataError, OcvisWarning
from ocvis.methods.base import DetectorConfig, FeatureMethod, option
from ocvis.methods.deep import DeepConfig, DeepMethod
from ocvis.methods.split_ae import (BATCH_SIZE, L2_WEIGHT, LATENT_DIM, RHO, SplitAutoencoder,
                                    split_arrays, stage1_config, stage1_info)
from ocvis.nets import PaperAutoencoder
from ocvis.nets.paper_ae import conv_weights
from ocvis.train import Hooks, recalibrate_batchnorm

log = logging.getLogger(__name__)
PAPER = "Schlachter et al. 2019, One-Class Feature Learning Using Intra-Class Splitting"
PAPER_KEY = "ics_feature_learning"
ALPHA = 1.0            # Sec. 4.1.2
BETA = 1e-5            # Sec. 4.1.2, beta1 = beta2


@dataclass
class AEConfig(DetectorConfig, DeepConfig):
    latent_dim: int = option(LATENT_DIM, "latent units (paper: 64)", min=2, max=1024)
    pretrain_epochs: int = option(50, "stage 1 epochs: reconstruction only", min=1, max=1000)
    epochs: int = option(50, "stage 3 epochs: the method's joint loss", min=0, max=1000)
    batch_size: int = option(BATCH_SIZE, "mini-batch size B (paper: 64)", min=2, max=4096)
    l2: float = option(L2_WEIGHT, "L2 weight on conv kernels (paper: 1e-6)", min=0.0, max=1.0)
    rec_reduction: str = option("mean", "L_rec over pixels: mean (Keras mse) or sum (eq. 2)",
                                choices=("sum", "mean"))
    reuse_pretrain: bool = option(True, "reuse a cached stage-1 autoencoder with equal settings")
    bn_recalibrate: bool = option(True, "re-estimate the batch-norm statistics on the "
                                        "training images after each stage (see split_ae)")


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


class _AEMethod(DeepMethod, FeatureMethod):
    """Shared machinery: stages 1-2 by the split component, embedding by the encoder."""

    paper = PAPER
    paper_key = PAPER_KEY
    Config = AEConfig
    presets = AE_PRESETS
    stages = ("pretrain", "joint")
    net_factories = {"paper_ae": PaperAutoencoder}
    # the detector's score, and the reconstruction error (the E3Outlier paper's CAE baseline)
    score_names = ("score", "reconstruction")
    score_help = {"score": "the detector on the encoder's latent representation",
                  "reconstruction": "negative mean squared reconstruction error"}

    def _fit(self, x, hooks):
        scores = super()._fit(x, hooks)
        scores["reconstruction"] = self._reconstruction_score(x)
        return scores

    def _scores(self, x):
        out = super()._scores(x)
        out["reconstruction"] = self._reconstruction_score(x)
        return out

    def _reconstruction_score(self, x) -> np.ndarray:
        """Normality = minus the mean squared reconstruction error of each image."""
        model = self.model_
        err = self.predict(lambda b: ((model(b)[1] - b) ** 2).flatten(1).mean(1), x)
        return -err.numpy().astype(np.float64)

    @property
    def model_(self) -> PaperAutoencoder:
        self._check_model()
        return self.nets["model"]

    @property
    def rho(self) -> float:
        return float(getattr(self.config, "rho", RHO))

    def _fit_features(self, x: torch.Tensor, hooks: Hooks) -> None:
        if len(x) < 2:
            raise DataError("at least two training images are needed")
        stage1 = SplitAutoencoder(stage1_config(self.config))
        stage1.history = self.history          # one curve: stage 1 then stage 3
        stage1.pretrain(x, hooks)
        self.pretrain_seconds_ = stage1.pretrain_seconds_
        self.pretrain_reused_ = stage1.pretrain_reused_
        # stage 3 goes on training the same network (saved with its build arguments)
        self.nets_ = {"model": stage1.model_}
        self.net_args_ = dict(stage1.net_args_)
        # ICS trains on the split; CAE and CLS keep it for display only, as the paper's
        # Fig. 3 colours the CLS latents by it
        self.split_ = stage1.compute_split(x, hooks)
        self.joint_generator_ = torch.Generator().manual_seed(self.config.seed + 1)
        if self.config.epochs > 0:
            self._joint(x, hooks)
            if self.config.bn_recalibrate:
                hooks.on_status("re-estimating the batch-norm statistics")
                recalibrate_batchnorm(self.model_, x, self.device_)
        self.model_.eval()

    def _joint(self, x: torch.Tensor, hooks: Hooks) -> None:
        raise NotImplementedError

    def _run_joint(self, step, n_steps: int, weights: dict, hooks: Hooks) -> None:
        """Stage 3: ``epochs`` (at least ``min_steps`` steps) of ``step``, weighted terms,
        the paper's L2 on the conv kernels, history continued after stage 1."""
        c = self.config
        self.train_stage(self.model_, step, stage="joint", epochs=c.epochs,
                         steps_per_epoch=n_steps, hooks=hooks, weights=weights, l2=c.l2,
                         l2_params=conv_weights(self.model_))

    def _embed(self, x: torch.Tensor) -> np.ndarray:
        return self.predict(self.model_.encoder, x).numpy().astype(np.float64)

    def reconstruct(self, x) -> torch.Tensor:
        from ocvis.methods.base import as_images

        return self.predict(lambda b: self.model_(b)[1], as_images(x))

    def torch_features(self) -> torch.nn.Module:
        """The encoder (eval mode): differentiable features for explanations."""
        return self.model_.encoder.eval()

    def cam_layers(self) -> list[tuple[str, torch.nn.Module, int]]:
        """Encoder convolutions with their output size (for GradCAM)."""
        return self.model_.encoder.conv_layers()

    def _check_model(self) -> None:
        if "model" not in self.nets:
            raise DataError(f"{self.name} is not fitted yet: call fit first")

    def fit_info(self) -> dict:
        info = super().fit_info()
        info.update(stage1_info(self))
        return info

    def fit_arrays(self) -> dict[str, np.ndarray]:
        return split_arrays(getattr(self, "split_", None))

    # -- persistence --------------------------------------------------------------------
    def _net_state(self):
        sd = self.nets_state()
        return {k[4:] if k.startswith("net.") else k: v for k, v in sd.items()}

    def state_dict(self):
        sd = super().state_dict()
        if hasattr(self, "split_"):
            sd["split_similarity"] = torch.from_numpy(np.array(self.split_.similarity))
        rec = getattr(self, "train_scores_", {}).get("reconstruction")
        if rec is not None:
            sd["train_reconstruction"] = torch.from_numpy(np.asarray(rec))
        return sd

    def load_state_dict(self, sd):
        out = super().load_state_dict(sd)
        if "train_reconstruction" in sd:
            self.train_scores_["reconstruction"] = sd["train_reconstruction"].numpy()
        return out

    def _load_net_state(self, sd):
        if "net_args" in sd:  # saved with its build arguments
            self.load_nets_state({("net." + k if k != "net_args" else k): v
                                  for k, v in sd.items()})
            return
        # runs stored before build arguments were saved: the channels from the weights
        w = sd.get("decoder.conv12.weight")
        channels = int(w.shape[0]) if w is not None else \
            int(next(v for k, v in sd.items() if k.endswith("weight") and v.ndim == 4).shape[1])
        model = self.build("model", "paper_ae", in_channels=channels,
                           latent_dim=int(self.config.latent_dim))
        model.load_state_dict(sd)
        model.eval()

    def _plain_joint(self, x: torch.Tensor, hooks: Hooks, alpha: float) -> None:
        """Stage 3 on all data: L_rec (+ alpha L_cls when alpha > 0)."""
        c = self.config
        g = self.joint_generator_
        index = self._joint_batches(len(x))

        def step(i: int):
            xb = x[index(i)].to(self.device_, non_blocking=True)
            z, xh = self.model_(xb)
            terms = {"rec": L.reconstruction(xb, xh, c.rec_reduction)}             # eq. 2
            if alpha > 0:
                terms["cls"] = L.closeness(z, L.partner_shift(len(z), g))          # eq. 3
            return terms

        self._run_joint(step, self.steps_per_epoch(len(x)), {"cls": alpha}, hooks)

    def _joint_batches(self, n: int):
        """Stage-3 batches from the stage's own generator (seed + 1)."""
        return self.epoch_batches(n, generator=self.joint_generator_)


class CAE(_AEMethod):
    """Convolutional autoencoder baseline (CAE, Sec. 4.1.3): reconstruction only."""

    name = "cae"
    # one trained CAE gives the E3Outlier paper's two CAE baselines: its reconstruction error
    # ("CAE") and an Isolation Forest on its latent ("CAE-IF", the same numbers as the
    # ``cae-iforest`` method of the same seed, whose primary score it is)
    score_names = ("score", "reconstruction", "iforest")
    extra_detectors = {"iforest": "iforest"}
    paper_scores = {"reconstruction": ("e3outlier", "CAE"), "iforest": ("e3outlier", "CAE-IF")}
    score_help = {**_AEMethod.score_help,
                  "iforest": "Isolation Forest on the encoder's latent (CAE-IF)"}
    title = "CAE: autoencoder features + OC-SVM"
    paper_label = "CAE"
    table_order = 2

    def _joint(self, x, hooks):
        self._plain_joint(x, hooks, alpha=0.0)


class CAEIForest(CAE):
    """CAE-IF (a baseline of the E3Outlier paper): Isolation Forest on the CAE's latent."""

    name = "cae-iforest"
    score_names = ("score", "reconstruction")  # the Isolation Forest is its primary score
    extra_detectors: dict[str, str] = {}
    paper_scores = {"reconstruction": ("e3outlier", "CAE")}
    title = "CAE-IF: autoencoder features + Isolation Forest"
    paper_key = "e3outlier"
    paper_label = "CAE-IF"
    table_order = 52
    presets = {k: {**v, "detector": "iforest"} for k, v in AE_PRESETS.items()}


class CLS(_AEMethod):
    """Autoencoder with closeness loss, no splitting (CLS, Sec. 4.1.3)."""

    name = "cls"
    title = "CLS: autoencoder + closeness loss + OC-SVM"
    paper_label = "CLS"
    table_order = 1
    Config = CLSConfig

    def _joint(self, x, hooks):
        self._plain_joint(x, hooks, alpha=self.config.alpha)


class ICS(_AEMethod):
    """One-class feature learning by intra-class splitting (the paper's method, eq. 1)."""

    name = "ics"
    title = "ICS: intra-class splitting feature learning + OC-SVM"
    paper_label = "ICS"
    table_order = 0
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
        x_typ, x_aty = x[torch.from_numpy(typ)], x[torch.from_numpy(aty)]
        b_aty = min(c.batch_size, len(aty))
        index = self._joint_batches(len(typ))
        state = {"aty": [], "pos": 0}

        def next_atypical() -> torch.Tensor:
            if state["pos"] + b_aty > len(state["aty"]):
                state["aty"] = torch.randperm(len(aty), generator=g)
                state["pos"] = 0
            idx = state["aty"][state["pos"]:state["pos"] + b_aty]
            state["pos"] += b_aty
            return idx

        def step(i: int):
            xt = x_typ[index(i)]
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

        self._run_joint(step, self.steps_per_epoch(len(typ)),
                        {"cls": c.alpha, "disp1": c.beta1, "disp2": c.beta2}, hooks)

    def _mixed_joint(self, x, hooks):
        """Stage 3 with ordinary batches of the whole training set: each loss term uses the
        typical / atypical members of the batch (a term is 0 when its subset has < 2)."""
        c = self.config
        g = self.joint_generator_
        aty_mask = torch.from_numpy(np.array(self.split_.atypical))
        index = self._joint_batches(len(x))
        zero = torch.zeros((), device=self.device_)

        def step(i: int):
            idx = index(i)
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

        self._run_joint(step, self.steps_per_epoch(len(x)),
                        {"cls": c.alpha, "disp1": c.beta1, "disp2": c.beta2}, hooks)
