"""Loss terms against values computed by hand on tiny tensors."""
import math

import pytest
import torch

from ocvis import losses as L


def test_reconstruction_sum_and_mean():
    x = torch.zeros(2, 1, 2, 2)
    xh = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    # per image squared error sums: 1 and 4 -> batch mean 2.5 (eq. 2)
    assert L.reconstruction(x, xh, "sum").item() == pytest.approx(2.5)
    # per-pixel means: 0.25 and 1.0 -> 0.625
    assert L.reconstruction(x, xh, "mean").item() == pytest.approx(0.625)


def test_closeness_hand_value():
    z = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    # shift 1 pairs j with j-1 (roll): (z0,z2), (z1,z0), (z2,z1)
    # RMS distances sqrt(|d|^2 / L): 0, sqrt(25/2), sqrt(25/2)
    expect = (0 + 2 * math.sqrt(12.5)) / 3
    assert L.closeness(z, 1).item() == pytest.approx(expect, abs=1e-5)


def test_dispersion_terms_are_negative_distances():
    za = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    zt = torch.tensor([[1.0, 3.0], [2.0, 0.0]])
    # disp1: pairs (za0, za1) both ways: RMS = sqrt(2/2)=1 -> -1
    assert L.dispersion_atypical(za, 1).item() == pytest.approx(-1.0, abs=1e-5)
    # disp2: (za0,zt0): sqrt(4/2)=sqrt2 ; (za1,zt1): sqrt(4/2)=sqrt2 -> -sqrt2
    assert L.dispersion_typical_atypical(za, zt).item() == pytest.approx(-math.sqrt(2), abs=1e-5)


def test_identical_latents_have_finite_gradient():
    z = torch.ones(4, 3, requires_grad=True)
    L.closeness(z, 1).backward()
    assert torch.isfinite(z.grad).all()


def test_partner_shift_never_self():
    g = torch.Generator().manual_seed(0)
    shifts = {L.partner_shift(5, g) for _ in range(200)}
    assert shifts == {1, 2, 3, 4}
    with pytest.raises(ValueError):
        L.partner_shift(1, g)


def test_l2_penalty_like_keras():
    w = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    assert L.l2_penalty(w, 1e-6).item() == pytest.approx(1e-6 * 14)
