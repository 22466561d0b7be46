"""Convolutional autoencoder of Schlachter et al. (2019), appendix Tables 2 and 3.

Reference: P. Schlachter, Y. Liao, B. Yang, "One-Class Feature Learning Using
Intra-Class Splitting" (2019), Section 3.6, appendix A.1 (Table 2, encoder) and
A.2 (Table 3, decoder). The paper's model is Keras (channels-last); this is a
PyTorch port working channels-first on ``N x C x 32 x 32`` images in ``[0, 1]``.

Shapes for a 32x32 input (channels-first, batch omitted)::

    encoder                                decoder
    conv1 3x3 same   32x32x32 ReLU         latent (L,) -> L x 1 x 1 -> BN6
    MP1 2x2          32x16x16 -> BN1       convT7 s2   256x2x2   ReLU -> BN7
    conv2 3x3 d2     64x12x12 ReLU -> BN2  convT8 s2   128x4x4   ReLU -> BN8
    conv3 3x3 d2     64x8x8   ReLU -> BN3  convT9 s2    64x8x8   ReLU -> BN9
    conv4 3x3 d2    128x4x4   ReLU -> BN4  convT10 s2   64x16x16 ReLU (no BN)
    conv5 3x3 valid 256x2x2   ReLU         UPS x8(ReLU7), x4(ReLU8), x2(ReLU9)
    MP5 2x2         256x1x1                concat10   512x16x16
    AP(ReLU2,3,4) 64+64+128 x1x1           convT11 s2   32x32x32 ReLU -> BN11
    concat5         512x1x1                conv12 3x3 same  C x32x32 -> Sigmoid
    conv6 1x1         L x1x1 -> Sigmoid -> reshape (L,)

Choices and deviations (the tables leave these open or the port forces them):

* The skip branches follow the tables literally: the average poolings of the
  encoder take the ReLU2/3/4 outputs (before BN) and the decoder up-samples the
  ReLU7/8/9 outputs (before BN). Conv5 has no BN (Table 2 lists none, although
  Section 3.6 says "each of the first five convolutional layers is followed by
  a batch-normalization layer"); ReLU10 has no BN either (Table 3).
* Up-sampling factors are 8, 4, 2 as in Table 3 (appendix A.2's prose says "a
  scale of two", which would not give the listed 16x16 shapes). Nearest
  neighbour, like Keras ``UpSampling2D``'s default.
* Keras ``padding="same"`` for a stride-2 3x3 transposed conv doubles the size;
  here ``ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1)``. TF crops
  the extra row/column of the full transposed output at the end, torch crops
  one at the start, so the two are shifted by one pixel; this changes alignment
  only, not capacity, and training learns around it.
* Conv12's kernel is 3x3 with "same" padding (the table gives no kernel size;
  appendix A.2 says every layer uses 3x3 kernels).
* Keras defaults are reproduced so training behaves as the paper's code would:
  ``BatchNormalization(momentum=0.99, epsilon=1e-3)`` is torch
  ``momentum=0.01, eps=1e-3`` (torch's momentum weights the *new* batch);
  conv/convT kernels use ``glorot_uniform`` (``xavier_uniform_``) and biases are
  zero (torch's default would be Kaiming-uniform kernels and random biases).
* The paper's L2 regularisation (1e-6 on every conv kernel) is a loss term, so
  it lives in the training engine, not here; :func:`conv_weights` returns the
  tensors it applies to (conv/convT kernels only: no biases, no BN).
* In training mode BN6 normalises each latent unit over the batch, so a batch
  of one raises in torch (Keras would silently output BN6's beta); train
  with batches of two or more, or call ``.eval()`` first.
"""
from __future__ import annotations

import torch
from torch import nn

from ocvis.errors import DataError

__all__ = [
    "IMAGE_SIZE",
    "PaperEncoder",
    "PaperDecoder",
    "PaperAutoencoder",
    "conv_weights",
    "keras_init_",
]

#: The tables hard-code every spatial size (dilated valid convs, 12/8/4 pooling
#: windows, x8/x4/x2 up-sampling), so the net only works on 32x32 inputs.
IMAGE_SIZE = 32

# Keras BatchNormalization defaults, translated to torch's conventions.
_BN_MOMENTUM = 0.01  # Keras momentum=0.99 (weight of the old running stat)
_BN_EPS = 1e-3


def _bn(channels: int) -> nn.BatchNorm2d:
    """Batch norm with Keras' default momentum and epsilon."""
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


def _upconv(in_ch: int, out_ch: int) -> nn.ConvTranspose2d:
    """3x3 stride-2 transposed conv that doubles H and W (Keras 'same')."""
    return nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1)


def keras_init_(module: nn.Module) -> None:
    """Re-initialise every conv/convT in ``module`` like Keras: Glorot-uniform kernels, zero biases.

    BN layers keep torch's defaults (gamma=1, beta=0), which equal Keras'.
    """
    for m in module.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def conv_weights(module: nn.Module) -> list[nn.Parameter]:
    """Kernels of every (transposed) convolution in ``module``: the tensors the paper L2-regularises.

    Biases and batch-norm parameters are excluded on purpose (the paper's Keras
    code regularises conv kernels only).
    """
    return [m.weight for m in module.modules() if isinstance(m, nn.modules.conv._ConvNd)]


def _check_image(x: torch.Tensor, channels: int) -> None:
    """Raise a readable error for anything that is not an ``N x channels x 32 x 32`` batch."""
    if x.dim() != 4:
        raise DataError(
            f"PaperEncoder expects a 4-D batch N x C x 32 x 32, got a tensor of shape {tuple(x.shape)}"
        )
    _, c, h, w = x.shape
    if (h, w) != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(
            f"The paper autoencoder needs {IMAGE_SIZE}x{IMAGE_SIZE} images (its layer sizes are "
            f"fixed by Tables 2/3 of Schlachter et al. 2019), got {h}x{w}; resize the images first"
        )
    if c != channels:
        raise DataError(
            f"PaperEncoder was built for {channels} input channel(s), got {c} (shape {tuple(x.shape)})"
        )


class PaperEncoder(nn.Module):
    """Encoder of Table 2: ``N x C x 32 x 32`` -> latent ``N x latent_dim`` in (0, 1)."""

    def __init__(self, in_channels: int = 1, latent_dim: int = 64) -> None:
        super().__init__()
        if in_channels < 1 or latent_dim < 1:
            raise ValueError(f"in_channels and latent_dim must be >= 1, got {in_channels}, {latent_dim}")
        self.in_channels = in_channels
        self.latent_dim = latent_dim

        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)  # 'same'
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.bn1 = _bn(32)
        # Dilation 2, valid padding: effective 5x5 kernel, so each shrinks H, W by 4.
        self.conv2 = nn.Conv2d(32, 64, 3, dilation=2)
        self.relu2 = nn.ReLU()
        self.bn2 = _bn(64)
        self.conv3 = nn.Conv2d(64, 64, 3, dilation=2)
        self.relu3 = nn.ReLU()
        self.bn3 = _bn(64)
        self.conv4 = nn.Conv2d(64, 128, 3, dilation=2)
        self.relu4 = nn.ReLU()
        self.bn4 = _bn(128)
        self.conv5 = nn.Conv2d(128, 256, 3)  # valid
        self.relu5 = nn.ReLU()
        self.pool5 = nn.MaxPool2d(2)
        # Global average pools over the whole ReLU2/3/4 maps (windows 12, 8, 4).
        self.ap2 = nn.AvgPool2d(12)
        self.ap3 = nn.AvgPool2d(8)
        self.ap4 = nn.AvgPool2d(4)
        # 1x1 conv on the 64 + 64 + 128 + 256 = 512 concatenated features acts as the dense layer.
        self.conv6 = nn.Conv2d(512, latent_dim, 1)
        self.sigmoid6 = nn.Sigmoid()
        keras_init_(self)

    def conv_layers(self) -> list[tuple[str, nn.Module, int]]:
        """``(name, conv module, output H = W for a 32x32 input)`` for conv1..conv6, input to output.

        The modules' outputs are pre-activation; :meth:`forward_features` gives
        the post-ReLU maps under the same names (what GradCAM usually wants).
        """
        return [
            ("conv1", self.conv1, 32),
            ("conv2", self.conv2, 12),
            ("conv3", self.conv3, 8),
            ("conv4", self.conv4, 4),
            ("conv5", self.conv5, 2),
            ("conv6", self.conv6, 1),
        ]

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every intermediate map of Table 2, keyed by name, in forward order.

        ``conv1``..``conv5`` are post-ReLU maps, ``bnK`` the BN outputs,
        ``ap2``/``ap3``/``ap4`` the skip pools, ``conv6`` the pre-sigmoid 1x1 map,
        ``latent`` the final ``N x L`` code. Tensors stay in the autograd graph,
        so callers can ``retain_grad()`` them (GradCAM).
        """
        _check_image(x, self.in_channels)
        f: dict[str, torch.Tensor] = {}
        f["conv1"] = self.relu1(self.conv1(x))
        f["pool1"] = self.pool1(f["conv1"])
        f["bn1"] = self.bn1(f["pool1"])
        f["conv2"] = self.relu2(self.conv2(f["bn1"]))
        f["bn2"] = self.bn2(f["conv2"])
        f["conv3"] = self.relu3(self.conv3(f["bn2"]))
        f["bn3"] = self.bn3(f["conv3"])
        f["conv4"] = self.relu4(self.conv4(f["bn3"]))
        f["bn4"] = self.bn4(f["conv4"])
        f["conv5"] = self.relu5(self.conv5(f["bn4"]))
        f["pool5"] = self.pool5(f["conv5"])
        # Table 2 pools the ReLU outputs, not the BN outputs.
        f["ap2"] = self.ap2(f["conv2"])
        f["ap3"] = self.ap3(f["conv3"])
        f["ap4"] = self.ap4(f["conv4"])
        f["concat5"] = torch.cat([f["ap2"], f["ap3"], f["ap4"], f["pool5"]], dim=1)
        f["conv6"] = self.conv6(f["concat5"])
        f["sigmoid6"] = self.sigmoid6(f["conv6"])
        f["latent"] = f["sigmoid6"].flatten(1)
        return f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Latent code ``N x latent_dim``, each unit in (0, 1)."""
        return self.forward_features(x)["latent"]


class PaperDecoder(nn.Module):
    """Decoder of Table 3: latent ``N x latent_dim`` -> reconstruction ``N x C x 32 x 32`` in (0, 1)."""

    def __init__(self, out_channels: int = 1, latent_dim: int = 64) -> None:
        super().__init__()
        if out_channels < 1 or latent_dim < 1:
            raise ValueError(f"out_channels and latent_dim must be >= 1, got {out_channels}, {latent_dim}")
        self.out_channels = out_channels
        self.latent_dim = latent_dim

        self.bn6 = _bn(latent_dim)
        self.convt7 = _upconv(latent_dim, 256)
        self.relu7 = nn.ReLU()
        self.bn7 = _bn(256)
        self.convt8 = _upconv(256, 128)
        self.relu8 = nn.ReLU()
        self.bn8 = _bn(128)
        self.convt9 = _upconv(128, 64)
        self.relu9 = nn.ReLU()
        self.bn9 = _bn(64)
        self.convt10 = _upconv(64, 64)
        self.relu10 = nn.ReLU()
        # Nearest up-sampling (Keras UpSampling2D default) of ReLU7/8/9 to 16x16.
        self.ups7 = nn.Upsample(scale_factor=8, mode="nearest")
        self.ups8 = nn.Upsample(scale_factor=4, mode="nearest")
        self.ups9 = nn.Upsample(scale_factor=2, mode="nearest")
        self.convt11 = _upconv(256 + 128 + 64 + 64, 32)
        self.relu11 = nn.ReLU()
        self.bn11 = _bn(32)
        self.conv12 = nn.Conv2d(32, out_channels, 3, padding=1)  # 'same'
        self.sigmoid12 = nn.Sigmoid()
        keras_init_(self)

    def forward_features(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every intermediate map of Table 3, keyed by name; ``"output"`` is the reconstruction."""
        if z.dim() == 2:
            z = z[:, :, None, None]  # Table 3: "reshape to tensor"
        if z.dim() != 4 or tuple(z.shape[1:]) != (self.latent_dim, 1, 1):
            raise DataError(
                f"PaperDecoder expects a latent of shape N x {self.latent_dim} "
                f"(or N x {self.latent_dim} x 1 x 1), got {tuple(z.shape)}"
            )
        f: dict[str, torch.Tensor] = {}
        f["bn6"] = self.bn6(z)
        f["convt7"] = self.relu7(self.convt7(f["bn6"]))
        f["bn7"] = self.bn7(f["convt7"])
        f["convt8"] = self.relu8(self.convt8(f["bn7"]))
        f["bn8"] = self.bn8(f["convt8"])
        f["convt9"] = self.relu9(self.convt9(f["bn8"]))
        f["bn9"] = self.bn9(f["convt9"])
        f["convt10"] = self.relu10(self.convt10(f["bn9"]))
        # Table 3 up-samples the ReLU outputs, not the BN outputs.
        f["ups7"] = self.ups7(f["convt7"])
        f["ups8"] = self.ups8(f["convt8"])
        f["ups9"] = self.ups9(f["convt9"])
        f["concat10"] = torch.cat([f["ups7"], f["ups8"], f["ups9"], f["convt10"]], dim=1)
        f["convt11"] = self.relu11(self.convt11(f["concat10"]))
        f["bn11"] = self.bn11(f["convt11"])
        f["conv12"] = self.conv12(f["bn11"])
        f["output"] = self.sigmoid12(f["conv12"])
        return f

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``N x out_channels x 32 x 32``, each pixel in (0, 1)."""
        return self.forward_features(z)["output"]


class PaperAutoencoder(nn.Module):
    """Encoder (Table 2) + decoder (Table 3); ``forward`` returns ``(z, x_hat)``."""

    def __init__(self, in_channels: int = 1, latent_dim: int = 64) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.latent_dim = latent_dim
        self.encoder = PaperEncoder(in_channels, latent_dim)
        self.decoder = PaperDecoder(in_channels, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent ``N x L`` and reconstruction ``N x C x 32 x 32``."""
        z = self.encoder(x)
        return z, self.decoder(z)

    def conv_weights(self) -> list[nn.Parameter]:
        """Conv/convT kernels of both halves (see :func:`conv_weights`)."""
        return conv_weights(self)
