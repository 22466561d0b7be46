"""What every deep method shares: device, optimiser and schedule, epochs and steps, batching,
seeding that leaves the caller's random state alone, prediction (with input gradients when a
score needs them) and saving networks together with the arguments that build them.

A deep method builds its networks with :meth:`DeepMethod.build`, trains a stage with
:meth:`DeepMethod.train_stage` (the engine in :mod:`ocvis.train` does the loop, hooks,
cancel and NaN guard) and scores with :meth:`DeepMethod.predict`. ``state_dict`` stores
every network's weights under ``net.<name>.`` and its build arguments under ``net_args``,
so a stored run is rebuilt exactly instead of guessing the architecture from tensor shapes.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import numpy as np
import torch
from torch import nn

from ocvis.methods.base import BaseConfig, Method, option
from ocvis.train import (SCHEDULES, Hooks, batches, make_optimizer, make_scheduler, predict,
                         resolve_device, run_epochs, seeded, to_device)

log = logging.getLogger(__name__)


@dataclass
class DeepConfig(BaseConfig):
    """Training settings every deep method has (paper defaults in each method's presets)."""

    epochs: int = option(50, "training epochs (of the method's main stage)", min=0, max=100000)
    batch_size: int = option(64, "mini-batch size", min=2, max=8192)
    lr: float = option(1e-3, "learning rate", min=1e-7, max=10.0, log=True)
    optimizer: str = option("adam", "optimiser", choices=("adam", "sgd", "rmsprop"))
    momentum: float = option(0.9, "SGD momentum", min=0.0, max=0.999)
    weight_decay: float = option(0.0, "optimiser weight decay (coupled L2)", min=0.0, max=1.0)
    lr_schedule: str = option("constant", "learning-rate schedule, stepped per epoch",
                              choices=SCHEDULES)
    min_steps: int = option(0, "at least this many optimiser steps per stage (more epochs "
                               "on small datasets such as the 8x8 digits)", min=0, max=10**7)
    device: str = option("auto", "cuda > mps > cpu when auto",
                         choices=("auto", "cpu", "cuda", "mps"))


@dataclass
class MixedPrecisionConfig(DeepConfig):
    """The training settings of a method whose losses tolerate bfloat16 (``amp_safe``)."""

    mixed_precision: str = option(
        "auto", "bfloat16 autocast of the training steps: auto = where the device computes "
                "bfloat16 natively (CUDA; CPUs with AVX512-BF16 or AMX), bf16 = always, "
                "off = float32; scoring is float32 either way", choices=("auto", "bf16", "off"))


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (so autocast is faster, not slower)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        return any(bool(getattr(cpu, f, lambda: False)()) for f in
                   ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return False


NetFactory = Callable[..., nn.Module]


class DeepMethod(Method):
    """A method with trained networks (see the module docstring)."""

    deep: ClassVar[bool] = True
    #: may train in bfloat16 mixed precision (see :meth:`autocast_dtype`; its Config
    #: derives from :class:`MixedPrecisionConfig`)
    amp_safe: ClassVar[bool] = False
    Config: ClassVar[type] = DeepConfig
    #: network kind -> constructor; ``build(name, kind, **args)`` looks kinds up here
    net_factories: ClassVar[dict[str, NetFactory]] = {}

    # -- fit: seeded without touching the caller's random state --------------------------
    def fit(self, task, hooks: Hooks | None = None):
        with seeded(int(self.config.seed)) as g:
            self.generator_ = g
            return super().fit(task, hooks)

    @property
    def device_(self) -> torch.device:
        dev = self.__dict__.get("_device")
        if dev is None:
            dev = self.__dict__["_device"] = resolve_device(self.config.device)
        return dev

    # -- networks -------------------------------------------------------------------------
    def build(self, name: str, kind: str, **args: Any) -> nn.Module:
        """Build network ``name`` from ``net_factories[kind](**args)`` on the device and
        remember its build arguments (saved with its weights)."""
        if kind not in self.net_factories:
            raise KeyError(f"{self.name}: unknown network kind {kind!r}")
        net = to_device(self.net_factories[kind](**args), self.device_)
        self.__dict__.setdefault("nets_", {})[name] = net
        self.__dict__.setdefault("net_args_", {})[name] = {"kind": kind, **args}
        return net

    @property
    def nets(self) -> dict[str, nn.Module]:
        return self.__dict__.get("nets_", {})

    # -- training -------------------------------------------------------------------------
    def steps_per_epoch(self, n: int, batch_size: int | None = None) -> int:
        bs = batch_size or self.config.batch_size
        return len(list(batches(n, bs, torch.Generator(), shuffle=False)))

    def epochs_for(self, epochs: int, steps_per_epoch: int) -> int:
        """``epochs``, raised so that a stage takes at least ``min_steps`` steps."""
        need = -(-self.config.min_steps // max(1, steps_per_epoch))
        return max(epochs, need) if epochs > 0 else 0

    def optimizer_for(self, params, lr: float | None = None) -> torch.optim.Optimizer:
        c = self.config
        return make_optimizer(c.optimizer, params, c.lr if lr is None else lr,
                              momentum=c.momentum, weight_decay=c.weight_decay)

    def train_stage(self, net: nn.Module, step: Callable[[int], Mapping[str, torch.Tensor]],
                    *, stage: str, epochs: int, steps_per_epoch: int, hooks: Hooks,
                    optimizer: torch.optim.Optimizer | None = None,
                    weights: Mapping[str, float] | None = None, l2: float = 0.0,
                    l2_params=(), schedule: str | None = None,
                    milestones=(), until: Callable[[int], bool] | None = None) -> int:
        """One training stage through the engine: ``epochs`` (raised to ``min_steps``) of
        ``step(i) -> {term: loss}``, optimiser and schedule from the config unless given;
        the history continues the method's; ``until(epoch)`` may end it early."""
        c = self.config
        epochs = self.epochs_for(epochs, steps_per_epoch)
        opt = optimizer or self.optimizer_for(net.parameters())
        sched = make_scheduler(schedule or c.lr_schedule, opt, epochs, milestones)
        return run_epochs(net, step, stage=stage, epochs=epochs,
                          steps_per_epoch=steps_per_epoch, optimizer=opt, weights=weights,
                          l2=l2, l2_params=l2_params, hooks=hooks, history=self.history,
                          global_step=len(self.history), scheduler=sched, until=until,
                          autocast=self.autocast_dtype())

    def autocast_dtype(self) -> torch.dtype | None:
        """bfloat16 mixed precision for training, for methods whose losses tolerate it
        (``amp_safe``: classification and contrastive losses; their config has
        ``mixed_precision``): ``auto`` where the device computes bfloat16 natively (a CUDA
        GPU that supports it; a CPU with AVX512-BF16 or AMX, where it halves the step time
        of the two-stage ResNets, bench/NOTES.md), ``bf16`` always, ``off`` never. None
        (float32) for the distance-based losses of ICS, CLS, Deep SVDD and CLAD (terms of
        1e-8 that bfloat16's 8 mantissa bits would erase) and when ``OCVIS_AMP=0``. Scores,
        detectors and explanations are always float32 / float64."""
        dev = getattr(self, "device_", None)
        mode = getattr(self.config, "mixed_precision", "off")
        if (not self.amp_safe or dev is None or mode == "off"
                or os.environ.get("OCVIS_AMP", "1") == "0"
                or (mode == "auto" and not native_bf16(dev))):
            return None
        return torch.bfloat16

    def epoch_batches(self, n: int, batch_size: int | None = None,
                      generator: torch.Generator | None = None) -> Callable[[int], torch.Tensor]:
        """``index(i)``: the sample indices of step ``i`` of the current epoch, reshuffled
        (with ``generator``, default the fit's) at every epoch's first step."""
        bs = batch_size or self.config.batch_size
        state: dict[str, list] = {"idx": []}
        g = generator if generator is not None else self.generator_

        def index(i: int) -> torch.Tensor:
            if i == 0:
                state["idx"] = list(batches(n, bs, g))
            return state["idx"][i]

        return index

    # -- prediction -----------------------------------------------------------------------
    def predict(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                batch_size: int = 512, grad: bool = False) -> torch.Tensor:
        """``fn`` on ``x`` in batches on the method's device, networks in eval mode."""
        for net in self.nets.values():
            net.eval()
        return predict(fn, x, self.device_, batch_size=batch_size, grad=grad)

    # -- persistence ----------------------------------------------------------------------
    def nets_state(self) -> dict[str, Any]:
        sd: dict[str, Any] = {}
        for name, net in self.nets.items():
            for k, v in net.state_dict().items():
                sd[f"net.{name}.{k}"] = v.detach().cpu()
        sd["net_args"] = {k: dict(v) for k, v in self.__dict__.get("net_args_", {}).items()}
        return sd

    def load_nets_state(self, sd: Mapping[str, Any]) -> None:
        """Rebuild every network from its stored build arguments and load its weights."""
        for name, args in dict(sd.get("net_args") or {}).items():
            args = dict(args)
            kind = args.pop("kind")
            net = self.build(name, kind, **args)
            prefix = f"net.{name}."
            net.load_state_dict({k[len(prefix):]: v for k, v in sd.items()
                                 if isinstance(k, str) and k.startswith(prefix)})
            net.eval()


class LatentState:
    """Persistence of a deep method whose state is its networks plus the training images'
    representation ``train_latent_`` (kept for the KDE explanation head and the Latent
    page). Mixed in before :class:`DeepMethod`."""

    def state_dict(self):
        self._check_fitted()
        sd = self.nets_state()
        if getattr(self, "train_latent_", None) is not None:
            sd["train_latent"] = torch.from_numpy(np.asarray(self.train_latent_))
        return sd

    def load_state_dict(self, sd):
        self.load_nets_state(sd)
        if "train_latent" in sd:
            self.train_latent_ = sd["train_latent"].numpy()
        self.fitted_ = True
        return self


def as_numpy64(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)
