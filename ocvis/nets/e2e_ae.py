"""The splitting autoencoder of the released end-to-end ICS code (official_code_notes.md,
section 3(a)), as an alternative to the feature-learning paper's (:mod:`ocvis.nets.paper_ae`).

Encoder: four stages of [3x3 conv + ReLU, a second 3x3 conv + ReLU on its output, the two
concatenated, 2x2 max-pool, batch norm] with 8 / 16 / 32 / 64 filters per conv (so 16 / 32 /
64 / 128 channels out), then a 1x1 convolution to 128 channels: a 2 x 2 x 128 latent for a
32 x 32 input. Decoder: four 3x3 transposed convolutions of stride 2 with 32 / 32 / 16 / 8
filters and ReLU, then a 3x3 convolution to the image channels with a sigmoid. No conv
biases; batch norm with Keras' momentum 0.99 and epsilon 1e-3. Initialisation: PyTorch's
default, not the code's truncated normal(0, 0.01): with that and no biases the decoder's
output stays at sigmoid(0) and the reconstruction loss did not move in 3,150 Adam steps on
Fashion-MNIST (measured, session 8), so every split would have compared the images with a
grey constant.

Choices where the notes are silent: the 1x1 latent convolution is linear; the last
decoder layer is a 3x3 convolution (the code's output layer is not described beyond its
sigmoid).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

FILTERS = (8, 16, 32, 64)
DECODER_FILTERS = (32, 32, 16, 8)
LATENT_CHANNELS = 128


class _Stage(nn.Module):
    def __init__(self, cin: int, f: int) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(cin, f, 3, padding=1, bias=False)
        self.conv_b = nn.Conv2d(f, f, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(2 * f, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.conv_a(x))
        b = F.relu(self.conv_b(a))
        return self.bn(F.max_pool2d(torch.cat([a, b], 1), 2))


class ReleasedE2EAutoencoder(nn.Module):
    """``forward`` returns ``(z, x_hat)``: the flattened 2 x 2 x ``latent_dim`` latent and
    the ``N x C x 32 x 32`` reconstruction in [0, 1]."""

    def __init__(self, in_channels: int = 1, latent_dim: int = LATENT_CHANNELS) -> None:
        super().__init__()
        self.in_channels, self.latent_dim = in_channels, latent_dim
        stages, cin = [], in_channels
        for f in FILTERS:
            stages.append(_Stage(cin, f))
            cin = 2 * f
        self.encoder = nn.Sequential(*stages, nn.Conv2d(cin, latent_dim, 1, bias=False),
                                     nn.Flatten())
        layers, cin = [nn.Unflatten(1, (latent_dim, 2, 2))], latent_dim
        for f in DECODER_FILTERS:
            layers += [nn.ConvTranspose2d(cin, f, 3, stride=2, padding=1, output_padding=1,
                                          bias=False), nn.ReLU()]
            cin = f
        layers += [nn.Conv2d(cin, in_channels, 3, padding=1, bias=False), nn.Sigmoid()]
        self.decoder = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.modules.conv._ConvNd):
                nn.init.kaiming_uniform_(m.weight, a=5 ** 0.5)  # torch default, see above

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 4 or x.shape[-2:] != (32, 32) or x.shape[1] != self.in_channels:
            raise ValueError(f"expected N x {self.in_channels} x 32 x 32 images, got "
                             f"{tuple(x.shape)}")
        z = self.encoder(x)
        return z, self.decoder(z)
