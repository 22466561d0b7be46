"""ResNets for 32 x 32 images and the MLP projection head of the two-stage paper.

Sohn et al. (ICLR 2021), Sec. 4 / App. A.4 and the authors' code (``official_code_notes.md``
section 1): ResNet-18 v1 (BasicBlock [2, 2, 2, 2]) with a 3 x 3 stride-1 first convolution and
no max-pool for 32-pixel inputs, global average pooling to the representation ``f`` (512-d);
a projection head ``g`` of Linear (no bias) - BatchNorm - ReLU blocks and a last Linear.

* :class:`CifarResNet18`: torchvision's ``resnet18`` with the stem replaced (``conv1`` 3 x 3
  stride 1, ``maxpool`` and ``fc`` identities), ``in_channels`` for grey images;
* :class:`SmallResNet`: the same design with a depth (blocks per stage) and a width
  multiplier, e.g. the authors' ``ResNet10`` knob (``[1, 1, 1, 1]``) at width 0.5 for the
  ``cpu`` preset (torchvision has no width knob for BasicBlock);
* :class:`MLPHead`: ``len(dims)`` hidden blocks, each its own module (not one module repeated).

Weights: Kaiming-normal (fan-out, ReLU) for convolutions, as torchvision and the authors'
``VarianceScaling(2, fan_out)``; batch norm momentum 0.1 (Keras 0.9), eps 1e-5.
"""
from __future__ import annotations

from torch import nn


def _cifar_stem(model: nn.Module, in_channels: int, width: int) -> None:
    model.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    model.fc = nn.Identity()


class CifarResNet18(nn.Module):
    """ResNet-18 for 32 x 32 inputs; ``forward`` gives the 512-d pooled representation."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        from torchvision.models import resnet18

        self.net = resnet18(weights=None)
        _cifar_stem(self.net, in_channels, 64)
        self.out_dim = 512

    @property
    def stages(self) -> list[tuple[str, nn.Module, int]]:
        """``(name, module, output size for a 32 x 32 input)`` of the four residual stages."""
        n = self.net
        return [("layer1", n.layer1, 32), ("layer2", n.layer2, 16), ("layer3", n.layer3, 8),
                ("layer4", n.layer4, 4)]

    def forward(self, x):
        return self.net(x)


class ImageNetStemResNet18(nn.Module):
    """torchvision's ``resnet18`` with its ImageNet stem kept (7 x 7 stride-2 convolution and
    max-pool: a 32 x 32 image reaches ``layer4`` as 1 x 1 maps), as the CLAD authors'
    classifier; ``conv1`` takes ``in_channels`` (grey images) and ``fc`` is removed."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        from torchvision.models import resnet18

        self.net = resnet18(weights=None)
        if in_channels != 3:
            self.net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
            nn.init.kaiming_normal_(self.net.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.net.fc = nn.Identity()
        self.out_dim = 512

    @property
    def stages(self) -> list[tuple[str, nn.Module, int]]:
        n = self.net
        return [("layer1", n.layer1, 8), ("layer2", n.layer2, 4), ("layer3", n.layer3, 2),
                ("layer4", n.layer4, 1)]

    def forward(self, x):
        return self.net(x)


class SmallResNet(nn.Module):
    """A CIFAR-stem ResNet of BasicBlocks: ``blocks`` per stage, channels ``64 * width``,
    ``128 * width``, ... (``blocks=(2, 2, 2, 2), width=1`` is ResNet-18)."""

    def __init__(self, in_channels: int = 3, blocks: tuple[int, ...] = (1, 1, 1, 1),
                 width: float = 0.5) -> None:
        super().__init__()
        from torchvision.models.resnet import BasicBlock

        base = max(4, int(round(64 * width)))
        self.conv1 = nn.Conv2d(in_channels, base, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        layers, cin = [], base
        for i, n in enumerate(blocks):
            cout = base * 2 ** i
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != cout:
                down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                     nn.BatchNorm2d(cout))
            stage = [BasicBlock(cin, cout, stride, down)]
            stage += [BasicBlock(cout, cout) for _ in range(max(0, n - 1))]
            layers.append(nn.Sequential(*stage))
            cin = cout
        self.layers = nn.ModuleList(layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def stages(self) -> list[tuple[str, nn.Module, int]]:
        return [(f"layer{i + 1}", m, 32 // 2 ** i) for i, m in enumerate(self.layers)]

    def forward(self, x):
        h = self.relu(self.bn1(self.conv1(x)))
        for layer in self.layers:
            h = layer(h)
        return self.pool(h).flatten(1)


class MLPHead(nn.Module):
    """``g``: Linear(no bias)-BN-ReLU for each of ``dims``, then Linear(``out_dim``)."""

    def __init__(self, in_dim: int, dims: tuple[int, ...] = (512,), out_dim: int = 128,
                 bias: bool = False) -> None:
        super().__init__()
        blocks, d = [], in_dim
        for h in dims:  # a fresh module per block
            blocks.append(nn.Sequential(nn.Linear(d, h, bias=False), nn.BatchNorm1d(h),
                                        nn.ReLU(inplace=True)))
            d = h
        self.hidden = nn.Sequential(*blocks)
        self.out = nn.Linear(d, out_dim, bias=bias)

    def forward(self, f):
        return self.out(self.hidden(f))


class ConvDecoder(nn.Module):
    """A light decoder from a pooled representation to a 32 x 32 image (the DAE baseline)."""

    def __init__(self, in_dim: int, out_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.width = width
        self.fc = nn.Linear(in_dim, width * 4 * 4)
        self.net = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(True),
            nn.ConvTranspose2d(width, width // 2, 4, 2, 1), nn.BatchNorm2d(width // 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(width // 2, width // 4, 4, 2, 1), nn.BatchNorm2d(width // 4),
            nn.ReLU(True),
            nn.Conv2d(width // 4, out_channels, 3, 1, 1), nn.Sigmoid())

    def forward(self, f):
        return self.net(self.fc(f).view(len(f), self.width, 4, 4))


def build_backbone(arch: str, in_channels: int, blocks: tuple[int, ...] = (1, 1, 1, 1),
                   width: float = 0.5) -> nn.Module:
    """``"resnet18"`` (CIFAR stem), ``"resnet18-imagenet"`` (ImageNet stem) or ``"resnet"``
    (:class:`SmallResNet` with the knobs)."""
    if arch == "resnet18":
        return CifarResNet18(in_channels)
    if arch == "resnet18-imagenet":
        return ImageNetStemResNet18(in_channels)
    if arch == "resnet":
        return SmallResNet(in_channels, tuple(blocks), width)
    raise ValueError(f"unknown backbone {arch!r}: resnet18, resnet18-imagenet or resnet")
