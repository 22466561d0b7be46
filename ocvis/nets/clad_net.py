"""CLAD's convolutional autoencoder and DEC's cluster-assignment layer (Park et al. 2021).

Paper App. B: encoder and decoder of five convolutional layers each with growing channel
counts, followed by two linear layers, and dropout. The authors' ``cvae`` / ``cvae_large``
(``official_code_notes.md`` section 2): input dropout 0.1; [Conv 3x3 - BN - ELU] x 2 and
max-pool, twice, then one more; Linear(-> 512) - ReLU - Linear(512 -> 2h) split into a mean
``mu`` and a scale ``sigma``; ``z = mu + sigma * eps`` with the raw ``sigma`` and no KL term
(a noisy autoencoder, not a VAE). The decoder mirrors it with two transposed convolutions
(x 2 each) and a sigmoid output. ``width`` is the first block's channels (16 in ``cvae``,
48 in ``cvae_large`` for colour images); inputs need a side divisible by 4 (8, 28, 32).
"""
from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ELU()]


class CladEncoder(nn.Module):
    def __init__(self, in_channels: int, size: int, latent_dim: int, width: int = 16,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if size % 4:
            raise ValueError(f"CLAD's autoencoder needs an image side divisible by 4, got {size}")
        w = width
        self.convs = nn.Sequential(
            nn.Dropout(dropout),
            *_block(in_channels, w), *_block(w, w), nn.MaxPool2d(2),
            *_block(w, 2 * w), *_block(2 * w, 2 * w), nn.MaxPool2d(2),
            *_block(2 * w, 4 * w))
        self.flat = 4 * w * (size // 4) ** 2
        self.fc = nn.Sequential(nn.Linear(self.flat, 512), nn.ReLU(),
                                nn.Linear(512, 2 * latent_dim))
        self.latent_dim = latent_dim

    def conv_layers(self) -> list[tuple[str, nn.Module]]:
        return [(f"conv{i + 1}", m) for i, m in
                enumerate(m for m in self.convs if isinstance(m, nn.Conv2d))]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc(self.convs(x).flatten(1))
        mu, sigma = h.chunk(2, dim=1)
        return mu, sigma


class CladDecoder(nn.Module):
    def __init__(self, out_channels: int, size: int, latent_dim: int, width: int = 16) -> None:
        super().__init__()
        w, self.s = width, size // 4
        self.fc = nn.Sequential(nn.Linear(latent_dim, 512), nn.ReLU(),
                                nn.Linear(512, 4 * w * self.s ** 2), nn.ReLU())
        self.w4 = 4 * w
        self.convs = nn.Sequential(
            *_block(4 * w, 4 * w),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), nn.BatchNorm2d(2 * w), nn.ELU(),
            *_block(2 * w, 2 * w),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.BatchNorm2d(w), nn.ELU(),
            *_block(w, w),
            nn.Conv2d(w, out_channels, 3, 1, 1), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.convs(self.fc(z).view(-1, self.w4, self.s, self.s))


class CladAutoencoder(nn.Module):
    """Encoder (``mu``, ``sigma``), optional sampling, decoder. ``forward`` reconstructs from
    ``mu + sigma * eps`` when ``sample`` is set and the module is in training mode, else from
    ``mu`` (deterministic)."""

    def __init__(self, in_channels: int, size: int, latent_dim: int = 10, width: int = 16,
                 dropout: float = 0.1, sample: bool = True) -> None:
        super().__init__()
        self.encoder = CladEncoder(in_channels, size, latent_dim, width, dropout)
        self.decoder = CladDecoder(in_channels, size, latent_dim, width)
        self.sample = sample
        for m in self.modules():  # the authors' Xavier-uniform initialisation, zero bias
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        mu, sigma = self.encoder(x)
        if self.sample and self.training:
            return mu + sigma * torch.randn_like(sigma)
        return mu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.latent(x))


def soft_assignment(z: torch.Tensor, centres: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """DEC's Student-t similarity (Xie et al. 2016, eq. 1):
    ``q_ij = (1 + |z_i - mu_j|^2 / alpha)^(-(alpha + 1) / 2)``, normalised over ``j``."""
    d2 = torch.cdist(z, centres).pow(2)
    q = (1.0 + d2 / alpha).pow(-(alpha + 1.0) / 2.0)
    return q / q.sum(1, keepdim=True)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """DEC's sharpened target (eq. 3): ``p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j')``
    with the soft cluster frequencies ``f_j = sum_i q_ij``."""
    w = q.pow(2) / q.sum(0, keepdim=True)
    return w / w.sum(1, keepdim=True)


class ClusterAssignment(nn.Module):
    """The K cluster centres as parameters (fine-tuned with the encoder)."""

    def __init__(self, k: int, dim: int, alpha: float = 1.0) -> None:
        super().__init__()
        self.centres = nn.Parameter(torch.zeros(k, dim))
        self.alpha = alpha

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return soft_assignment(z, self.centres, self.alpha)
