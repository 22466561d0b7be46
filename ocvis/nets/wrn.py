"""Wide residual network (Zagoruyko & Komodakis 2016), E3Outlier's classifier (WRN-10-4).

Pre-activation blocks (BN - ReLU - conv 3x3, twice, 1x1 shortcut where the shape changes);
a 16-channel stem, three groups of ``(depth - 4) / 6`` blocks with ``16 k``, ``32 k``, ``64 k``
channels (strides 1, 2, 2), BN - ReLU, global average pooling to the representation
(``64 k``-d; 256-d for WRN-10-4) and a linear classifier over the K operations.
"""
from __future__ import annotations

import torch
from torch import nn


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.short = None if cin == cout and stride == 1 else \
            nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        a = torch.relu(self.bn1(x))
        h = self.conv1(a)
        h = self.conv2(self.drop(torch.relu(self.bn2(h))))
        return h + (x if self.short is None else self.short(a))


class WideResNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, depth: int = 10, widen: int = 4,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6 n + 4, got {depth}")
        n = (depth - 4) // 6
        widths = [16 * widen, 32 * widen, 64 * widen]
        self.stem = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        groups, cin = [], 16
        for i, w in enumerate(widths):
            blocks = [_Block(cin if j == 0 else w, w, (1 if i == 0 else 2) if j == 0 else 1,
                             dropout) for j in range(n)]
            groups.append(nn.Sequential(*blocks))
            cin = w
        self.groups = nn.ModuleList(groups)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)
        self.rep_dim = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def stages(self, size: int = 32) -> list[tuple[str, nn.Module, int]]:
        return [(f"group{i + 1}", g, size // (1 if i == 0 else 2 ** i))
                for i, g in enumerate(self.groups)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for g in self.groups:
            h = g(h)
        return torch.relu(self.bn(h)).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
