"""Networks of the end-to-end intra-class-splitting paper and of Deep SVDD.

* :class:`ICSNet` (Schlachter, Liao, Yang 2019, Fig. 2): feature extraction + classification
  subnetworks. The paper names AlexNet; its released code builds this network instead
  (``official_code_notes.md`` section 3): four stages of [3 x 3 convolution (linear, no bias),
  a second 3 x 3 convolution on it, both concatenated, LeakyReLU 0.2, 2 x 2 average pooling,
  batch norm (Keras momentum 0.99, eps 1e-3)] with 16 / 32 / 64 / 128 filters, two parallel
  1 x 1 convolutions of 256 concatenated + LeakyReLU + batch norm, then Dense 256 - LeakyReLU -
  Dropout 0.5 - Dense 128 - LeakyReLU (the latent ``z``) - Dropout 0.5 - Dense 1 (a logit).
  We follow the code (32 x 32 inputs need no extra padding).
* :class:`DistanceNet`: the distance subnetwork, ``sigmoid(w . (z_i - z_j) + b)`` in [0, 1].
* :class:`LeNetSVDD` / :class:`LeNetDecoder`: Deep SVDD's LeNet-type networks (Ruff et al.
  2018, Sec. 4.1): 5 x 5 convolutions with batch norm without affine parameters, LeakyReLU
  0.01, 2 x 2 max pooling, a last dense layer; no bias anywhere (a bias lets the network map
  every input to the centre: the "hypersphere collapse" of Prop. 2).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_BN_MOMENTUM = 0.01  # Keras 0.99
_BN_EPS = 1e-3


class _Stage(nn.Module):
    def __init__(self, cin: int, filters: int) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(cin, filters, 3, padding=1, bias=False)
        self.conv_b = nn.Conv2d(filters, filters, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(2 * filters, eps=_BN_EPS, momentum=_BN_MOMENTUM)

    def forward(self, x):
        a = self.conv_a(x)
        h = torch.cat([a, self.conv_b(a)], 1)
        return self.bn(F.avg_pool2d(F.leaky_relu(h, 0.2), 2))


class ICSNet(nn.Module):
    """``forward(x) -> (logit, z)``; ``logit`` > 0 means *typical* (normal)."""

    def __init__(self, in_channels: int = 1, latent_dim: int = 128, filters=(16, 32, 64, 128),
                 dropout: float = 0.5) -> None:
        super().__init__()
        stages, cin = [], in_channels
        for f in filters:
            stages.append(_Stage(cin, f))
            cin = 2 * f
        self.stages = nn.ModuleList(stages)
        self.head_a = nn.Conv2d(cin, 256, 1)
        self.head_b = nn.Conv2d(cin, 256, 1)
        self.head_bn = nn.BatchNorm2d(512, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        side = 32 // 2 ** len(filters)
        self.fc1 = nn.Linear(512 * side * side, 256)
        self.fc2 = nn.Linear(256, latent_dim)
        self.out = nn.Linear(latent_dim, 1)
        self.drop = nn.Dropout(dropout)
        self.latent_dim = latent_dim

    def conv_layers(self) -> list[tuple[str, nn.Module, int]]:
        return [(f"stage{i + 1}", s, 16 // 2 ** i) for i, s in enumerate(self.stages)]

    def features(self, x):
        h = x
        for s in self.stages:
            h = s(h)
        h = self.head_bn(F.leaky_relu(torch.cat([self.head_a(h), self.head_b(h)], 1), 0.2))
        h = self.drop(F.leaky_relu(self.fc1(h.flatten(1)), 0.2))
        return F.leaky_relu(self.fc2(h), 0.2)  # z

    def forward(self, x):
        z = self.features(x)
        return self.out(self.drop(z)).squeeze(1), z


class DistanceNet(nn.Module):
    """``dist(z_i, z_j) = sigmoid(w . (z_i - z_j) + b)`` (paper Sec. 3.1: a subtraction layer
    and one dense layer); signed, so not symmetric -- as the paper and its code."""

    def __init__(self, latent_dim: int = 128) -> None:
        super().__init__()
        self.fc = nn.Linear(latent_dim, 1)

    def forward(self, zi, zj):
        return torch.sigmoid(self.fc(zi - zj)).squeeze(1)


def _bn(c: int, dims: int = 2) -> nn.Module:
    return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(c, eps=1e-4, affine=False)


class LeNetSVDD(nn.Module):
    """Deep SVDD's encoder: ``filters`` 5 x 5 conv stages (BN without affine, LeakyReLU 0.01,
    max-pool 2) and a bias-free dense layer to ``rep_dim`` (MNIST: (8, 4) -> 32; CIFAR-10:
    (32, 64, 128) -> 128)."""

    def __init__(self, in_channels: int = 1, filters=(8, 4), rep_dim: int = 32) -> None:
        super().__init__()
        convs, bns, cin = [], [], in_channels
        for f in filters:
            convs.append(nn.Conv2d(cin, f, 5, padding=2, bias=False))
            bns.append(_bn(f))
            cin = f
        self.convs, self.bns = nn.ModuleList(convs), nn.ModuleList(bns)
        side = 32 // 2 ** len(filters)
        self.fc = nn.Linear(cin * side * side, rep_dim, bias=False)
        self.rep_dim, self.filters, self.side = rep_dim, tuple(filters), side

    def conv_layers(self) -> list[tuple[str, nn.Module, int]]:
        return [(f"conv{i + 1}", c, 32 // 2 ** i) for i, c in enumerate(self.convs)]

    def forward(self, x):
        h = x
        for conv, bn in zip(self.convs, self.bns):
            h = F.max_pool2d(F.leaky_relu(bn(conv(h)), 0.01), 2)
        return self.fc(h.flatten(1))


class LeNetDecoder(nn.Module):
    """The mirrored decoder for Deep SVDD's autoencoder pre-training (bias-free)."""

    def __init__(self, out_channels: int = 1, filters=(8, 4), rep_dim: int = 32) -> None:
        super().__init__()
        rev = list(filters)[::-1]
        self.side = 32 // 2 ** len(filters)
        self.c0 = rev[0]
        self.fc = nn.Linear(rep_dim, rev[0] * self.side * self.side, bias=False)
        ups, bns, cin = [], [], rev[0]
        for f in rev[1:] + [rev[-1]]:
            ups.append(nn.ConvTranspose2d(cin, f, 5, padding=2, bias=False))
            bns.append(_bn(f))
            cin = f
        self.ups, self.bns = nn.ModuleList(ups), nn.ModuleList(bns)
        self.last = nn.ConvTranspose2d(cin, out_channels, 5, padding=2, bias=False)

    def forward(self, z):
        h = self.fc(z).view(len(z), self.c0, self.side, self.side)
        for up, bn in zip(self.ups, self.bns):
            h = F.interpolate(F.leaky_relu(bn(up(h)), 0.01), scale_factor=2)
        return torch.sigmoid(self.last(h))


class LeNetAutoencoder(nn.Module):
    def __init__(self, in_channels: int = 1, filters=(8, 4), rep_dim: int = 32) -> None:
        super().__init__()
        self.encoder = LeNetSVDD(in_channels, filters, rep_dim)
        self.decoder = LeNetDecoder(in_channels, filters, rep_dim)

    def forward(self, x):
        return self.decoder(self.encoder(x))
