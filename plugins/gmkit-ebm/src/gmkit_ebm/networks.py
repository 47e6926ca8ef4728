r"""Energy networks: an MLP for vectors, a small convolutional net for images.

Both map ``x`` ``(B, *shape)`` to ``(B, out)``: ``out = 1`` is an energy
:math:`E(x)`, ``out = K`` the logits of JEM. SiLU activations keep
:math:`\nabla_x E` smooth (SGLD, score matching and MALA need it). Optional
spectral normalisation of every weight (Miyato et al., 2018, arXiv:1802.05957)
bounds the network's Lipschitz constant, a common stabiliser of EBM training.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["MLPEnergy", "ConvEnergy", "energy_network"]


def _maybe_sn(layer: nn.Module, enabled: bool) -> nn.Module:
    return spectral_norm(layer) if enabled else layer


class MLPEnergy(nn.Module):
    """``D -> hidden -> ... -> out`` with SiLU between layers; ``(B, D) -> (B, out)``."""

    def __init__(self, dim: int, out: int, hidden: int = 128, depth: int = 3, spectral: bool = False):
        super().__init__()
        sizes = [dim] + [hidden] * depth
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [_maybe_sn(nn.Linear(a, b), spectral), nn.SiLU()]
        layers.append(_maybe_sn(nn.Linear(sizes[-1], out), spectral))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))  # (B, out)


class ConvEnergy(nn.Module):
    """3x3 convolutions, halving the resolution (and doubling the width, up to 4x) until it is at most 4, then a linear head.

    ``(B, C, H, W) -> (B, out)``; ``channels`` is the first layer's width.
    """

    def __init__(self, shape: tuple[int, ...], out: int, channels: int = 32, spectral: bool = False):
        super().__init__()
        c, h, w = shape
        layers: list[nn.Module] = [_maybe_sn(nn.Conv2d(c, channels, 3, padding=1), spectral), nn.SiLU()]
        width = channels
        while max(h, w) > 4:
            wider = min(2 * width, 4 * channels)
            layers += [_maybe_sn(nn.Conv2d(width, wider, 3, stride=2, padding=1), spectral), nn.SiLU()]
            width, h, w = wider, (h + 1) // 2, (w + 1) // 2
        layers += [
            _maybe_sn(nn.Conv2d(width, width, 3, padding=1), spectral),
            nn.SiLU(),
            nn.Flatten(),
            _maybe_sn(nn.Linear(width * h * w, out), spectral),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, out)


def energy_network(
    shape: tuple[int, ...], out: int, *, image: bool, hidden: int, depth: int, channels: int, spectral: bool
) -> nn.Module:
    """The network for data of ``shape``: convolutional for images, an MLP for vectors."""
    if image:
        return ConvEnergy(shape, out, channels, spectral)
    dim = 1
    for s in shape:
        dim *= s
    return MLPEnergy(dim, out, hidden, depth, spectral)
