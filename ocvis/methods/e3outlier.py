"""E3Outlier (Wang et al., NeurIPS 2019): surrogate supervision and inlier priority.

For the ``unsupervised`` protocol: the training set is contaminated with outliers (labels
never reach ``fit``) and the same set is scored (transductive). A classifier learns which of K
surrogate operations (:mod:`ocvis.surrogate_ops`: 72 regular affine, 16 irregular affine, 23
patch re-arrangements) was applied to an image, with cross-entropy (Sec. 3.2). Because
inliers dominate the gradient (inlier priority, Sec. 3.3), the classifier is more confident and
more often right on inliers. Scores (Sec. 3.4), each the mean over the K operations t of a
function of ``p = softmax(F(O_t(x)))``, higher = more normal:

* ``ne`` (the default): negative entropy ``sum_j p_j log p_j`` (natural log; the code's
  log2 only rescales it; from ``log_softmax`` in float64, and a probability that is 0
  contributes 0, never NaN);
* ``pl``: pseudo-label probability ``p_t``;
* ``mp``: maximum probability ``max_j p_j``;
* ``ssd_iforest``: an Isolation Forest on the classifier's penultimate features of the
  untransformed images (the SSD-IF baseline of the paper uses the same self-supervised
  network; the ``ssd-iforest`` method makes it the primary score).

Choices (``official_code_notes.md`` section 4): every (image, operation) pair of the epoch is
drawn on the fly (``ops_per_image`` random operations per image and epoch; 0 = all K, the
authors' materialised set, in random order); the paper's preset trains WRN-10-4, 111
operations, ``ceil(250 / K)`` = 3 epochs (``epochs`` 0 = that rule), Adam lr 1e-3 with coupled
weight decay 5e-4, batch 128 (the code uses SGD for (F-)MNIST: ``optimizer=sgd``).
Images stay in [0, 1] (the code scales to [-1, 1]; the mid-grey fill of the irregular
rotations is kept). Scoring uses every operation of the subset.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ocvis.errors import DataError
from ocvis.methods.base import option
from ocvis.methods.deep import DeepMethod, MixedPrecisionConfig
from ocvis.nets.wrn import WideResNet
from ocvis.surrogate_ops import SUBSETS, apply_op, apply_ops, operation_set
from ocvis.train import Hooks

PAPER = ("Wang et al. 2019, Effective End-to-end Unsupervised Outlier Detection via Inlier "
         "Priority of Discriminative Network (E3Outlier)")


@dataclass
class E3Config(MixedPrecisionConfig):
    ops: str = option("all", "surrogate operations: ra (72), ra+ia (88), all (111)",
                      choices=SUBSETS)
    ops_per_image: int = option(0, "random operations per image and epoch (0 = all K)",
                                min=0, max=111)
    depth: int = option(10, "WRN depth (6 n + 4)", min=10, max=40)
    widen: int = option(4, "WRN widening factor", min=1, max=16)
    epochs: int = option(0, "epochs (0 = ceil(250 / K), the authors' rule)", min=0,
                         max=10**5)
    lr: float = option(1e-3, "learning rate", min=1e-7, max=1.0, log=True)
    weight_decay: float = option(5e-4, "coupled weight decay (authors' code)", min=0.0,
                                 max=1.0)
    batch_size: int = option(128, "(image, operation) pairs per step", min=2, max=8192)
    score_batch: int = option(64, "images per scoring batch", min=1, max=4096)
    score_views: int = option(0, "transformed views per forward pass when scoring (bounds "
                                 "the memory; 0 = 1,024 on a GPU, 64 on a CPU)", min=0,
                              max=65536)


E3_PRESETS = {
    "paper": {},
    "cpu": {"ops": "ra", "ops_per_image": 12, "widen": 2, "epochs": 2},
    "tiny": {"ops": "ra", "ops_per_image": 2, "widen": 1, "epochs": 1, "min_steps": 4},
}


def op_scores(log_p: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-view PL / MP / NE from log-probabilities ``log_p`` (views x K) and the applied
    operations ``t``."""
    log_p = log_p.double()
    p = log_p.exp()
    plogp = torch.where(p > 0, p * log_p, torch.zeros_like(p))  # 0 log 0 = 0, never NaN
    return {"pl": p.gather(1, t.view(-1, 1).to(p.device)).squeeze(1),
            "mp": p.max(1).values,
            "ne": plogp.sum(1)}


class _NEModel(nn.Module):
    """``x -> mean_t sum_j p_j log p_j`` over every operation (differentiable)."""

    def __init__(self, net: nn.Module, ops) -> None:
        super().__init__()
        self.net, self.ops = net, ops
        self.views_per_image = len(ops)  # the explainer sizes its batches by it

    def forward(self, x):
        total = 0.0
        for op in self.ops:
            lp = F.log_softmax(self.net(apply_op(x, op)).double(), 1)
            total = total + op_scores(lp, torch.zeros(len(x), dtype=torch.long))["ne"]
        return total / len(self.ops)


class E3Outlier(DeepMethod):
    """Surrogate-operation classifier; outlier scores from its confidence."""

    amp_safe = True  # a cross-entropy loss: bf16 autocast on CUDA

    name = "e3outlier"
    title = "E3Outlier: surrogate operations, inlier priority, negative entropy"
    paper = PAPER
    paper_key = "e3outlier"
    paper_label = "E3Outlier"
    paper_scores = {"ssd_iforest": ("e3outlier", "SSD-IF")}
    table_order = 50
    Config = E3Config
    presets = E3_PRESETS
    stages = ("surrogate",)
    score_names: ClassVar[tuple[str, ...]] = ("ne", "pl", "mp", "ssd_iforest")
    score_help: ClassVar[dict[str, str]] = {
        "ne": "negative entropy of the operation classifier's softmax, averaged over every "
              "operation applied to the image (the paper's default)",
        "pl": "probability of the operation actually applied, averaged over the operations",
        "mp": "maximum probability, averaged over the operations",
        "ssd_iforest": "Isolation Forest on the classifier's penultimate features (SSD-IF)",
    }
    explain_heads = ("ne",)
    explain_head_names: ClassVar[dict[str, str]] = {
        "ne": "negative entropy over operations"}
    net_factories: ClassVar[dict] = {"wrn": WideResNet}

    @property
    def ops_(self):
        return operation_set(self.config.ops)

    @property
    def net_(self) -> WideResNet:
        if "net" not in self.nets:
            raise DataError(f"{self.name} is not fitted yet: call fit first")
        return self.nets["net"]

    def _fit(self, x, hooks: Hooks):
        c = self.config
        ops = self.ops_
        k = len(ops)
        net = self.build("net", "wrn", in_channels=int(x.shape[1]), num_classes=k,
                         depth=c.depth, widen=c.widen)
        m = c.ops_per_image or k
        n_pairs = len(x) * m
        bs = c.batch_size
        steps = max(1, math.ceil(n_pairs / bs))
        epochs = c.epochs or math.ceil(250 / k)
        g = self.generator_
        dev = self.device_
        state: dict = {}

        def step(i):
            if i == 0:  # this epoch's (image, operation) pairs, in random order
                order = torch.randperm(n_pairs, generator=g)
                img = order // m
                op = order % m if m == k else torch.randint(k, (n_pairs,), generator=g)
                state["img"], state["op"] = img, op
            sl = slice(i * bs, (i + 1) * bs)
            idx, t = state["img"][sl], state["op"][sl]
            views = apply_ops(x[idx].to(dev), t, ops)
            return {"ce": F.cross_entropy(net(views), t.to(dev))}

        self.train_stage(net, step, stage="surrogate", epochs=epochs, steps_per_epoch=steps,
                         hooks=hooks)
        net.eval()
        hooks.on_status(f"scoring with all {k} operations")
        self.train_x_key_ = _key(x)
        scores = self._op_scores(x)
        feats = self._features(x)
        from sklearn.ensemble import IsolationForest

        self.iforest_ = IsolationForest(random_state=int(c.seed)).fit(feats)
        scores["ssd_iforest"] = self.iforest_.score_samples(feats)
        self.train_features_ = feats
        self._cache = (self.train_x_key_, scores)
        return scores

    # -- scores ---------------------------------------------------------------------------
    def _op_scores(self, x) -> dict[str, np.ndarray]:
        ops, net = self.ops_, self.net_
        k = len(ops)
        all_t = torch.arange(k)

        per_chunk = max(1, self._score_views() // self.config.score_batch)

        def per_image(b):
            n = len(b)
            total = torch.zeros(n, 3, dtype=torch.float64, device=b.device)
            for lo in range(0, k, per_chunk):  # at most score_views views per forward
                chunk = ops[lo:lo + per_chunk]
                views = torch.cat([apply_op(b, op) for op in chunk])  # op-major
                t = all_t[lo:lo + len(chunk)].repeat_interleave(n).to(b.device)
                s = op_scores(F.log_softmax(net(views), 1), t)
                total += torch.stack([s[name].view(len(chunk), n).sum(0)
                                      for name in ("ne", "pl", "mp")], 1)
            return total / k

        out = self.predict(per_image, x, batch_size=self.config.score_batch)
        return {name: out[:, j].numpy() for j, name in enumerate(("ne", "pl", "mp"))}

    def _score_views(self) -> int:
        """Views per scoring forward pass: the setting, or by device when it is 0. On one CPU
        thread 64 views a pass scored 1.8-1.9 times faster than 1,024 (WRN-10-2), whose
        activations do not stay in cache (``bench/e3_score_batch.py``); a GPU wants large
        batches. Only the float summation order depends on it (eval mode)."""
        v = int(self.config.score_views)
        return v if v > 0 else (64 if self.device_.type == "cpu" else 1024)

    def _features(self, x) -> np.ndarray:
        return self.predict(self.net_.features, x, batch_size=512).numpy().astype(np.float64)

    def _scores(self, x):
        cache = getattr(self, "_cache", None)
        if cache is not None and cache[0] == _key(x):  # the transductive set again
            return dict(cache[1])
        out = self._op_scores(x)
        out["ssd_iforest"] = self.iforest_.score_samples(self._features(x))
        return out

    def _embed(self, x):
        return self._features(x)

    def embed_train(self, x):
        return self.train_features_

    def sample_columns(self, x):
        net = self.net_
        pred = self.predict(lambda b: net(b).argmax(1), x, batch_size=512)
        return {"predicted_operation": pred.numpy().astype(np.int64)}

    def fit_info(self) -> dict:
        return {"operations": len(self.ops_), "subset": self.config.ops}

    # -- explanations ---------------------------------------------------------------------
    def score_model(self, head: str) -> nn.Module:
        if head != "ne":
            raise DataError(f"{self.name} cannot be explained through {head!r}")
        return _NEModel(self.net_.eval(), self.ops_)

    def cam_layers(self):
        return self.net_.stages()

    # -- persistence ------------------------------------------------------------------------
    def state_dict(self):
        self._check_fitted()
        sd = self.nets_state()
        sd["train_features"] = torch.from_numpy(np.asarray(self.train_features_))
        return sd

    def load_state_dict(self, sd):
        from sklearn.ensemble import IsolationForest

        self.load_nets_state(sd)
        self.train_features_ = sd["train_features"].numpy()
        self.iforest_ = IsolationForest(random_state=int(self.config.seed)) \
            .fit(self.train_features_)
        self.fitted_ = True
        return self


class SSDIForest(E3Outlier):
    """SSD-IF (the E3Outlier paper's baseline): Isolation Forest on the penultimate features
    of the surrogate-operation network (trained as E3Outlier's)."""

    name = "ssd-iforest"
    title = "SSD-IF: Isolation Forest on surrogate-supervised features"
    paper_label = "SSD-IF"
    table_order = 51
    score_names = ("ssd_iforest", "ne", "pl", "mp")
    explain_heads = ()


def _key(x: torch.Tensor) -> tuple:
    """Identity of an input tensor: storage, shape, version and a sample of its values."""
    probe = x.detach().flatten()[::max(1, x.numel() // 4096)]
    return (x.data_ptr(), tuple(x.shape), x._version, str(x.dtype), float(probe.sum()))
