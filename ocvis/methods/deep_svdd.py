"""Deep SVDD (Ruff et al., ICML 2018), a baseline of the end-to-end ICS and of the CLAD papers.

A bias-free LeNet-type network ``phi`` (:class:`~ocvis.nets.ics_net.LeNetSVDD`) maps the
normal training images close to a centre ``c``:

* pre-training: ``phi`` is the encoder of an autoencoder trained with the mean squared error
  (Sec. 4.1: "we pretrain ... with an autoencoder");
* ``c`` = the mean of ``phi`` over the training images after pre-training (the initial
  forward pass), each coordinate moved to at least ``eps`` away from 0 (the authors' code,
  so no coordinate of ``c`` can be reached by a dead unit);
* one-class objective (eq. 4): ``mean ||phi(x) - c||^2`` + weight decay; soft-boundary
  (eq. 3, ``objective="soft-boundary"``): ``R^2 + 1/nu mean max(0, ||phi(x) - c||^2 - R^2)``
  with ``R`` set to the (1 - nu) quantile of the distances after every epoch from
  ``warmup_epochs`` on (the authors' code);
* score: normality = ``-||phi(x) - c||^2`` (soft-boundary: ``R^2 - ||phi(x) - c||^2``).
* collapse check (``spread_check``, in ``fit_info`` and bench rows): the RMS distance to
  ``c`` before and after training and the per-dimension spread of ``phi`` on the training
  images; a spread under 1e-4 of a coordinate's typical size flags the run (the two-stage
  methods' threshold, there on unit-norm features).

``c`` and ``R`` are registered buffers of a small module saved with the network, so a stored
run restores exactly. No layer has a bias and batch norm has no affine parameters: with them
``phi`` could map everything to ``c`` (Prop. 2 and 3 of the paper; checked in a test).

Choices: Adam, lr 1e-4 (Sec. 4.1), weight decay 0.5e-6 and the learning-rate milestone at
50 epochs (x 0.1) of the authors' MNIST script; the paper's preset trains 250 + 150 epochs
(pre-training + Deep SVDD); the ``cpu`` preset 20 + 20. Input preprocessing
(``preprocess``): ``"none"`` keeps the images in [0, 1] like every other method here;
``"gcn-l1"`` is the paper's (Sec. 4.1 and the authors' code): global contrast normalisation
of each image with the l1 norm (subtract the image's mean, divide by its mean absolute
deviation), then min-max scaling to [0, 1] with the minimum and maximum of the normalised
*training* images (the authors hard-code these per class; here they are computed in ``fit``
and saved with the run). It runs inside the network (a buffer-only first module), so scores,
the Latent page and the explanations see the same input; on our 32 x 32 padded MNIST the
image mean includes the 2-pixel zero border (the paper's images are 28 x 28). Networks:
MNIST / Fashion-MNIST (8, 4) filters -> 32, CIFAR-10 (32, 64, 128) -> 128, chosen by the
number of input channels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ocvis.errors import DataError
from ocvis.methods.base import option
from ocvis.methods.deep import DeepConfig, DeepMethod, LatentState
from ocvis.nets.ics_net import LeNetAutoencoder
from ocvis.train import Hooks

PAPER = "Ruff et al. 2018, Deep One-Class Classification (a baseline of the ICS papers)"
EPS_C = 0.1  # authors' code: |c_i| >= eps
COLLAPSE_REL = 1e-4  # per-dimension std of phi below this share of |c| / sqrt(D): collapsed


def spread_check(z0: torch.Tensor, z1: torch.Tensor, c: torch.Tensor) -> dict:
    """How far training ended from the hypersphere collapse (phi constant, every image at c):
    the RMS distance to ``c`` of the training features at the initial forward pass ``z0``
    and after training ``z1``, and the mean per-dimension std of ``z1`` relative to the
    typical size of a coordinate of ``c`` (|c| / sqrt(D)); below ``COLLAPSE_REL`` the
    representation is flagged as collapsed."""
    z0, z1, c = z0.double(), z1.double(), c.double()
    rel = float(z1.std(0).mean() / (c.norm() / np.sqrt(len(c))).clamp_min(1e-300))
    return {"rms_initial": float(((z0 - c) ** 2).sum(1).mean().sqrt()),
            "rms_final": float(((z1 - c) ** 2).sum(1).mean().sqrt()),
            "per_dim_std_rel": rel, "collapsed": bool(rel < COLLAPSE_REL)}


def gcn_l1(x: torch.Tensor) -> torch.Tensor:
    """Global contrast normalisation of each image with the l1 norm (Ruff et al. 2018)."""
    x = x - x.mean(dim=(1, 2, 3), keepdim=True)
    return x / x.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)


class _GCN(nn.Module):
    """``gcn_l1`` then min-max scaling with the training set's range (buffers ``lo``, ``hi``)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.ones(()))

    def calibrate(self, x: torch.Tensor, batch: int = 2048) -> None:
        lo, hi = float("inf"), float("-inf")
        for i in range(0, len(x), batch):
            g = gcn_l1(x[i:i + batch].float())
            lo, hi = min(lo, float(g.min())), max(hi, float(g.max()))
        self.lo.fill_(lo)
        self.hi.fill_(hi if hi > lo else lo + 1.0)

    def forward(self, x):
        return (gcn_l1(x) - self.lo) / (self.hi - self.lo)


class _Centre(nn.Module):
    """The hypersphere's centre ``c`` and radius ``R`` as buffers (saved with the weights)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("c", torch.zeros(dim))
        self.register_buffer("R", torch.zeros(()))


@dataclass
class SVDDConfig(DeepConfig):
    objective: str = option("one-class", "one-class (eq. 4) or soft-boundary (eq. 3)",
                            choices=("one-class", "soft-boundary"))
    nu: float = option(0.1, "soft-boundary nu (share of outliers allowed)", min=1e-3, max=1.0)
    pretrain_epochs: int = option(250, "autoencoder pre-training epochs", min=0, max=10**5)
    epochs: int = option(150, "Deep SVDD epochs", min=1, max=10**5)
    lr: float = option(1e-4, "Adam learning rate (paper Sec. 4.1)", min=1e-7, max=1.0,
                       log=True)
    weight_decay: float = option(0.5e-6, "weight decay (authors' MNIST script)", min=0.0,
                                 max=1.0)
    lr_milestone: int = option(50, "epoch at which the learning rate drops x 0.1", min=0,
                               max=10**5)
    warmup_epochs: int = option(10, "soft-boundary: epochs before R is updated", min=0,
                                max=10**5)
    batch_size: int = option(200, "mini-batch size (authors' code)", min=2, max=8192)
    preprocess: str = option("none", "input preprocessing: none, or the paper's global "
                                     "contrast normalisation (l1) + min-max scaling",
                             choices=("none", "gcn-l1"))


SVDD_PRESETS = {
    "paper": {"pretrain_epochs": 250, "epochs": 150, "preprocess": "gcn-l1"},
    "cpu": {"pretrain_epochs": 20, "epochs": 20, "lr_milestone": 15, "warmup_epochs": 3,
            "min_steps": 60},
    "tiny": {"pretrain_epochs": 1, "epochs": 1, "warmup_epochs": 0},
}


def lenet_shape(channels: int) -> dict:
    """Ruff et al.'s networks: MNIST-type (grey) and CIFAR-10-type (colour)."""
    if channels == 1:
        return {"filters": [8, 4], "rep_dim": 32}
    return {"filters": [32, 64, 128], "rep_dim": 128}


class DeepSVDD(LatentState, DeepMethod):
    """Deep Support Vector Data Description."""

    name = "deep-svdd"
    title = "Deep SVDD: a hypersphere around the normal representations"
    paper = PAPER
    paper_key = "ics_end_to_end"
    paper_label = "DSVDD"
    paper_also = {"clad": "DeepSVDD"}  # a baseline of CLAD's tables too
    table_order = 31
    Config = SVDDConfig
    presets = SVDD_PRESETS
    stages = ("pretrain", "svdd")
    score_names = ("score",)
    explain_heads = ("own", "kde")
    net_factories: ClassVar[dict] = {"lenet_ae": LeNetAutoencoder, "centre": _Centre,
                                     "gcn": _GCN}

    @property
    def ae_(self) -> nn.Module:
        if "ae" not in self.nets:
            raise DataError(f"{self.name} is not fitted yet: call fit first")
        return self.nets["ae"]

    @property
    def phi_(self) -> nn.Module:
        """The representation: the encoder, behind the input preprocessing if any."""
        enc = self.ae_.encoder
        return nn.Sequential(self.nets["gcn"], enc) if "gcn" in self.nets else enc

    def _fit(self, x, hooks: Hooks):
        c = self.config
        ae = self.build("ae", "lenet_ae", in_channels=int(x.shape[1]), **lenet_shape(x.shape[1]))
        centre = self.build("centre", "centre", dim=ae.encoder.rep_dim)
        n_steps = self.steps_per_epoch(len(x))
        dev = self.device_
        pre = nn.Identity()
        if c.preprocess == "gcn-l1":
            pre = self.build("gcn", "gcn")
            pre.calibrate(x)
        if c.pretrain_epochs > 0:
            index = self.epoch_batches(len(x))

            def rec_step(i):
                xb = pre(x[index(i)].to(dev))
                return {"rec": ((ae(xb) - xb) ** 2).flatten(1).sum(1).mean()}

            self.train_stage(ae, rec_step, stage="pretrain", epochs=c.pretrain_epochs,
                             steps_per_epoch=n_steps, hooks=hooks,
                             schedule="multistep", milestones=(c.lr_milestone,))
        phi = self.phi_
        hooks.on_status("centre c from the initial forward pass")
        with torch.no_grad():
            z = self.predict(phi, x)
            cc = z.mean(0)
            cc[(cc.abs() < EPS_C) & (cc < 0)] = -EPS_C
            cc[(cc.abs() < EPS_C) & (cc >= 0)] = EPS_C
            centre.c.copy_(cc.to(centre.c))
        index = self.epoch_batches(len(x))
        soft = c.objective == "soft-boundary"
        state = {"epoch_d": []}

        def svdd_step(i):
            xb = x[index(i)].to(dev)
            d = ((phi(xb) - centre.c) ** 2).sum(1)
            if soft:
                state["epoch_d"].append(d.detach())
                loss = centre.R ** 2 + (1 / c.nu) * torch.clamp(d - centre.R ** 2, min=0).mean()
            else:
                loss = d.mean()  # eq. 4
            return {"svdd": loss}

        class _RadiusHooks(Hooks):
            def on_epoch(self_inner, e):
                if soft and e["epoch"] >= c.warmup_epochs and state["epoch_d"]:
                    dd = torch.cat(state["epoch_d"])
                    centre.R.fill_(float(torch.quantile(dd.sqrt(), 1 - c.nu)))
                state["epoch_d"] = []

        from ocvis.train import MultiHooks

        self.train_stage(phi, svdd_step, stage="svdd", epochs=c.epochs, steps_per_epoch=n_steps,
                         hooks=MultiHooks([hooks, _RadiusHooks()]),
                         optimizer=self.optimizer_for(phi.parameters()),
                         schedule="multistep", milestones=(c.lr_milestone,))
        ae.eval()
        self.spread_ = spread_check(z, self.predict(phi, x), centre.c.detach().cpu())
        return None

    def _distance(self, x) -> torch.Tensor:
        phi, centre = self.phi_, self.nets["centre"]
        return self.predict(lambda b: ((phi(b) - centre.c) ** 2).sum(1), x)

    def _scores(self, x):
        d = self._distance(x).numpy().astype(np.float64)
        r2 = float(self.nets["centre"].R) ** 2 if self.config.objective == "soft-boundary" \
            else 0.0
        return {"score": r2 - d}

    def _embed(self, x):
        return self.predict(self.phi_, x).numpy().astype(np.float64)

    def embed_train(self, x):
        self.train_latent_ = self.embed(x)
        return self.train_latent_

    def score_model(self, head):
        from ocvis.explain import ScoreModel

        phi, centre = self.phi_.eval(), self.nets["centre"]
        if head == "own":
            return _NegDistance(phi, centre)
        if head == "kde":
            from ocvis.detectors import KDE

            z = getattr(self, "train_latent_", None)
            if z is None:
                raise DataError("the training representations are not available")
            return ScoreModel(phi, KDE().fit(z).module_)
        raise DataError(f"{self.name} cannot be explained through {head!r}")

    def cam_layers(self):
        return self.ae_.encoder.conv_layers()

    def fit_info(self) -> dict:
        cent = self.nets["centre"]
        info = {"centre_norm": float(cent.c.norm()), "radius": float(cent.R)}
        spread = getattr(self, "spread_", None)
        if spread is not None:  # runs stored before the check have none
            info["spread"] = dict(spread)
            info["detector"] = {"detector": "hypersphere", "converged": not spread["collapsed"],
                                "problem": "" if not spread["collapsed"] else
                                "the representation collapsed onto the centre (per-dimension "
                                f"std {spread['per_dim_std_rel']:.1e} of |c| / sqrt(D))"}
        if "gcn" in self.nets:
            info.update(gcn_min=float(self.nets["gcn"].lo), gcn_max=float(self.nets["gcn"].hi))
        return info



class _NegDistance(nn.Module):
    def __init__(self, phi: nn.Module, centre: _Centre) -> None:
        super().__init__()
        self.phi, self.centre = phi, centre

    def forward(self, x):
        return -((self.phi(x) - self.centre.c) ** 2).sum(1).to(torch.float64)
