"""Tests of the paper autoencoder (Schlachter et al. 2019, Tables 2 and 3)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ocvis.errors import DataError
from ocvis.nets import NETS, PaperAutoencoder, PaperDecoder, PaperEncoder, build_net, conv_weights

L = 64  # the paper's latent dimension

# (name, channels, H = W) for every map of Table 2, converted to channels-first.
ENCODER_SHAPES = [
    ("conv1", 32, 32),
    ("pool1", 32, 16),
    ("bn1", 32, 16),
    ("conv2", 64, 12),
    ("bn2", 64, 12),
    ("conv3", 64, 8),
    ("bn3", 64, 8),
    ("conv4", 128, 4),
    ("bn4", 128, 4),
    ("conv5", 256, 2),
    ("pool5", 256, 1),
    ("ap2", 64, 1),
    ("ap3", 64, 1),
    ("ap4", 128, 1),
    ("concat5", 512, 1),
    ("conv6", L, 1),
    ("sigmoid6", L, 1),
]

# Same for Table 3 (the output layer's channels depend on the dataset).
DECODER_SHAPES = [
    ("bn6", L, 1),
    ("convt7", 256, 2),
    ("bn7", 256, 2),
    ("convt8", 128, 4),
    ("bn8", 128, 4),
    ("convt9", 64, 8),
    ("bn9", 64, 8),
    ("convt10", 64, 16),
    ("ups7", 256, 16),
    ("ups8", 128, 16),
    ("ups9", 64, 16),
    ("concat10", 512, 16),
    ("convt11", 32, 32),
    ("bn11", 32, 32),
]

B = 4  # tiny batch: the CI machine has two shared cores


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("channels", [1, 3])
def test_encoder_maps_match_table2(channels: int) -> None:
    enc = PaperEncoder(in_channels=channels, latent_dim=L)
    feats = enc.forward_features(torch.rand(B, channels, 32, 32))
    for name, c, hw in ENCODER_SHAPES:
        assert tuple(feats[name].shape) == (B, c, hw, hw), name
    assert tuple(feats["latent"].shape) == (B, L)


@pytest.mark.parametrize("channels", [1, 3])
def test_decoder_maps_match_table3(channels: int) -> None:
    dec = PaperDecoder(out_channels=channels, latent_dim=L)
    feats = dec.forward_features(torch.rand(B, L))
    for name, c, hw in DECODER_SHAPES:
        assert tuple(feats[name].shape) == (B, c, hw, hw), name
    assert tuple(feats["conv12"].shape) == (B, channels, 32, 32)
    assert tuple(feats["output"].shape) == (B, channels, 32, 32)


def test_skips_follow_the_tables() -> None:
    """Average pools / up-samplings take the ReLU outputs (before BN), as Tables 2/3 list."""
    enc, dec = PaperEncoder(), PaperDecoder()
    f = enc.forward_features(torch.rand(B, 1, 32, 32))
    torch.testing.assert_close(f["ap2"], f["conv2"].mean(dim=(2, 3), keepdim=True))
    torch.testing.assert_close(f["ap4"], f["conv4"].mean(dim=(2, 3), keepdim=True))
    g = dec.forward_features(torch.rand(B, L))
    torch.testing.assert_close(g["ups7"][:, :, ::8, ::8], g["convt7"])
    torch.testing.assert_close(g["ups9"][:, :, ::2, ::2], g["convt9"])


@pytest.mark.parametrize("channels", [1, 3])
def test_autoencoder_ranges(channels: int) -> None:
    ae = PaperAutoencoder(in_channels=channels)
    z, x_hat = ae(torch.rand(B, channels, 32, 32))
    assert z.shape == (B, L) and x_hat.shape == (B, channels, 32, 32)
    assert bool(((z > 0) & (z < 1)).all())
    assert bool(((x_hat > 0) & (x_hat < 1)).all())


def test_latent_dim_is_configurable() -> None:
    ae = PaperAutoencoder(in_channels=1, latent_dim=16)
    z, x_hat = ae(torch.rand(B, 1, 32, 32))
    assert z.shape == (B, 16) and x_hat.shape == (B, 1, 32, 32)


def _expected_params(c: int, l: int) -> tuple[int, int]:
    """Parameter counts worked out by hand from Tables 2/3 (3x3 kernels + biases, BN gamma+beta)."""
    conv = lambda cin, cout, k=3: k * k * cin * cout + cout  # noqa: E731
    bn = lambda ch: 2 * ch  # noqa: E731
    enc = (
        conv(c, 32) + bn(32) + conv(32, 64) + bn(64) + conv(64, 64) + bn(64)
        + conv(64, 128) + bn(128) + conv(128, 256) + conv(512, l, k=1)
    )
    dec = (
        bn(l) + conv(l, 256) + bn(256) + conv(256, 128) + bn(128) + conv(128, 64) + bn(64)
        + conv(64, 64) + conv(512, 32) + bn(32) + conv(32, c)
    )
    return enc, dec


@pytest.mark.parametrize("channels", [1, 3])
def test_parameter_count(channels: int) -> None:
    ae = PaperAutoencoder(in_channels=channels)
    n_enc = sum(p.numel() for p in ae.encoder.parameters())
    n_dec = sum(p.numel() for p in ae.decoder.parameters())
    assert (n_enc, n_dec) == _expected_params(channels, L)
    assert 1.0e6 < n_enc + n_dec < 1.3e6  # ~1.16 M: a small net, as intended


def test_keras_defaults() -> None:
    """BN uses Keras' momentum/eps; conv biases start at zero (Keras' default init)."""
    ae = PaperAutoencoder()
    bns = [m for m in ae.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 4 + 5  # BN1-4 in the encoder, BN6-9 and BN11 in the decoder
    assert all(m.momentum == pytest.approx(0.01) and m.eps == pytest.approx(1e-3) for m in bns)
    convs = [m for m in ae.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    assert all(float(m.bias.detach().abs().max()) == 0.0 for m in convs)
    # Glorot-uniform bound for conv5: sqrt(6 / (fan_in + fan_out)).
    bound = (6.0 / (9 * 128 + 9 * 256)) ** 0.5
    assert float(ae.encoder.conv5.weight.detach().abs().max()) <= bound


@pytest.mark.parametrize(
    "shape",
    [(B, 1, 28, 28), (B, 1, 64, 64), (B, 1, 32, 31), (1, 32, 32), (B, 3, 32, 32)],
)
def test_bad_input_raises_value_error(shape: tuple[int, ...]) -> None:
    ae = PaperAutoencoder(in_channels=1)
    with pytest.raises(ValueError) as info:
        ae(torch.rand(*shape))
    assert isinstance(info.value, DataError)  # the UI shows DataError messages


def test_bad_latent_raises_value_error() -> None:
    with pytest.raises(ValueError, match="latent"):
        PaperDecoder(latent_dim=L)(torch.rand(B, L + 1))


def test_backward_reaches_every_parameter() -> None:
    ae = PaperAutoencoder(in_channels=3)
    x = torch.rand(B, 3, 32, 32)
    _, x_hat = ae(x)
    nn.functional.mse_loss(x_hat, x).backward()
    for name, p in ae.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert float(p.grad.abs().sum()) > 0, name


def test_forward_features_keep_the_graph() -> None:
    """GradCAM needs gradients w.r.t. the conv maps: they must stay in the graph."""
    enc = PaperEncoder()
    f = enc.forward_features(torch.rand(B, 1, 32, 32))
    f["conv4"].retain_grad()
    f["latent"].sum().backward()
    assert f["conv4"].grad is not None and f["conv4"].grad.shape == f["conv4"].shape


def test_conv_layers_listing() -> None:
    enc = PaperEncoder(in_channels=3)
    layers = enc.conv_layers()
    assert [n for n, _, _ in layers] == ["conv1", "conv2", "conv3", "conv4", "conv5", "conv6"]
    feats = enc.forward_features(torch.rand(B, 3, 32, 32))
    for name, module, size in layers:
        assert isinstance(module, nn.Conv2d)
        assert feats[name].shape[-1] == feats[name].shape[-2] == size, name


def test_conv_weights_are_only_kernels() -> None:
    ae = PaperAutoencoder()
    ws = conv_weights(ae)
    # 6 encoder convs + 5 transposed convs + conv12.
    assert len(ws) == 12
    kernel_ids = {id(m.weight) for m in ae.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))}
    assert {id(w) for w in ws} == kernel_ids
    assert all(w.dim() == 4 for w in ws)  # biases and BN parameters are 1-D
    bn_ids = {id(p) for m in ae.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    bias_ids = {id(m.bias) for m in ae.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))}
    assert not ({id(w) for w in ws} & (bn_ids | bias_ids))
    assert [id(w) for w in ae.conv_weights()] == [id(w) for w in ws]


def test_registry() -> None:
    assert NETS["paper_ae"] is PaperAutoencoder
    ae = build_net("paper_ae", in_channels=3, latent_dim=32)
    assert isinstance(ae, PaperAutoencoder) and ae.latent_dim == 32 and ae.in_channels == 3
    with pytest.raises(ValueError, match="paper_ae"):
        build_net("no_such_net")
