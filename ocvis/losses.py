"""Loss terms of the papers, each a plain function of tensors.

ICS feature learning (Schlachter et al. 2019, Sec. 3.5):

* eq. 2  ``reconstruction``  L_rec = 1/B sum_j ||x_j - x_hat_j||^2
* eq. 3  ``closeness``       L_cls = 1/B sum_j sqrt(1/L ||z_j - z_{i != j}||^2)
* eq. 4  ``dispersion``      L_disp1 = -1/B sum_j sqrt(1/L ||z_j,a - z_{i != j},a||^2)
                             L_disp2 = -1/B sum_j sqrt(1/L ||z_j,a - z_j,t||^2)

The partner ``z_{i != j}`` is "another randomly chosen" sample of the same batch. Batches are
already shuffled, so the partner of ``j`` is ``j + shift (mod B)`` with ``1 <= shift < B``
drawn per step (``partner_shift``); this is a random pairing that never pairs a sample with
itself.
"""
from __future__ import annotations

import torch

# sqrt(0) has an infinite derivative: a tiny floor keeps identical latents trainable.
_EPS = 1e-12


def reconstruction(x: torch.Tensor, x_hat: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """L_rec, eq. 2. ``reduction="sum"`` sums the squared error over the pixels of an image
    (the equation as printed); ``"mean"`` averages it (Keras' ``"mse"``). Both average over
    the batch."""
    se = (x - x_hat).pow(2).flatten(1)
    per_image = se.sum(1) if reduction == "sum" else se.mean(1)
    return per_image.mean()


def rms_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sqrt(1/L ||a_j - b_j||^2) for every row j (the distance inside eqs. 3 and 4)."""
    return ((a - b).pow(2).mean(1) + _EPS).sqrt()


def partner_shift(batch: int, generator: torch.Generator | None = None) -> int:
    """A random shift in [1, B-1]: pairs j with (j + shift) mod B, never with itself."""
    if batch < 2:
        raise ValueError("pairwise losses need at least two samples in a batch")
    return int(torch.randint(1, batch, (1,), generator=generator).item())


def closeness(z: torch.Tensor, shift: int = 1) -> torch.Tensor:
    """L_cls, eq. 3: mean RMS distance between each latent and another one of the batch."""
    return rms_distance(z, z.roll(shift, dims=0)).mean()


def dispersion_atypical(z_atyp: torch.Tensor, shift: int = 1) -> torch.Tensor:
    """L_disp,1, eq. 4: minus the mean RMS distance among atypical latents."""
    return -rms_distance(z_atyp, z_atyp.roll(shift, dims=0)).mean()


def dispersion_typical_atypical(z_atyp: torch.Tensor, z_typ: torch.Tensor) -> torch.Tensor:
    """L_disp,2, eq. 4: minus the mean RMS distance between atypical and typical latents
    (row j of one with row j of the other; pass the typical rows in random order)."""
    n = min(len(z_atyp), len(z_typ))
    return -rms_distance(z_atyp[:n], z_typ[:n]).mean()


def l2_penalty(params, weight: float) -> torch.Tensor:
    """Keras ``kernel_regularizer=l2(weight)``: weight * sum of squared kernel entries."""
    params = list(params)
    if not params or weight == 0:
        return torch.zeros(())
    return weight * sum(p.pow(2).sum() for p in params)
