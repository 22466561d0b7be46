"""CLAD: confidence-based self-labelling anomaly detection (Park et al., ICLR-W 2021).

For normal data made of several latent classes (the ``latent-multiclass`` protocol: MNIST
CUR / STR / MIX, CIFAR-10 THG / LIV) and the one-class setting (paper App. A). Four steps
(Sec. 3, Fig. 2, App. B):

1. **Feature extraction**: a convolutional autoencoder (:mod:`ocvis.nets.clad_net`) trained
   with the mean squared reconstruction error.
2. **Self-labelling with DEC** (Xie et al. 2016): k-means (scikit-learn, ``kmeans_init``
   restarts, seeded) on the latent means gives K initial centres; the encoder and the centres
   are fine-tuned with KL(P || Q) between the Student-t soft assignment Q (alpha = 1) and the
   sharpened target P, SGD lr 0.01 momentum 0.9 (App. B). The stage stops when fewer than
   ``dec_tol`` (0.1 %) of the pseudo-labels change in an epoch (the authors' rule), at the
   latest after ``dec_epochs``. Pseudo-label = argmax of Q on the latent *mean*.
3. **Classifier**: a ResNet-18 trained from scratch with cross-entropy on the pseudo-labels,
   Adam lr 1e-4 (App. B), batch 128.
4. **Scores**: ``odin`` (primary) = max softmax(F(x~) / T) with x~ = x - eps * sign(grad_x
   CE(F(x) / T, argmax F(x))) (Liang et al. 2018, batched), and ``msp`` = the plain maximum
   softmax of F(x) (T = 1, no perturbation). Both are stored per run.

Choices where the paper is silent or its code differs (``official_code_notes.md`` section 2):

* Inputs stay in [0, 1] (no per-class normalisation). ODIN's ``eps`` is then in pixel units,
  which is what ODIN's own code does (its gradient divided by the normalisation std gives a
  step of eps in pixel units): default T = 1000, eps = 0.0014 (ODIN's CIFAR-10 setting; the
  paper says only "following ODIN"). The CLAD code's extra factor 50 is not used.
* The autoencoder's latent is sampled (``z = mu + sigma * eps``, raw sigma, no KL term) during
  its training as in the authors' code (``sample_latent``); k-means, DEC, pseudo-labels, the
  Latent page and prediction use the mean ``mu`` (deterministic; the code's sampling at
  prediction time makes the 0.1 % stopping rule noise-driven).
* A collapse guard (``dec_max_share``, not in the paper or its code): when an epoch of DEC
  ends with one cluster holding more than this share (default 0.9) of the training images,
  DEC stops and the encoder, centres and pseudo-labels of the previous epoch (or of k-means)
  are kept. A collapsed DEC leaves the classifier nothing to tell apart (its confidence is
  then no normality score, ``fit_info`` flags it); session 20's CIFAR-10 THG run at the
  ``cpu`` preset ended with 99.7 % of the images in one cluster and CLAD at AUROC 53.29
  (paper 74.9). ``fit_info()["dec"]`` records the largest share after every epoch and
  whether the guard fired; ``--set dec_max_share=1`` is the paper's DEC.
* DEC's target P is recomputed on the whole training set at the start of every epoch
  (``dec_target="epoch"``, the original DEC updates it every T iterations); ``"batch"`` is the
  authors' per-mini-batch target.
* Autoencoder: Adam lr 1e-3 (the authors' code: its lr flag is ignored; the paper's text says
  0.01), batch 256. ``ae_width`` 0 means 16 x input channels (the code's ``cvae`` for grey,
  ``cvae_large`` for colour images); the latent size h is 100 in the paper, 10 in ``cpu``
  (the paper's Fig. 3b: flat for h in [10, 100]).
* Classifier: ``resnet18-imagenet`` (torchvision's ResNet-18 with its ImageNet stem, as the
  authors' code) in ``paper``; the CIFAR-stem ResNet-18 and a small ResNet are options
  (``cpu`` uses the small one).
* AUROC is never flipped (the code reports max(AUC, 1 - AUC)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ocvis.errors import DataError
from ocvis.methods.base import option
from ocvis.methods.deep import DeepConfig, DeepMethod
from ocvis.nets.clad_net import (CladAutoencoder, ClusterAssignment, soft_assignment,
                                 target_distribution)
from ocvis.nets.resnet import build_backbone
from ocvis.train import Hooks, recalibrate_batchnorm

COLLAPSED_SHARE = 0.99  # one pseudo-class holding this share of the images = collapsed
PAPER = "Park et al. 2021, What is Wrong with One-Class Anomaly Detection? (CLAD)"


@dataclass
class CLADConfig(DeepConfig):
    clusters: int = option(10, "K: clusters = pseudo-classes (paper App. B: 10)", min=2, max=200)
    latent_dim: int = option(100, "h: latent size of the autoencoder (paper: 100)", min=2,
                             max=4096)
    ae_width: int = option(0, "channels of the autoencoder's first block (0 = 16 x input "
                              "channels, the authors' networks)", min=0, max=512)
    dropout: float = option(0.1, "input dropout of the encoder", min=0.0, max=0.9)
    sample_latent: bool = option(True, "train the autoencoder on mu + sigma * noise (the "
                                       "authors' code); mu is used everywhere else")
    pretrain_epochs: int = option(100, "autoencoder epochs", min=0, max=10**5)
    ae_lr: float = option(1e-3, "autoencoder Adam learning rate", min=1e-7, max=1.0, log=True)
    ae_batch_size: int = option(256, "autoencoder / DEC mini-batch", min=2, max=8192)
    kmeans_init: int = option(20, "k-means restarts", min=1, max=1000)
    dec_epochs: int = option(100, "DEC epochs at most", min=0, max=10**5)
    dec_lr: float = option(0.01, "DEC SGD learning rate (momentum 0.9)", min=1e-7, max=1.0,
                           log=True)
    dec_tol: float = option(0.001, "DEC stops when fewer than this share of labels change "
                                   "in an epoch", min=0.0, max=1.0)
    dec_max_share: float = option(0.9, "DEC stops, and keeps its last epoch, before one "
                                       "cluster holds more than this share of the images "
                                       "(1 = never)", min=0.1, max=1.0)
    dec_target: str = option("epoch", "DEC target distribution: recomputed on the whole "
                                      "set every epoch, or per mini-batch (authors' code)",
                             choices=("epoch", "batch"))
    classifier: str = option("resnet18-imagenet", "pseudo-label classifier",
                             choices=("resnet18-imagenet", "resnet18", "resnet"))
    classifier_blocks: tuple = option((1, 1, 1, 1), "blocks per stage (classifier 'resnet')",
                                      min=1, max=8)
    classifier_width: float = option(0.5, "width (classifier 'resnet')", min=0.0625, max=2.0)
    epochs: int = option(100, "classifier epochs", min=1, max=10**5)
    lr: float = option(1e-4, "classifier Adam learning rate (paper App. B)", min=1e-7,
                       max=1.0, log=True)
    batch_size: int = option(128, "classifier mini-batch", min=2, max=8192)
    temperature: float = option(1000.0, "ODIN temperature T", min=1.0, max=1e5, log=True)
    odin_eps: float = option(0.0014, "ODIN input perturbation (pixel units)", min=0.0,
                             max=1.0)


CLAD_PRESETS = {
    "paper": {},
    "cpu": {"latent_dim": 10, "pretrain_epochs": 20, "dec_epochs": 30, "epochs": 15,
            "classifier": "resnet", "min_steps": 60},
    "tiny": {"latent_dim": 4, "pretrain_epochs": 1, "dec_epochs": 2, "epochs": 1,
             "classifier": "resnet", "classifier_width": 0.125, "kmeans_init": 2,
             "clusters": 3},
}


def largest_share(labels) -> float:
    """The share of the images in the largest cluster."""
    labels = torch.as_tensor(labels)
    return float(torch.bincount(labels).max()) / max(1, len(labels)) if len(labels) else 0.0


class _CollapseGuard:
    """Keeps the state (nets' weights, labels) of the last DEC epoch whose largest cluster
    held at most ``max_share`` of the images; ``collapsed(labels)`` says whether the epoch
    just ended went over (and otherwise makes it the one to keep), ``restore()`` puts the
    kept weights back and returns the kept labels."""

    def __init__(self, max_share: float, nets, labels) -> None:
        self.max_share, self.nets, self.fired = float(max_share), tuple(nets), False
        self._keep(labels)

    def _keep(self, labels) -> None:
        self.labels = torch.as_tensor(labels).clone()
        self.states = [{k: v.detach().clone() for k, v in n.state_dict().items()}
                       for n in self.nets]

    def collapsed(self, labels) -> bool:
        if self.max_share >= 1.0 or largest_share(labels) <= self.max_share:
            if self.max_share < 1.0:
                self._keep(labels)
            return False
        self.fired = True
        return True

    def restore(self):
        for n, sd in zip(self.nets, self.states):
            n.load_state_dict(sd)
        return self.labels


class _Classifier(nn.Module):
    def __init__(self, arch: str, in_channels: int, k: int, blocks=(1, 1, 1, 1),
                 width: float = 0.5) -> None:
        super().__init__()
        self.backbone = build_backbone(arch, in_channels, tuple(blocks), width)
        self.fc = nn.Linear(self.backbone.out_dim, k)

    def forward(self, x):
        return self.fc(self.backbone(x))


class _MaxSoftmax(nn.Module):
    """``x -> max softmax(F(x) / T)`` in float64 (differentiable; for explanations)."""

    def __init__(self, clf: nn.Module, temperature: float = 1.0) -> None:
        super().__init__()
        self.clf, self.t = clf, float(temperature)

    def forward(self, x):
        return F.softmax(self.clf(x).double() / self.t, dim=1).max(1).values


def odin_perturb(clf: nn.Module, x: torch.Tensor, temperature: float, eps: float) -> torch.Tensor:
    """ODIN's input pre-processing (Liang et al. 2018, eq. 2): one signed-gradient step that
    lowers the cross-entropy of the predicted class at temperature T (raises its softmax)."""
    x = x.detach().clone().requires_grad_(True)
    logits = clf(x)
    loss = F.cross_entropy(logits / temperature, logits.argmax(1).detach(), reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    return (x - eps * g.sign()).detach()


class CLAD(DeepMethod):
    """Autoencoder -> DEC pseudo-labels -> ResNet classifier -> ODIN / maximum softmax."""

    name = "clad"
    title = "CLAD: DEC pseudo-labels + classifier confidence (ODIN)"
    paper = PAPER
    paper_key = "clad"
    paper_label = "CLAD"
    table_order = 40
    Config = CLADConfig
    presets = CLAD_PRESETS
    stages = ("pretrain", "dec", "classifier")
    score_names = ("odin", "msp")
    grouping_columns = ("pseudo_label", "predicted_label")
    score_help: ClassVar[dict[str, str]] = {
        "odin": "ODIN: the maximum softmax at temperature T of the input moved one signed "
                "gradient step towards the predicted pseudo-class",
        "msp": "the plain maximum softmax of the pseudo-label classifier",
    }
    explain_heads = ("msp", "tempered")
    # short enough for the Explain page's box: ``score_model`` says what each one is
    explain_head_names: ClassVar[dict[str, str]] = {
        "msp": "maximum softmax of the classifier",
        "tempered": "max softmax at temperature T"}
    net_factories: ClassVar[dict] = {"ae": CladAutoencoder, "assign": ClusterAssignment,
                                     "classifier": _Classifier}

    # -- fit ------------------------------------------------------------------------------
    def _fit(self, x, hooks: Hooks):
        c = self.config
        dev = self.device_
        ch, size = int(x.shape[1]), int(x.shape[-1])
        ae = self.build("ae", "ae", in_channels=ch, size=size, latent_dim=c.latent_dim,
                        width=c.ae_width or 16 * ch, dropout=c.dropout, sample=c.sample_latent)
        n = len(x)
        if c.pretrain_epochs > 0:
            index = self.epoch_batches(n, c.ae_batch_size)

            def rec_step(i):
                xb = x[index(i)].to(dev)
                return {"rec": F.mse_loss(ae(xb), xb)}

            self.train_stage(ae, rec_step, stage="pretrain", epochs=c.pretrain_epochs,
                             steps_per_epoch=self.steps_per_epoch(n, c.ae_batch_size),
                             hooks=hooks,
                             optimizer=torch.optim.Adam(ae.parameters(), lr=c.ae_lr),
                             schedule="constant")
        recalibrate_batchnorm(ae, x, dev)
        labels = self._dec(x, ae, hooks)
        self._train_classifier(x, labels, hooks)
        return None

    def _mu(self, x, enc=None) -> torch.Tensor:
        enc = self.nets["ae"].encoder if enc is None else enc
        return self.predict(lambda b: enc(b)[0], x, batch_size=1024)

    def _dec(self, x, ae, hooks) -> np.ndarray:
        from sklearn.cluster import KMeans

        c = self.config
        dev = self.device_
        enc = ae.encoder
        hooks.on_status(f"k-means (K = {c.clusters}) on the latent means")
        z = self._mu(x, enc)
        if len(z) < c.clusters:
            raise DataError(f"CLAD needs at least K = {c.clusters} training images, got {len(z)}")
        km = KMeans(n_clusters=c.clusters, n_init=c.kmeans_init,
                    random_state=int(c.seed)).fit(z.numpy().astype(np.float64))
        assign = self.build("assign", "assign", k=c.clusters, dim=c.latent_dim)
        with torch.no_grad():
            assign.centres.copy_(torch.as_tensor(km.cluster_centers_, dtype=torch.float32))
        state = {"labels": torch.as_tensor(km.labels_), "changed": [], "p": None,
                 "shares": []}
        guard = _CollapseGuard(c.dec_max_share, (enc, assign), state["labels"])
        self.kmeans_inertia_ = float(km.inertia_)

        def full_q():  # on the latent means, in eval mode; training mode restored after
            modes = [(m, m.training) for m in (enc, assign)]
            zz = self._mu(x, enc).to(dev)
            with torch.no_grad():
                q = assign(zz).cpu()
            for m, mode in modes:
                m.train(mode)
            return q

        n = len(x)
        index = self.epoch_batches(n, c.ae_batch_size)
        net = nn.ModuleDict({"encoder": enc, "assign": assign})

        def step(i):
            idx = index(i)
            if c.dec_target == "epoch" and i == 0 and state["p"] is None:
                state["p"] = target_distribution(full_q())
            q = assign(enc(x[idx].to(dev))[0])
            if c.dec_target == "epoch":
                p = state["p"][idx].to(dev)
            else:
                p = target_distribution(q.detach())
            return {"kl": F.kl_div(q.clamp_min(1e-12).log(), p, reduction="batchmean")}

        def until(epoch: int) -> bool:
            q = full_q()
            labels = q.argmax(1)
            changed = float((labels != state["labels"]).float().mean())
            state["changed"].append(changed)
            state["shares"].append(largest_share(labels))
            if guard.collapsed(labels):  # back to the previous epoch's nets and labels
                state["labels"] = guard.restore()
                return True
            state["labels"] = labels
            state["p"] = target_distribution(q)  # the next epoch's target
            return changed < c.dec_tol

        self.dec_epochs_run_ = 0
        if c.dec_epochs > 0:
            self.train_stage(net, step, stage="dec", epochs=c.dec_epochs,
                             steps_per_epoch=self.steps_per_epoch(n, c.ae_batch_size),
                             hooks=hooks, schedule="constant",
                             optimizer=torch.optim.SGD(net.parameters(), lr=c.dec_lr,
                                                       momentum=0.9),
                             until=until)
            self.dec_epochs_run_ = len(state["changed"])
        self.dec_changed_ = [round(v, 5) for v in state["changed"]]
        self.dec_shares_ = [round(v, 5) for v in state["shares"]]
        self.dec_guarded_ = guard.fired
        enc.eval()
        labels = state["labels"].numpy().astype(np.int64)
        self.train_pseudo_labels_ = labels
        return labels

    def _train_classifier(self, x, labels: np.ndarray, hooks: Hooks) -> None:
        c = self.config
        clf = self.build("classifier", "classifier", arch=c.classifier,
                         in_channels=int(x.shape[1]), k=c.clusters,
                         blocks=list(c.classifier_blocks), width=c.classifier_width)
        y = torch.as_tensor(labels)
        index = self.epoch_batches(len(x))
        dev = self.device_

        def step(i):
            idx = index(i)
            return {"ce": F.cross_entropy(clf(x[idx].to(dev)), y[idx].to(dev))}

        self.train_stage(clf, step, stage="classifier", epochs=c.epochs,
                         steps_per_epoch=self.steps_per_epoch(len(x)), hooks=hooks)
        clf.eval()
        pred = self.predict(lambda b: clf(b).argmax(1), x, batch_size=512).numpy()
        self.classifier_train_acc_ = float((pred == labels).mean())

    # -- scores ---------------------------------------------------------------------------
    @property
    def classifier_(self) -> nn.Module:
        if "classifier" not in self.nets:
            raise DataError(f"{self.name} is not fitted yet: call fit first")
        return self.nets["classifier"]

    def _scores(self, x):
        c, clf = self.config, self.classifier_
        msp = self.predict(_MaxSoftmax(clf, 1.0), x, batch_size=256)
        tempered = _MaxSoftmax(clf, c.temperature)

        def odin(b):
            return tempered(odin_perturb(clf, b, c.temperature, c.odin_eps)).detach()

        return {"odin": self.predict(odin, x, batch_size=256, grad=True).numpy(),
                "msp": msp.numpy()}

    def _embed(self, x):
        return self._mu(x).numpy().astype(np.float64)

    def pseudo_labels(self, x) -> np.ndarray:
        """DEC's deterministic pseudo-label of each image (argmax Q on the latent mean)."""
        from ocvis.methods.base import as_images

        z = self._mu(as_images(x))
        with torch.no_grad():
            return soft_assignment(z, self.nets["assign"].centres.detach().cpu()).argmax(1) \
                .numpy().astype(np.int64)

    def sample_columns(self, x):
        clf = self.classifier_
        from ocvis.methods.base import as_images

        pred = self.predict(lambda b: clf(b).argmax(1), as_images(x), batch_size=512)
        return {"pseudo_label": self.pseudo_labels(x),
                "predicted_label": pred.numpy().astype(np.int64)}

    def fit_info(self) -> dict:
        sizes = np.bincount(getattr(self, "train_pseudo_labels_", np.zeros(0, np.int64)),
                            minlength=self.config.clusters)
        share = float(sizes.max() / max(1, sizes.sum()))
        det = {"detector": "pseudo-label classifier", "converged": share < COLLAPSED_SHARE,
               "problem": "" if share < COLLAPSED_SHARE else
               f"DEC put {100 * share:.1f} % of the training images into one cluster: the "
               "classifier has nothing to tell apart and its confidence is not a normality "
               "score (train the autoencoder longer or lower dec_lr)"}
        return {"detector": det, "clusters": {"sizes": sizes.tolist(),
                             "largest_share": float(sizes.max() / max(1, sizes.sum())),
                             "kmeans_inertia": getattr(self, "kmeans_inertia_", None)},
                "dec": {"epochs_run": getattr(self, "dec_epochs_run_", None),
                        "labels_changed": getattr(self, "dec_changed_", []),
                        "largest_share": getattr(self, "dec_shares_", []),
                        "stopped_by_guard": bool(getattr(self, "dec_guarded_", False)),
                        "stopped_by_rule": bool(getattr(self, "dec_changed_", [])
                                                and not getattr(self, "dec_guarded_", False)
                                                and self.dec_changed_[-1] < self.config.dec_tol)},
                "classifier_train_accuracy": getattr(self, "classifier_train_acc_", None)}

    def fit_arrays(self) -> dict[str, np.ndarray]:
        lab = getattr(self, "train_pseudo_labels_", None)
        return {} if lab is None else {"pseudo_label": lab}

    # -- explanations ---------------------------------------------------------------------
    def score_model(self, head: str) -> nn.Module:
        """``msp``: the plain maximum softmax; ``tempered``: the maximum of softmax(F(x) / T)
        (ODIN's score without its gradient-sign step, which has no useful derivative)."""
        clf = self.classifier_.eval()
        if head == "msp":
            return _MaxSoftmax(clf, 1.0)
        if head == "tempered":
            return _MaxSoftmax(clf, self.config.temperature)
        raise DataError(f"{self.name} cannot be explained through {head!r}")

    def cam_layers(self):
        return self.classifier_.backbone.stages

    # -- persistence ------------------------------------------------------------------------
    def state_dict(self):
        self._check_fitted()
        sd = self.nets_state()
        sd["fit"] = {"info": self.fit_info()}
        if getattr(self, "train_pseudo_labels_", None) is not None:
            sd["train_pseudo_labels"] = torch.from_numpy(self.train_pseudo_labels_)
        return sd

    def load_state_dict(self, sd):
        self.load_nets_state(sd)
        info = (sd.get("fit") or {}).get("info") or {}
        if "train_pseudo_labels" in sd:
            self.train_pseudo_labels_ = sd["train_pseudo_labels"].numpy()
        dec = info.get("dec") or {}
        self.dec_epochs_run_ = dec.get("epochs_run")
        self.dec_changed_ = dec.get("labels_changed", [])
        self.dec_shares_ = dec.get("largest_share", [])
        self.dec_guarded_ = bool(dec.get("stopped_by_guard", False))
        self.kmeans_inertia_ = (info.get("clusters") or {}).get("kmeans_inertia")
        self.classifier_train_acc_ = info.get("classifier_train_accuracy")
        self.fitted_ = True
        return self
