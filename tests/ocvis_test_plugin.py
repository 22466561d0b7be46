"""A method for tests that is not features + detector: its score is its own network's
output. Loaded as a plugin (``OCVIS_METHOD_PLUGINS=ocvis_test_plugin``), exactly as a lab's
own method would be, so the pages must show it with no code of their own.

``test-rotnet``: a small CNN learns to tell the four right-angle rotations of the normal
training images apart (a self-supervised task); a normal image is one whose rotation the
network recognises. Scores: ``p_upright`` = log p(rotation 0 | x) and ``rotation_mean`` =
mean over k of log p(k | rot_k(x)) (both higher = more normal); per-sample column
``predicted_rotation``; ``embed`` = the pooled features.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ocvis.methods import register
from ocvis.methods.base import option
from ocvis.methods.deep import DeepConfig, DeepMethod


class TinyRotNet(nn.Module):
    def __init__(self, in_channels: int = 1, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.head = nn.Linear(2 * width, 4)

    def features(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)       # 16 x 16
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)       # 8 x 8
        return h.mean((2, 3))

    def forward(self, x):
        return self.head(self.features(x))


class UprightLogProb(nn.Module):
    def __init__(self, net: TinyRotNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return F.log_softmax(self.net(x), 1)[:, 0].to(torch.float64)


@dataclass
class RotConfig(DeepConfig):
    width: int = option(8, "channels of the first convolution", min=1, max=256)


def rotations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xs = torch.cat([torch.rot90(x, k, (2, 3)) for k in range(4)])
    return xs, torch.arange(4).repeat_interleave(len(x))


class TestRotNet(DeepMethod):
    name = "test-rotnet"
    title = "Test RotNet (own score, no detector)"
    paper = "a test method"
    Config = RotConfig
    presets = {"tiny": {"epochs": 2, "batch_size": 32}, "cpu": {"epochs": 5}}
    stages = ("rotation",)
    score_names = ("p_upright", "rotation_mean")
    explain_heads = ("own",)
    net_factories = {"tiny_rotnet": TinyRotNet}

    def _fit(self, x, hooks):
        net = self.build("net", "tiny_rotnet", in_channels=int(x.shape[1]),
                         width=int(self.config.width))
        index = self.epoch_batches(len(x))

        def step(i):
            xb, yb = rotations(x[index(i)])
            return {"ce": F.cross_entropy(net(xb.to(self.device_)), yb.to(self.device_))}

        self.train_stage(net, step, stage="rotation", epochs=self.config.epochs,
                         steps_per_epoch=self.steps_per_epoch(len(x)), hooks=hooks)

    def _log_probs(self, x) -> torch.Tensor:
        xs, _ = rotations(x)
        lp = self.predict(lambda b: F.log_softmax(self.nets["net"](b), 1), xs)
        return lp.view(4, len(x), 4)

    def _scores(self, x):
        lp = self._log_probs(x)
        return {"p_upright": lp[0, :, 0].numpy(),
                "rotation_mean": torch.stack([lp[k, :, k] for k in range(4)]).mean(0).numpy()}

    def _embed(self, x):
        return self.predict(self.nets["net"].features, x).numpy().astype(np.float64)

    def sample_columns(self, x):
        return {"predicted_rotation": self._log_probs(x)[0].argmax(1).numpy().astype(np.int64)}

    def score_model(self, head):
        return UprightLogProb(self.nets["net"])

    def cam_layers(self):
        net = self.nets["net"]
        return [("conv1", net.conv1, 32), ("conv2", net.conv2, 16)]

    def state_dict(self):
        self._check_fitted()
        return self.nets_state()

    def load_state_dict(self, sd):
        self.load_nets_state(sd)
        self.fitted_ = True
        return self


register(TestRotNet)
