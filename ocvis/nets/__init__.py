"""Network architectures, looked up by name via :func:`build_net`.

``paper_ae`` is the autoencoder of Schlachter et al. (2019), Tables 2 and 3
(see :mod:`ocvis.nets.paper_ae`).
"""
from __future__ import annotations

from typing import Any

from torch import nn

from ocvis.nets.paper_ae import (
    IMAGE_SIZE,
    PaperAutoencoder,
    PaperDecoder,
    PaperEncoder,
    conv_weights,
    keras_init_,
)

#: Registry of buildable networks: name -> constructor.
NETS: dict[str, type[nn.Module]] = {"paper_ae": PaperAutoencoder}


def build_net(name: str, **kw: Any) -> nn.Module:
    """Instantiate the network registered as ``name`` with keyword arguments ``kw``."""
    try:
        cls = NETS[name]
    except KeyError:
        raise ValueError(f"Unknown network {name!r}; known: {', '.join(sorted(NETS))}") from None
    return cls(**kw)


__all__ = [
    "IMAGE_SIZE",
    "NETS",
    "PaperAutoencoder",
    "PaperDecoder",
    "PaperEncoder",
    "build_net",
    "conv_weights",
    "keras_init_",
]
