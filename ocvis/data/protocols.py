"""Protocols: how a labelled dataset becomes a one-class :class:`Task`.

* ``one-class`` (ICS papers): normal = one class or a set of classes; train = the normal
  training images (optionally only the first ``n_train``, 4,000 in the feature-learning
  paper, Sec. 4.1.1); test = the whole test split with label 1 = abnormal. With several
  normal classes, ``n_train`` is shared among them in proportion to their sizes (largest
  remainder) and each class gives its first images (:func:`first_per_class`): a copy stored
  class by class (the CIFAR-10 JPEG folders, any image folder) would otherwise give the first
  class only.
* ``latent-multiclass`` (CLAD, Sec. 2 / App. D): normal = a named super-category
  (MNIST CUR / STR / MIX, CIFAR-10 THG / LIV), abnormal = every other class.
* ``unsupervised`` (E3Outlier, Sec. 4.1): the images of one class (train and test merged)
  are inliers, outliers are drawn at random from the other classes so that they make up
  ``ratio`` % of the set; ``fit`` sees the whole set without labels and the same set is
  scored (transductive); the hidden labels serve only the evaluation.

Every protocol marks a seeded 20 % of the test set (stratified by normal / abnormal) as the
validation part used to choose the balanced-accuracy threshold (feature-learning paper,
footnote 3). All randomness comes from ``seed``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ocvis.data.datasets import ImageDataset, load_dataset
from ocvis.errors import OcvisWarning
from ocvis.errors import DataError

PROTOCOLS = ("one-class", "latent-multiclass", "unsupervised")
VAL_FRACTION = 0.2
# CLAD, Sec. 2: super-categories merging semantic labels (indices into the class list).
SCENARIOS: dict[str, dict[str, tuple[int, ...]]] = {
    "mnist": {"CUR": (0, 3, 8), "STR": (1, 4, 7), "MIX": (2, 5, 6, 9)},
    "digits": {"CUR": (0, 3, 8), "STR": (1, 4, 7), "MIX": (2, 5, 6, 9)},
    "cifar10": {"THG": (0, 1, 8, 9), "LIV": (2, 3, 4, 5, 6, 7)},
}
# E3Outlier, Sec. 4.1: outlier ratios 5 % ... 25 %.
E3_RATIOS = (5.0, 10.0, 15.0, 20.0, 25.0)


@dataclass(frozen=True, eq=False)
class Task:
    """Everything a method is fitted and evaluated on.

    ``x_*`` are float32 tensors in [0, 1] shaped ``N x C x 32 x 32``; ``y_test`` is 1 for
    abnormal. ``y_train_hidden`` (unsupervised protocol only) holds the contamination labels
    of ``x_train``: never given to ``fit``, used only to evaluate.
    """

    name: str
    dataset: str
    protocol: str
    normal_classes: tuple[int, ...]
    class_names: tuple[str, ...]
    x_train: torch.Tensor
    train_classes: np.ndarray
    x_test: torch.Tensor
    y_test: np.ndarray
    test_classes: np.ndarray
    val_mask: np.ndarray
    seed: int
    params: dict = field(default_factory=dict)
    y_train_hidden: np.ndarray | None = None
    transductive: bool = False
    notes: tuple[str, ...] = ()

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def normal_names(self) -> list[str]:
        return [self.class_names[i] for i in self.normal_classes]

    def summary(self) -> dict:
        return {"task": self.name, "dataset": self.dataset, "protocol": self.protocol,
                "normal": ", ".join(self.normal_names), "train": int(len(self.x_train)),
                "test": int(len(self.x_test)), "test normal": int((self.y_test == 0).sum()),
                "test abnormal": int((self.y_test == 1).sum()), "seed": self.seed}


def to_float(x: np.ndarray) -> torch.Tensor:
    """uint8 ``N x C x H x W`` -> float32 tensor in [0, 1] (min-max of the 8-bit range)."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32) / 255.0)


def resolve_classes(ds: ImageDataset, normal: int | str | Sequence[int | str]) -> tuple[int, ...]:
    """Class indices from indices or names; unknown classes are a clear error."""
    items = [normal] if isinstance(normal, (int, np.integer, str)) else list(normal)
    if not items:
        raise DataError("choose at least one normal class")
    out = []
    lower = {c.lower(): i for i, c in enumerate(ds.classes)}
    for it in items:
        if isinstance(it, (int, np.integer)) and not isinstance(it, bool):
            i = int(it)
        elif isinstance(it, str) and it.lower() in lower:
            i = lower[it.lower()]
        elif isinstance(it, str) and it.strip().lstrip("-").isdigit():
            i = int(it)
        else:
            raise DataError(f"unknown class {it!r} for {ds.name}; classes are "
                            f"{', '.join(f'{k}={c}' for k, c in enumerate(ds.classes))}")
        if not 0 <= i < len(ds.classes):
            raise DataError(f"class index {i} out of range for {ds.name} "
                            f"(0..{len(ds.classes) - 1})")
        out.append(i)
    return tuple(sorted(set(out)))


def validation_mask(y: np.ndarray, seed: int, fraction: float = VAL_FRACTION) -> np.ndarray:
    """A seeded, stratified ``fraction`` of the test samples (True = validation)."""
    rng = np.random.default_rng([seed, 20190])  # own stream: independent of other draws
    mask = np.zeros(len(y), bool)
    for lab in (0, 1):
        idx = np.flatnonzero(y == lab)
        k = int(round(fraction * len(idx)))
        if k:
            mask[rng.choice(idx, size=k, replace=False)] = True
    return mask


def _check_test(y: np.ndarray, notes: list[str]) -> None:
    """Warn (and note) when the test set is empty or holds a single label: metrics are then
    undefined."""
    if len(y) == 0:
        msg = ("the test set is empty (a folder whose classes hold one image each keeps "
               "them all for training): nothing can be evaluated; add images or a "
               "{train,test} layout")
        notes.append(msg)
        warnings.warn(msg, OcvisWarning, stacklevel=3)
        return
    if y.min() == y.max():
        which = "abnormal" if y[0] == 1 else "normal"
        msg = (f"the test set holds only {which} samples: AUROC and balanced accuracy are "
               "undefined")
        notes.append(msg)
        warnings.warn(msg, OcvisWarning, stacklevel=3)


def first_per_class(y: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` of the indices ``idx`` shared among their classes ``y[idx]`` in
    proportion to the classes' sizes (largest remainder, ties to the earlier class), each
    class giving its first images in ``idx``'s order; returned in ``idx``'s order. With one
    class this is ``idx[:n]``."""
    idx = np.asarray(idx)
    if n >= len(idx):
        return idx
    classes, counts = np.unique(y[idx], return_counts=True)
    exact = n * counts / counts.sum()
    quota = np.floor(exact).astype(np.int64)
    rest = n - int(quota.sum())
    quota[np.argsort(-(exact - quota), kind="stable")[:rest]] += 1
    keep = np.zeros(len(idx), dtype=bool)
    for c, q in zip(classes, quota):
        keep[np.flatnonzero(y[idx] == c)[:q]] = True
    return idx[keep]


def one_class(ds: ImageDataset, normal, n_train: int | None = None, seed: int = 0,
              protocol: str = "one-class", label: str | None = None) -> Task:
    """``one-class`` protocol (ICS feature-learning paper, Sec. 4.1.1)."""
    classes = resolve_classes(ds, normal)
    notes = list(ds.notes)
    idx = np.flatnonzero(np.isin(ds.y_train, classes))
    if n_train is not None:
        if n_train < 1:
            raise DataError("n_train must be at least 1")
        if n_train > len(idx):
            msg = (f"asked for {n_train} normal training images but "
                   f"{'/'.join(ds.classes[c] for c in classes)} has only {len(idx)}; "
                   f"using all {len(idx)}")
            warnings.warn(msg, OcvisWarning, stacklevel=2)
            notes.append(msg)
        # "the first n_train" as the paper's fixed training set, per class when several
        idx = first_per_class(ds.y_train, idx, n_train)
    if len(idx) == 0:
        raise DataError(f"no training images of class(es) "
                        f"{', '.join(ds.classes[c] for c in classes)} in {ds.name}")
    y_test = (~np.isin(ds.y_test, classes)).astype(np.int64)
    _check_test(y_test, notes)
    label = label or "+".join(ds.classes[c] for c in classes)
    return Task(name=f"{ds.name}/{protocol}/{label}", dataset=ds.name, protocol=protocol,
                normal_classes=classes, class_names=ds.classes,
                x_train=to_float(ds.x_train[idx]), train_classes=ds.y_train[idx].copy(),
                x_test=to_float(ds.x_test), y_test=y_test, test_classes=ds.y_test.copy(),
                val_mask=validation_mask(y_test, seed), seed=seed,
                params={"n_train": n_train, "normal": list(classes)}, notes=tuple(notes))


def latent_multiclass(ds: ImageDataset, scenario: str | Sequence[int | str],
                      n_train: int | None = None, seed: int = 0) -> Task:
    """``latent-multiclass`` protocol (CLAD, Sec. 2): normal = one super-category."""
    known = SCENARIOS.get(ds.name, {})
    if isinstance(scenario, str) and scenario.upper() in known:
        label = scenario.upper()
        classes = known[label]
    elif isinstance(scenario, str):
        raise DataError(f"unknown scenario {scenario!r} for {ds.name}; known: "
                        f"{', '.join(known) or 'none (pass a list of classes)'}")
    else:
        classes = resolve_classes(ds, scenario)
        label = None
    task = one_class(ds, classes, n_train=n_train, seed=seed, protocol="latent-multiclass",
                     label=label)
    return task


def unsupervised(ds: ImageDataset, inlier, ratio: float = 10.0, seed: int = 0) -> Task:
    """``unsupervised`` protocol (E3Outlier, Sec. 4.1).

    Choice: ``ratio`` is the outliers' share of the whole contaminated set,
    ``n_out = round(ratio / (100 - ratio) * n_in)``, drawn uniformly without replacement from
    all other classes (train and test merged). The set is shuffled with ``seed``.
    """
    classes = resolve_classes(ds, inlier)
    if not 0 < ratio < 50:
        raise DataError(f"outlier ratio must be in (0, 50) %, got {ratio}")
    x_all = np.concatenate([ds.x_train, ds.x_test])
    y_all = np.concatenate([ds.y_train, ds.y_test])
    rng = np.random.default_rng(seed)
    inl = np.flatnonzero(np.isin(y_all, classes))
    pool = np.flatnonzero(~np.isin(y_all, classes))
    if len(inl) == 0:
        raise DataError("no images of the inlier class")
    n_out = int(round(ratio / (100.0 - ratio) * len(inl)))
    if n_out > len(pool):
        raise DataError(f"need {n_out} outliers for ratio {ratio} % but only {len(pool)} "
                        "images of other classes exist")
    if n_out == 0:
        raise DataError(f"ratio {ratio} % of {len(inl)} inliers gives no outlier")
    out = rng.choice(pool, size=n_out, replace=False)
    order = rng.permutation(np.concatenate([inl, out]))
    y = (~np.isin(y_all[order], classes)).astype(np.int64)
    x = to_float(x_all[order])
    label = "+".join(ds.classes[c] for c in classes)
    return Task(name=f"{ds.name}/unsupervised/{label}@{ratio:g}%", dataset=ds.name,
                protocol="unsupervised", normal_classes=classes, class_names=ds.classes,
                x_train=x, train_classes=y_all[order].copy(), x_test=x, y_test=y,
                test_classes=y_all[order].copy(), val_mask=validation_mask(y, seed),
                seed=seed, params={"ratio": ratio, "normal": list(classes)},
                y_train_hidden=y.copy(), transductive=True, notes=ds.notes)


def make_task(dataset: str = "digits", protocol: str = "one-class", normal=0, *,
              n_train: int | None = None, ratio: float = 10.0, seed: int = 0,
              root=None, download: bool = False) -> Task:
    """Build a :class:`Task` from a dataset name and a protocol (see module docstring).

    ``normal`` is a class (index or name), a list of classes, or for ``latent-multiclass``
    a scenario name such as ``"CUR"``.
    """
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    ds = load_dataset(dataset, root=root, download=download)
    if protocol == "one-class":
        return one_class(ds, normal, n_train=n_train, seed=seed)
    if protocol == "latent-multiclass":
        return latent_multiclass(ds, normal, n_train=n_train, seed=seed)
    return unsupervised(ds, normal, ratio=ratio, seed=seed)


def class_names(dataset: str) -> tuple[str, ...] | None:
    """Class names of a dataset: from the registry without loading it, else (folders) from
    the loaded dataset; None when it cannot be read."""
    from ocvis.data.datasets import DATASETS

    if dataset in DATASETS:
        return DATASETS[dataset].classes
    try:
        return load_dataset(dataset).classes
    except Exception:  # noqa: BLE001 - only a label
        return None


def task_label(cfg: dict, markdown: bool = False) -> str:
    """``dataset · protocol · normal: <class names> · seed`` of a task configuration (class
    names, not indices; a folder dataset by its folder name)."""
    cfg = cfg if isinstance(cfg, dict) else {}
    dataset = str(cfg.get("dataset", "?"))
    names = class_names(dataset) if dataset != "?" else None
    normal = cfg.get("normal")
    items = normal if isinstance(normal, (list, tuple)) else [normal]

    def name(c) -> str:
        if names is not None and isinstance(c, (int, np.integer)) and 0 <= c < len(names):
            return names[int(c)]
        return str(c)

    shown = dataset if not dataset.startswith("folder:") else \
        "folder " + dataset[len("folder:"):].rstrip("/").rsplit("/", 1)[-1]
    if markdown:
        shown = f"**{shown}**"
    extra = f" · outliers {cfg.get('ratio')} %" if cfg.get("protocol") == "unsupervised" else ""
    return (f"{shown} · {cfg.get('protocol', 'one-class')} · normal: "
            f"{', '.join(name(c) for c in items)}{extra} · seed {cfg.get('seed', 0)}")
