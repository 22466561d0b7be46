"""Two-stage deep one-class classification (Sohn, Li, Yoon, Jin, Pfister; ICLR 2021).

Stage 1 learns a representation ``f`` with a self-supervised task on the normal training
images only; stage 2 builds shallow one-class detectors on the L2-normalised ``f``. One run
stores the scores of every detector (and RotNet's own rotation score), so Evaluate compares
them without retraining; the detector in the config is the primary score.

Methods:

* ``rotnet``: 4-way rotation prediction (Gidaris et al.) of every image under its four
  right-angle rotations, through an MLP head (``head_dims``; ``()`` = the identity head, a
  linear classifier on ``f``). Two extra scores, the two readings of the paper's end-to-end
  RotNet baseline (its Table 1 lists both for Golan & El-Yaniv): ``rotation`` = mean_k
  log p(k | rot_k(x)) over the four rotations of the test image (test-time augmentation; the
  authors' code's ``dscore``), and ``rotation_p0`` = log p(0 | x), the un-rotated image alone
  (the code's ``logit.auc``; like KDE on f(x), no test-time augmentation).
* ``contrastive``: two augmented views per image (square random crop of 25-100 % of the
  area, flip, colour jitter 0.4 always applied, greyscale 0.2; :mod:`ocvis.augment`), loss of
  eq. 2 with temperature 0.2 on ``normalize(g(f(x)))``.
* ``contrastive-da``: distribution-augmented contrastive learning (Sec. 3.1.3): the four
  rotations of every image are separate instances (sampled on the fly; an epoch is one pass
  over the 4 N instances), so rotated copies are negatives of each other.
* ``dae``: the denoising-autoencoder baseline: the same backbone as encoder, a light
  transposed-convolution decoder, Gaussian input noise (``noise``), mean squared error.

Detectors (App. A.4): KDE and RBF OC-SVM with gamma = 10 / (dim * Var(f)) on normalised
features (the OC-SVM with scikit-learn's default nu = 0.5), linear OC-SVM on the
un-normalised features, GDE (one full-covariance Gaussian, scikit-learn's GaussianMixture
with one component is the same model) on normalised features. Fitted on the un-augmented
training images (at most ``max_detector_train``).

Choices (where the paper or its code leave room; all configurable):

* Contrastive loss (``loss``): ``"one-way"`` (default) is the authors' code: cross-entropy of
  ``z1 @ z2.T / tau`` against the diagonal, B - 1 negatives from the second view only;
  ``"nt-xent"`` is the symmetric SimCLR loss with 2B - 2 negatives (eq. 2 with both views).
* Brightness jitter is additive (TensorFlow's ``random_brightness``, as the authors' code),
  jitter order fixed (brightness, contrast, saturation, hue); no blur (dead code upstream).
* RotNet views: ``rotations`` = 4 trains on all four rotations of every image in a step
  (the paper), 1 on one random rotation per image (a quarter of the cost per epoch).
* ``cpu`` preset: a ResNet with one block per stage at width 0.5 (the authors' ``ResNet10``
  knob), epochs calibrated to about 20 minutes of one core per CIFAR-10 class
  (``bench/calibrate_two_stage.sh``, bench/NOTES.md: RotNet 18, Contrastive-DA 10;
  Contrastive 25 and DAE 30 from one-epoch timings); ``paper``: ResNet-18, 2048 epochs (a
  GPU's budget).
* Learning rate: the paper's SGD lr 0.01 (Sec. 4.1, tuned for 2,048 epochs) everywhere but
  RotNet's ``cpu`` preset, which uses 0.1: at 18 epochs lr 0.1 gave RotNet + KDE a CIFAR-10
  mean of 80.14 against 75.45 at 0.01 (+4.70 per class, SE 1.29, ahead on 9 of 10; seed 0,
  ``bench/results/cifar10_two_stage_rotnet_lr.csv`` against the ``lr=0.01`` rows of
  ``cifar10_two_stage.csv``). The rotation score gains as much (+4.73), so the central claim
  (KDE above the rotation score) is level at both rates. The larger rate also widens KDE's
  seed spread (airplane, seeds 0-2: std 4.27 against 1.90 at 0.01; the rotation score's
  0.46), so the 80.14 is about 80 (the class-balanced mean with the airplane and cat seeds
  is 79.83). ``--set lr=0.01`` restores the paper's.
* Batch-norm statistics the backbone scores with (``bn_stats``): ``"training"`` (default)
  keeps the running averages of training, i.e. of the training views (augmented; for RotNet
  and Contrastive-DA all four turns mixed in every batch), like the authors' code's moving
  averages; ``"clean"`` re-estimates them on the clean, upright training images (what this
  module did until session 12). Measured (``bench/bn_stats.py``, bench/NOTES.md): with
  ``"clean"`` the backbone normalises the upright view unlike any batch the head was trained
  on, so RotNet's head gets the upright turn wrong most and rotated views are almost never
  called upright. At the ``cpu`` preset (CIFAR-10, seed 0) the statistics of training give
  KDE +0.04 (airplane) and +3.20 (cat) on RotNet, +2.51 and +3.25 on Contrastive-DA, and
  RotNet's rotation score 3.29 lower on airplane (the old statistics inflated it), the same
  on cat.
* Precision (``mixed_precision``, :meth:`DeepMethod.autocast_dtype`): training steps run
  under bfloat16 autocast where the device computes it natively (``auto``: CUDA, CPUs with
  AVX512-BF16 / AMX), about halving a step on such a CPU (``cpu`` preset, one core,
  ``bench/amp_speed.py``: RotNet 2.08 -> 1.05 s, Contrastive-DA 0.46 -> 0.26 s per step);
  the contrastive similarities, the losses, the weights and all scoring stay float32. Rows
  of the CIFAR-10 tables trained both ways are compared in bench/NOTES.md (session 13).
* The collapse check (the authors' code has a reported seed that collapses to AUROC 50): a
  representation whose normalised features have a per-dimension standard deviation below
  1e-4 is flagged in the run (``info.representation``) and in bench rows.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ocvis import augment as A
from ocvis.detectors import GDE, KDE, OCSVM
from ocvis.errors import DataError
from ocvis.methods.base import DetectorConfig, FeatureMethod, option
from ocvis.methods.deep import DeepMethod, MixedPrecisionConfig
from ocvis.nets.resnet import ConvDecoder, MLPHead, build_backbone
from ocvis.train import Hooks, recalibrate_batchnorm

log = logging.getLogger(__name__)
PAPER = "Sohn et al. 2021, Learning and Evaluating Representations for Deep One-Class Classification"
PAPER_KEY = "two_stage"
TEMPERATURE = 0.2         # App. A.4
COLLAPSE_STD = 1e-4
DETECTORS = ("kde", "ocsvm", "gde", "linear_ocsvm")


@dataclass
class TwoStageConfig(DetectorConfig, MixedPrecisionConfig):
    detector: str = option("kde", "primary detector on the representation (all four are "
                                  "stored)", choices=DETECTORS)
    nu: float = option(0.5, "OC-SVM nu (scikit-learn's default, as the paper)", min=0.001,
                       max=1.0)
    backbone: str = option("resnet18", "feature extractor f", choices=("resnet18", "resnet"))
    blocks: tuple = option((1, 1, 1, 1), "residual blocks per stage (backbone 'resnet')",
                           min=1, max=8)
    width: float = option(0.5, "channel multiplier of backbone 'resnet' (1 = ResNet widths)",
                          min=0.0625, max=2.0)
    head_dims: tuple = option((512,) * 7, "hidden widths of the MLP head g (() = none)",
                              min=1, max=4096)
    out_dim: int = option(128, "output of g for the contrastive loss", min=2, max=4096)
    max_detector_train: int = option(20000, "training images the detectors are fitted on",
                                     min=10, max=10**7)
    bn_stats: str = option("training", "batch-norm statistics f scores with: the running "
                                       "averages of training (the authors' code) or "
                                       "re-estimated on the clean training images",
                           choices=("training", "clean"))


@dataclass
class RotNetConfig(TwoStageConfig):
    rotations: int = option(4, "rotations of each image per step (4 = all, the paper; 1 = "
                               "one random rotation)", choices=(1, 4))
    augment: bool = option(True, "augment the base image before rotating (the authors' code)")


@dataclass
class ContrastiveConfig(TwoStageConfig):
    temperature: float = option(TEMPERATURE, "tau of the contrastive loss (paper: 0.2)",
                                min=1e-3, max=10.0)
    loss: str = option("one-way", "one-way (the authors' code) or nt-xent (symmetric)",
                       choices=("one-way", "nt-xent"))
    crop_scale: float = option(0.25, "smallest crop area (paper: side 16 of 32 px)",
                               min=0.05, max=1.0)
    jitter: float = option(0.4, "colour jitter strength", min=0.0, max=1.0)


@dataclass
class DAEConfig(TwoStageConfig):
    noise: float = option(0.1, "std of the Gaussian input noise", min=0.0, max=1.0)


def _presets(batch: int, extra_cpu: dict | None = None) -> dict[str, dict]:
    common = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 3e-4,
              "lr_schedule": "cosine", "batch_size": batch}
    return {
        "paper": {**common, "backbone": "resnet18", "epochs": 2048},
        "cpu": {**common, "backbone": "resnet", "blocks": (1, 1, 1, 1), "width": 0.5,
                "head_dims": (256, 256), **(extra_cpu or {})},
        "tiny": {**common, "backbone": "resnet", "blocks": (1, 1, 1, 1), "width": 0.125,
                 "head_dims": (32,), "out_dim": 16, "epochs": 1, "min_steps": 4},
    }


# ----------------------------------------------------------------------------- losses
def contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = TEMPERATURE,
                     kind: str = "one-way") -> torch.Tensor:
    """Eq. 2 on L2-normalised embeddings of two views (row i of ``z1`` and ``z2`` is one
    image). ``one-way``: CE(z1 z2^T / tau, diagonal) (the authors' code); ``nt-xent``:
    SimCLR's symmetric loss over the 2B views, 2B - 2 negatives each."""
    # the similarities in float32 also under autocast: logits reach 1 / tau = 5, which
    # bfloat16's 8 mantissa bits would round by up to 0.02
    with torch.autocast(z1.device.type, enabled=False):
        z1, z2 = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
        n = len(z1)
        target = torch.arange(n, device=z1.device)
        if kind == "one-way":
            return F.cross_entropy(z1 @ z2.T / temperature, target)
        if kind != "nt-xent":
            raise DataError(f"unknown contrastive loss {kind!r}")
        z = torch.cat([z1, z2])
        sim = z @ z.T / temperature
        sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device),
                              float("-inf"))
        return F.cross_entropy(sim, torch.cat([target + n, target]))


def rotation_batch(x: torch.Tensor, g: torch.Generator | None = None,
                   rotations: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotated views and their labels: every image under all 4 rotations (labels
    0, 1, 2, 3 = quarter turns), or one random rotation per image."""
    if rotations == 4:
        k = torch.arange(4).repeat_interleave(len(x))
        return A.rotate90(x.repeat(4, 1, 1, 1), k.to(x.device)), k
    k = torch.randint(0, 4, (len(x),), generator=g)
    return A.rotate90(x, k.to(x.device)), k


class _Normalised(nn.Module):
    """``x -> normalize(f(x))`` (the detectors' input)."""

    def __init__(self, f: nn.Module) -> None:
        super().__init__()
        self.f = f

    def forward(self, x):
        return F.normalize(self.f(x), dim=1)


class _RotationScore(nn.Module):
    """RotNet's own normality: mean_k log p(k | rot_k(x)) over ``turns`` (all four = the
    test-time-augmented score, ``(0,)`` = log p(0 | x))."""

    def __init__(self, backbone: nn.Module, head: nn.Module, turns=(0, 1, 2, 3)) -> None:
        super().__init__()
        self.backbone, self.head, self.turns = backbone, head, tuple(turns)

    def per_turn(self, x):
        """log p(k | rot_k(x)), one column per turn of ``turns``."""
        return torch.stack([F.log_softmax(self.head(self.backbone(torch.rot90(x, k, (2, 3)))),
                                          1)[:, k] for k in self.turns], 1)

    def forward(self, x):
        return self.per_turn(x).mean(1).to(torch.float64)


ROTATION_TURNS = {"rotation": (0, 1, 2, 3), "rotation_p0": (0,)}


# ----------------------------------------------------------------------------- methods
class _TwoStage(DeepMethod, FeatureMethod):
    """Stage 1 (a self-supervised representation) + every detector of stage 2."""

    amp_safe = True  # classification / contrastive losses: bf16 autocast on CUDA

    paper = PAPER
    paper_key = PAPER_KEY
    Config = TwoStageConfig
    stages = ("representation",)
    net_factories: ClassVar[dict] = {"backbone": build_backbone, "head": MLPHead,
                                     "decoder": ConvDecoder}
    extra_scores: ClassVar[tuple[str, ...]] = ()
    score_help: ClassVar[dict[str, str]] = {
        "kde": "kernel density of the normalised representation f(x) among the training "
               "images' (gamma = 10 / (dim Var f))",
        "ocsvm": "RBF one-class SVM on the normalised f(x), the same gamma",
        "gde": "log-likelihood of one full-covariance Gaussian fitted to the normalised f(x)",
        "linear_ocsvm": "linear one-class SVM on the un-normalised f(x)",
        "rotation": "the rotation classifier's own score: mean over the four turns k of "
                    "log p(k | x turned k times) (test-time augmentation)",
        "rotation_p0": "the rotation classifier's log p(0 | x) on the image as it is (no "
                       "test-time augmentation, like the detectors)",
    }

    older_config = {"bn_stats": "clean"}  # runs stored before session 12 re-estimated them

    @property
    def score_names(self) -> tuple[str, ...]:  # the config's detector first
        c = getattr(self, "config", None)
        first = c.detector if c is not None else "kde"
        return (first,) + tuple(d for d in DETECTORS if d != first) + self.extra_scores

    @property
    def explain_heads(self) -> tuple[str, ...]:
        return ("kde", "ocsvm", "gde") + self.extra_scores

    # -- networks -----------------------------------------------------------------------
    def _build_backbone(self, channels: int) -> nn.Module:
        c = self.config
        return self.build("backbone", "backbone", arch=c.backbone, in_channels=channels,
                          blocks=list(c.blocks), width=float(c.width))

    @property
    def backbone_(self) -> nn.Module:
        if "backbone" not in self.nets:
            raise DataError(f"{self.name} is not fitted yet: call fit first")
        return self.nets["backbone"]

    def _train(self, net: nn.Module, step, n_steps: int, hooks: Hooks, x: torch.Tensor) -> None:
        c = self.config
        self.train_stage(net, step, stage="representation", epochs=c.epochs,
                         steps_per_epoch=n_steps, hooks=hooks)
        if c.bn_stats == "clean":
            hooks.on_status("re-estimating the batch-norm statistics on the clean images")
            recalibrate_batchnorm(self.backbone_, x, self.device_)
        net.eval()

    # -- representation and detectors ----------------------------------------------------
    def _embed(self, x: torch.Tensor) -> np.ndarray:
        return self.predict(self.backbone_, x).numpy().astype(np.float64)

    def torch_features(self) -> nn.Module:
        return self.backbone_.eval()

    def _detector_train(self) -> np.ndarray:
        f = self.train_features_
        k = self.config.max_detector_train
        if len(f) > k:
            idx = np.random.default_rng(self.config.seed).choice(len(f), k, replace=False)
            f = f[np.sort(idx)]
        return f

    def _fit_detector(self) -> None:
        f = self._detector_train()
        fn = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        gamma = 10.0 / (fn.shape[1] * max(float(fn.var()), 1e-12))  # App. A.4
        c = self.config
        self.detectors_ = {
            "kde": KDE(gamma="auto").fit(f),  # normalises itself; same gamma formula
            "ocsvm": OCSVM(nu=c.nu, gamma=gamma).fit(fn),
            "gde": GDE().fit(fn),
            "linear_ocsvm": OCSVM(nu=c.nu, kernel="linear").fit(f),
        }
        self.detector_ = self.detectors_[c.detector]
        std = fn.std(0)
        self.representation_ = {"per_dim_std": float(std.mean()),
                                 "collapsed": bool(std.mean() < COLLAPSE_STD)}

    def _fit(self, x, hooks):
        super()._fit(x, hooks)
        train = self.train_features_
        scores = self._detector_scores(train)
        scores.update(self._own_scores(x))
        return scores

    def _detector_scores(self, f: np.ndarray) -> dict[str, np.ndarray]:
        fn = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        return {"kde": self.detectors_["kde"].score_samples(f),
                "ocsvm": self.detectors_["ocsvm"].score_samples(fn),
                "gde": self.detectors_["gde"].score_samples(fn),
                "linear_ocsvm": self.detectors_["linear_ocsvm"].score_samples(f)}

    def _own_scores(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        return {}

    def _scores(self, x):
        out = self._detector_scores(self._embed(x))
        out.update(self._own_scores(x))
        return out

    def fit_info(self) -> dict:
        info = {"detector": self.detector_.fit_info(),
                "detectors": {k: d.fit_info() for k, d in self.detectors_.items()},
                "representation": dict(self.representation_)}
        if self.representation_["collapsed"]:
            info["detector"] = {**info["detector"], "converged": False,
                                "problem": "the representation collapsed (per-dimension "
                                           f"std {self.representation_['per_dim_std']:.1e})"}
        return info

    # -- explanations ---------------------------------------------------------------------
    def score_model(self, head: str) -> nn.Module:
        from ocvis.explain import GDEModule, OCSVMModule, ScoreModel

        f = self.torch_features()
        if head == "kde":
            return ScoreModel(f, self.detectors_["kde"].module_)
        if head == "ocsvm":
            return ScoreModel(_Normalised(f), OCSVMModule(self.detectors_["ocsvm"]))
        if head == "gde":
            return ScoreModel(_Normalised(f), GDEModule(self.detectors_["gde"]))
        raise DataError(f"{self.name} cannot be explained through {head!r}")

    def cam_layers(self):
        return self.backbone_.stages

    # -- persistence ------------------------------------------------------------------------
    def _net_state(self):
        sd = self.nets_state()
        return {k[4:] if k.startswith("net.") else k: v for k, v in sd.items()}

    def _load_net_state(self, sd):
        self.load_nets_state({("net." + k if k != "net_args" else k): v for k, v in sd.items()})

    def load_state_dict(self, sd):
        out = super().load_state_dict(sd)
        self.train_scores_ = self._detector_scores(self.train_features_)
        return out


class RotNet(_TwoStage):
    """Rotation prediction (Gidaris et al. 2018) + detectors."""

    name = "rotnet"
    title = "RotNet: rotation prediction + KDE / OC-SVM / GDE"
    paper_label = "RotNet + KDE"
    paper_scores = {"rotation": (PAPER_KEY, "RotNet (end-to-end)")}
    table_order = 20
    Config = RotNetConfig
    # ~60 s / epoch on 5,000 images, one core; lr 0.1 at the cpu budget (module docstring)
    presets = _presets(64, {"epochs": 18, "lr": 0.1})
    extra_scores = tuple(ROTATION_TURNS)

    def _fit_features(self, x, hooks):
        c = self.config
        backbone = self._build_backbone(int(x.shape[1]))
        head = self.build("head", "head", in_dim=backbone.out_dim, dims=list(c.head_dims),
                          out_dim=4, bias=True)
        net = nn.ModuleDict({"backbone": backbone, "head": head})
        index = self.epoch_batches(len(x))
        g = self.generator_

        def step(i):
            xb = x[index(i)].to(self.device_)
            if c.augment:
                xb = A.simclr_views(xb, g)
            views, k = rotation_batch(xb, g, c.rotations)
            return {"ce": F.cross_entropy(head(backbone(views)), k.to(self.device_))}

        self._train(net, step, self.steps_per_epoch(len(x)), hooks, x)
        self.nets["head"].eval()

    def _own_scores(self, x):
        # one pass per turn; every rotation score is a mean over some of the columns
        lp = self.predict(_RotationScore(self.backbone_, self.nets["head"]).per_turn, x,
                          batch_size=256)
        return {name: lp[:, list(turns)].mean(1).to(torch.float64).numpy()
                for name, turns in ROTATION_TURNS.items()}

    def sample_columns(self, x):
        head, bb = self.nets["head"], self.backbone_
        pred = self.predict(lambda b: head(bb(b)).argmax(1), x, batch_size=256)
        return {"predicted_rotation": pred.numpy().astype(np.int64)}

    def score_model(self, head: str) -> nn.Module:
        if head in ROTATION_TURNS:
            return _RotationScore(self.backbone_.eval(), self.nets["head"].eval(),
                                  ROTATION_TURNS[head])
        return super().score_model(head)


class Contrastive(_TwoStage):
    """Contrastive learning of two augmented views (SimCLR-style) + detectors."""

    name = "contrastive"
    title = "Contrastive: two augmented views + KDE / OC-SVM / GDE"
    paper_label = "Contrastive + OC-SVM"
    paper_scores = {"ocsvm": (PAPER_KEY, "Contrastive + OC-SVM")}
    table_order = 22
    Config = ContrastiveConfig
    presets = _presets(32, {"epochs": 25})  # estimated: ~40 s / epoch, one core
    distribution_augmentation: ClassVar[bool] = False

    def _fit_features(self, x, hooks):
        c = self.config
        backbone = self._build_backbone(int(x.shape[1]))
        head = self.build("head", "head", in_dim=backbone.out_dim, dims=list(c.head_dims),
                          out_dim=c.out_dim, bias=False)
        net = nn.ModuleDict({"backbone": backbone, "head": head})
        da = self.distribution_augmentation
        n = len(x) * (4 if da else 1)  # rotated copies are instances of their own
        index = self.epoch_batches(n)
        g = self.generator_
        scale = (c.crop_scale, 1.0)

        def step(i):
            idx = index(i)
            xb = x[idx % len(x)].to(self.device_)
            if da:
                xb = A.rotate90(xb, (idx // len(x)).to(self.device_))
            v1 = A.simclr_views(xb, g, scale, c.jitter)
            v2 = A.simclr_views(xb, g, scale, c.jitter)
            z = head(backbone(torch.cat([v1, v2])))
            return {"contrastive": contrastive_loss(z[:len(xb)], z[len(xb):], c.temperature,
                                                    c.loss)}

        self._train(net, step, self.steps_per_epoch(n), hooks, x)


class ContrastiveDA(Contrastive):
    """Distribution-augmented contrastive learning (rotations as new instances)."""

    name = "contrastive-da"
    title = "Contrastive (DA): rotations as instances + KDE / OC-SVM / GDE"
    paper_label = "Contrastive (DA) + OC-SVM"
    paper_scores = {"ocsvm": (PAPER_KEY, "Contrastive (DA) + OC-SVM")}
    table_order = 21
    presets = _presets(32, {"epochs": 10})  # measured: 17.7 CPU minutes per class
    distribution_augmentation = True


class DAE(_TwoStage):
    """Denoising autoencoder baseline (the backbone as encoder) + detectors."""

    name = "dae"
    title = "DAE: denoising autoencoder + KDE / OC-SVM / GDE"
    paper_label = None
    table_order = 23
    Config = DAEConfig
    presets = _presets(64, {"epochs": 30})  # estimated: ~35 s / epoch, one core

    def _fit_features(self, x, hooks):
        c = self.config
        backbone = self._build_backbone(int(x.shape[1]))
        dec = self.build("decoder", "decoder", in_dim=backbone.out_dim,
                         out_channels=int(x.shape[1]), width=64)
        net = nn.ModuleDict({"backbone": backbone, "decoder": dec})
        index = self.epoch_batches(len(x))
        g = self.generator_

        def step(i):
            xb = x[index(i)].to(self.device_)
            noisy = (xb + c.noise * torch.randn(xb.shape, generator=g).to(xb)).clamp(0, 1)
            return {"rec": F.mse_loss(dec(backbone(noisy)), xb)}

        self._train(net, step, self.steps_per_epoch(len(x)), hooks, x)
