"""The training engine every deep method shares.

One loop (PyOD ``base_dl`` style): the method supplies a ``step(batch) -> {name: loss}``
function; the engine handles device, seeding, epochs, the optimiser, the paper's L2 term,
hooks (one event per step with every named loss), cancellation between steps and a NaN / inf
guard that stops with a clear :class:`~ocvis.errors.TrainingError` while keeping the history
and the weights of the last finite step.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np
import torch

from ocvis.errors import Cancelled, TrainingError
from ocvis.losses import l2_penalty

log = logging.getLogger(__name__)
OPTIMIZERS = ("adam", "sgd", "rmsprop")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks cuda > mps > cpu; an explicit name that is unavailable is an error."""
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("CUDA was asked for but no CUDA device is available; use 'auto'")
    return dev


def to_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move ``model`` to ``device``; on the CPU also to the channels-last memory format.

    In channels-last, oneDNN's convolutions make a training step of the paper autoencoder
    1.17x (one thread) to 1.24x (two threads) faster on the development machine
    (``bench/bench_memory_format.py``); the maths is the same, only the layout of the
    weights in memory changes, and ``state_dict`` loading is unaffected.
    """
    model = model.to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return model


def device_description(device: torch.device | None = None) -> str:
    device = device or resolve_device()
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple GPU (mps)"
    n = torch.get_num_threads()
    return f"CPU ({n} thread{'s' if n != 1 else ''})"


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch globally; return a CPU generator for shuffling.

    For scripts only: methods use :func:`seeded`, which leaves the global state alone."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[torch.Generator]:
    """Inside: torch's default generators (CPU and CUDA) seeded with ``seed``; outside:
    restored as they were, so a fit neither depends on nor changes the caller's random
    state. Yields a CPU generator (seed ``seed``) for shuffling."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        g = torch.Generator()
        g.manual_seed(seed)
        yield g


def make_optimizer(name: str, params, lr: float, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam / SGD (with momentum) / RMSprop; ``weight_decay`` is the coupled L2 of each
    optimiser (SGD's equals a loss term ``weight_decay / 2 * sum(w^2)``)."""
    name = name.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "rmsprop":  # Keras's rho 0.9 and epsilon 1e-7 (the released Keras codes')
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7,
                                   weight_decay=weight_decay)
    raise TrainingError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


SCHEDULES = ("constant", "cosine", "multistep")


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, epochs: int,
                   milestones: Iterable[int] = (), gamma: float = 0.1):
    """A learning-rate schedule stepped once per epoch (None for ``constant``).

    ``cosine`` decays to 0 over ``epochs`` (the two-stage paper's schedule); ``multistep``
    multiplies the rate by ``gamma`` at each epoch in ``milestones`` (Deep SVDD)."""
    if name == "constant":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if name == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, sorted(milestones), gamma)
    raise TrainingError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")


class Hooks:
    """Receives training events; the UI's job and the tests subclass it.

    ``on_step`` gets ``{"stage", "epoch", "epochs", "step", "steps", "global_step",
    "losses": {name: float}, "time"}`` after every optimiser step.
    """

    def on_stage(self, stage: str, epochs: int, steps_per_epoch: int) -> None:
        """A stage (e.g. ``pretrain``, ``joint``) starts."""

    def on_step(self, event: dict) -> None:
        """One optimiser step is done."""

    def on_epoch(self, event: dict) -> None:
        """One epoch is done; ``event`` has the epoch's mean losses."""

    def on_status(self, message: str) -> None:
        """A phase without steps starts (e.g. "computing SSIM", "fitting the detector")."""

    def should_stop(self) -> bool:
        """Return True to cancel; checked before every step."""
        return False


def divergence(records: list[dict], grow: float = 10.0, end: float = 3.0,
               term: str = "total") -> str | None:
    """Why a training curve looks diverged, or None.

    Per stage, on the loss ``term``: the mean of the last tenth of the steps is more than
    ``end`` times the mean of the first tenth (it ended far above its start), or a moving
    mean over a tenth of the steps rose above ``grow`` times the start (it blew up on the
    way). NaN / inf already stop training with an error (:func:`run_epochs`)."""
    stages: dict[str, list[float]] = {}
    for r in records:
        v = (r.get("losses") or {}).get(term)
        if v is not None:
            stages.setdefault(r.get("stage", "?"), []).append(float(v))
    for stage, t in stages.items():
        n = len(t)
        if n < 4:
            continue
        k = max(1, n // 10)
        arr = np.asarray(t, dtype=np.float64)
        start, last = float(arr[:k].mean()), float(arr[-k:].mean())
        scale = max(abs(start), 1e-12)
        moving = np.convolve(arr, np.ones(k) / k, mode="valid")
        peak = float(moving.max())
        if last - start > (end - 1.0) * scale:
            return (f"the {stage} loss ended at {last:.3g}, {last / scale:.1f}x its start "
                    f"({start:.3g})")
        if peak - start > (grow - 1.0) * scale:
            return (f"the {stage} loss rose to {peak:.3g} on the way, {peak / scale:.0f}x its "
                    f"start ({start:.3g})")
    return None


@dataclass
class History:
    """Per-step loss records of a fit, in order. Cheap to append, JSON-able."""

    records: list[dict] = field(default_factory=list)

    def append(self, rec: dict) -> None:
        self.records.append(rec)

    def __len__(self) -> int:
        return len(self.records)

    def terms(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.records:
            for k in r["losses"]:
                seen.setdefault(k, None)
        return list(seen)

    def to_json(self) -> list[dict]:
        return list(self.records)

    @classmethod
    def from_json(cls, data: Iterable[dict]) -> "History":
        return cls(list(data))


class SafeHooks(Hooks):
    """Wraps hooks so that a hook that raises (a progress print on a closed pipe, a full
    disk) is logged once per kind and training goes on; a failing ``should_stop`` means
    "do not stop"."""

    def __init__(self, hooks: Hooks) -> None:
        self.inner = hooks.inner if isinstance(hooks, SafeHooks) else hooks
        self._reported: set[str] = set()

    def _call(self, what: str, *args, default=None):
        try:
            return getattr(self.inner, what)(*args)
        except Exception as exc:  # noqa: BLE001 - a hook must never end training
            if what not in self._reported:
                self._reported.add(what)
                log.warning("hook %s failed (training goes on): %s: %s", what,
                            type(exc).__name__, exc)
            return default

    def on_stage(self, *a):
        self._call("on_stage", *a)

    def on_step(self, e):
        self._call("on_step", e)

    def on_epoch(self, e):
        self._call("on_epoch", e)

    def on_status(self, m):
        self._call("on_status", m)

    def should_stop(self):
        return bool(self._call("should_stop", default=False))


class MultiHooks(Hooks):
    """Fan events out to several hooks (e.g. a job and a test recorder)."""

    def __init__(self, hooks: Iterable[Hooks | None]):
        self.hooks = [SafeHooks(h) for h in hooks if h is not None]

    def on_stage(self, *a):
        for h in self.hooks:
            h.on_stage(*a)

    def on_step(self, e):
        for h in self.hooks:
            h.on_step(e)

    def on_epoch(self, e):
        for h in self.hooks:
            h.on_epoch(e)

    def on_status(self, m):
        for h in self.hooks:
            h.on_status(m)

    def should_stop(self):
        return any(h.should_stop() for h in self.hooks)


def batches(n: int, batch_size: int, generator: torch.Generator, shuffle: bool = True,
            min_last: int = 2) -> Iterator[torch.Tensor]:
    """Index batches over ``n`` samples; a last batch smaller than ``min_last`` is dropped
    (batch-norm cannot normalise one sample)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        if len(idx) < min_last and i > 0:
            break
        yield idx


def run_epochs(model: torch.nn.Module, step: Callable[[int], Mapping[str, torch.Tensor]],
               *, stage: str, epochs: int, steps_per_epoch: int,
               optimizer: torch.optim.Optimizer, weights: Mapping[str, float] | None = None,
               l2: float = 0.0, l2_params=(), hooks: Hooks | None = None,
               history: History | None = None, global_step: int = 0,
               scheduler=None, until: Callable[[int], bool] | None = None,
               autocast: torch.dtype | None = None) -> int:
    """Run ``epochs`` x ``steps_per_epoch`` optimiser steps.

    ``step(i)`` computes the named loss terms of step ``i`` of the epoch; the total loss
    minimised is ``sum(weights[name] * term)`` (weight 1 by default) plus the L2 term
    ``l2 * sum(w^2)`` over ``l2_params`` (logged as ``l2``). ``scheduler`` (if any) is
    stepped after every epoch and the learning rate is logged as ``lr``. ``until(epoch)``
    (if given) is asked after every epoch (1-based) and ends the stage early when it returns
    True (a convergence rule such as DEC's). ``autocast`` (e.g. ``torch.bfloat16``) runs the
    forward pass of every step under ``torch.autocast`` on the model's device (mixed
    precision; the backward pass and the optimiser stay in float32). Hooks that raise are
    logged, never fatal. Returns the new global step.

    One host synchronisation per step: every loss term is read back in a single transfer
    (it is needed for the NaN guard and the live curves).
    """
    hooks = SafeHooks(hooks or Hooks())
    weights = dict(weights or {})
    l2_params = list(l2_params)
    hooks.on_stage(stage, epochs, steps_per_epoch)
    if autocast is not None:
        dev = next(iter(model.parameters()), torch.empty(0)).device
        mixed = functools.partial(torch.autocast, dev.type, dtype=autocast)
    else:
        mixed = contextlib.nullcontext
    t0 = time.perf_counter()
    for epoch in range(epochs):
        sums: dict[str, float] = {}
        model.train()
        for i in range(steps_per_epoch):
            if hooks.should_stop():
                # named by the last finished step, as the progress display shows it
                if i == 0 and epoch == 0:
                    where = "before its first step"
                elif i == 0:
                    where = f"epoch {epoch}, after step {steps_per_epoch}"
                else:
                    where = f"epoch {epoch + 1}, after step {i}"
                raise Cancelled(f"cancelled during {stage}, {where} of {steps_per_epoch}")
            with mixed():
                terms = dict(step(i))
            total = sum(weights.get(k, 1.0) * v for k, v in terms.items())
            if l2 and l2_params:
                reg = l2_penalty(l2_params, l2)
                terms["l2"] = reg
                total = total + reg
            wide = torch.float32 if total.device.type == "mps" else torch.float64  # no f64
            read = torch.stack([v.detach().reshape(()).to(wide)
                                for v in (*terms.values(), total)]).tolist()
            values = dict(zip([*terms, "total"], read))
            if not all(math.isfinite(v) for v in values.values()):
                bad = ", ".join(k for k, v in values.items() if not math.isfinite(v))
                raise TrainingError(
                    f"the loss diverged ({bad} is NaN or infinite) in {stage}, epoch "
                    f"{epoch + 1}, step {i + 1}; training stopped and the last finite state "
                    "was kept. Try a smaller learning rate or smaller loss weights.")
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            global_step += 1
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            rec = {"stage": stage, "epoch": epoch + 1, "epochs": epochs, "step": i + 1,
                   "steps": steps_per_epoch, "global_step": global_step, "losses": values,
                   "time": time.perf_counter() - t0}
            if scheduler is not None:
                rec["lr"] = float(optimizer.param_groups[0]["lr"])
            if history is not None:
                history.append(rec)
            hooks.on_step(rec)
        if scheduler is not None:
            scheduler.step()
        hooks.on_epoch({"stage": stage, "epoch": epoch + 1, "epochs": epochs,
                        "losses": {k: v / steps_per_epoch for k, v in sums.items()},
                        "time": time.perf_counter() - t0})
        log.info("%s epoch %d/%d: %s", stage, epoch + 1, epochs,
                 ", ".join(f"{k}={v / steps_per_epoch:.4g}" for k, v in sums.items()))
        if until is not None and until(epoch + 1):
            log.info("%s stopped after epoch %d of %d", stage, epoch + 1, epochs)
            break
    return global_step


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, x: torch.Tensor, device: torch.device,
                          batch_size: int = 256, forward: Callable | None = None) -> int:
    """Re-estimate every batch-norm layer's running mean and variance on ``x`` (exact
    averages over one pass in training mode, no gradient), then leave the model in eval
    mode. Returns the number of layers updated.

    Why: with Keras' momentum (0.99, torch 0.01) the running statistics need thousands of
    steps to forget their initial values; after the short ``cpu`` schedules an eval-mode
    network still normalises with near-initial statistics (the splitting autoencoder then
    reconstructs every digit as the same grey blob: SSIM 0.06-0.10 on digits instead of
    0.58-0.97). The weights are untouched."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns or len(x) < 2:
        model.eval()
        return 0
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
    model.train()
    fwd = forward or model
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        if len(xb) < 2:  # batch norm cannot normalise one sample; it was seen before
            continue
        fwd(xb.to(device))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()
    return len(bns)


def predict(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, device: torch.device,
            batch_size: int = 512, grad: bool = False) -> torch.Tensor:
    """Apply ``fn`` to ``x`` in batches on ``device``; results gathered on the CPU.

    ``grad=True`` keeps autograd on, for scores that need input gradients (ODIN's input
    perturbation); ``fn`` must then detach what it returns."""
    outs = []
    with torch.set_grad_enabled(grad):
        for i in range(0, len(x), batch_size):
            outs.append(fn(x[i:i + batch_size].to(device)).detach().cpu())
    return torch.cat(outs) if outs else torch.empty(0)
