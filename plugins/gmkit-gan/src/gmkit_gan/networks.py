r"""Generators and discriminators: DCGAN-style convolutions for images, MLPs for vectors.

Generators map :math:`z \in \mathbb R^{d}` (and a label ``y``) to data in the
model's space: images in :math:`[-1, 1]` through ``tanh``, vectors unbounded.
Label-conditional generators use conditional batch norm in the conv network,
:math:`\mathrm{BN}(h)\,(1 + \gamma_y) + \beta_y` with :math:`\gamma_y, \beta_y`
learned per class and initialised at 0 (de Vries et al. 2017,
arXiv:1707.00683), and a label embedding concatenated to ``z`` in the MLP.

Discriminators end in a shared head on features :math:`h = \phi(x)`:
:math:`D(x, y) = \psi(h) + \langle E_y, h\rangle`, the projection
discriminator of Miyato & Koyama (2018, arXiv:1802.05637) (no projection when
unconditional). No normalisation layers in the discriminator, so gradient
penalties see per-example gradients; spectral normalisation (Miyato et al.
2018, arXiv:1802.05957; torch's power-iteration parametrisation, one
iteration per forward in training mode) can wrap each of its layers.

Conv layout (Radford et al. 2016, arXiv:1511.06434): an image of side ``H``
is halved ``k`` times while both sides stay even and at least 4 (8x8: k=1,
32x32: k=3, 28x28: k=2); channels double at each halving from ``channels``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from gmkit_core.data import DataSpec

__all__ = [
    "halvings",
    "MLPGenerator",
    "ConvGenerator",
    "Discriminator",
    "mlp_trunk",
    "conv_trunk",
    "ConditionalBatchNorm2d",
    "apply_spectral_norm",
]


def halvings(height: int, width: int, most: int = 4) -> int:
    """How many times both sides can be halved while even and at least 4 after halving (at most ``most``)."""
    k = 0
    while k < most and height % 2 == 0 and width % 2 == 0 and height // 2 >= 4 and width // 2 >= 4:
        height, width, k = height // 2, width // 2, k + 1
    return k


class ConditionalBatchNorm2d(nn.Module):
    r""":math:`\mathrm{BN}(h)\,(1 + \gamma_y) + \beta_y` (``y`` None: plain affine batch norm); ``h`` ``(B, C, H, W)``."""

    def __init__(self, channels: int, num_classes: int = 0):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=num_classes == 0)
        self.gain = nn.Embedding(num_classes, channels) if num_classes else None
        self.bias = nn.Embedding(num_classes, channels) if num_classes else None
        if self.gain is not None and self.bias is not None:
            nn.init.zeros_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, h: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.norm(h)
        if self.gain is None or self.bias is None:
            return h
        assert y is not None, "a conditional batch norm needs labels"  # internal: the model always passes them
        return h * (1 + self.gain(y)[:, :, None, None]) + self.bias(y)[:, :, None, None]


class MLPGenerator(nn.Module):
    """``(z (B, d), y (B,) | None) -> (B, *shape)``: ReLU MLP; ``tanh`` output for images."""

    def __init__(self, spec: DataSpec, latent_dim: int, hidden: tuple[int, ...], num_classes: int = 0):
        super().__init__()
        self.shape = tuple(spec.shape)
        self.embed = nn.Embedding(num_classes, latent_dim) if num_classes else None
        layers: list[nn.Module] = []
        width = latent_dim * (2 if num_classes else 1)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, spec.dims))
        if spec.is_image:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            assert y is not None, "a conditional generator needs labels"  # internal
            z = torch.cat([z, self.embed(y)], dim=1)  # (B, 2d)
        return self.net(z).view(-1, *self.shape)  # (B, *shape)


class ConvGenerator(nn.Module):
    """``(z (B, d), y) -> (B, C, H, W)`` in ``[-1, 1]``: linear to the smallest grid, then k x (upsample, 2 convs)."""

    def __init__(self, spec: DataSpec, latent_dim: int, channels: int, num_classes: int = 0):
        super().__init__()
        c, h, w = spec.shape
        k = halvings(h, w)
        self.base = (channels * 2**k, h >> k, w >> k)
        self.project = nn.Linear(latent_dim, self.base[0] * self.base[1] * self.base[2])
        self.norm0 = ConditionalBatchNorm2d(self.base[0], num_classes)
        ups, norms = [], []
        width = self.base[0]
        for _ in range(k):
            ups.append(nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1))  # doubles each side
            width //= 2
            norms.append(ConditionalBatchNorm2d(width, num_classes))
        self.ups, self.norms = nn.ModuleList(ups), nn.ModuleList(norms)
        self.refine = nn.Conv2d(width, width, 3, padding=1)
        self.norm_out = ConditionalBatchNorm2d(width, num_classes)
        self.out = nn.Conv2d(width, c, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.project(z).view(-1, *self.base)  # (B, C0, H/2^k, W/2^k)
        h = self.act(self.norm0(h, y))
        for up, norm in zip(self.ups, self.norms, strict=True):
            h = self.act(norm(up(h), y))  # sides doubled, channels halved
        h = self.act(self.norm_out(self.refine(h), y))  # (B, channels, H, W)
        return torch.tanh(self.out(h))  # (B, C, H, W)


def mlp_trunk(spec: DataSpec, hidden: tuple[int, ...]) -> tuple[nn.Module, int]:
    """``x (B, *shape) -> h (B, hidden[-1])``: LeakyReLU(0.2) MLP on the flattened input, and its width."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = spec.dims
    for h in hidden:
        layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
        width = h
    return nn.Sequential(*layers), width


def conv_trunk(spec: DataSpec, channels: int, features: int) -> tuple[nn.Module, int]:
    """``x (B, C, H, W) -> h (B, features)``: a 3x3 conv, k strided 4x4 convs (channels doubling), a linear layer."""
    c, height, width = spec.shape
    k = halvings(height, width)
    layers: list[nn.Module] = [nn.Conv2d(c, channels, 3, padding=1), nn.LeakyReLU(0.2)]
    ch = channels
    for _ in range(k):
        layers += [nn.Conv2d(ch, ch * 2, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]  # sides halved
        ch *= 2
    layers += [nn.Flatten(), nn.Linear(ch * (height >> k) * (width >> k), features), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers), features


class Discriminator(nn.Module):
    r"""``(x (B, *shape), y (B,) | None) -> (B,)``: :math:`\psi(\phi(x)) + \langle E_y, \phi(x)\rangle`."""

    def __init__(self, trunk: nn.Module, features: int, num_classes: int = 0):
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(features, 1)
        self.embed = nn.Embedding(num_classes, features) if num_classes else None

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.trunk(x)  # (B, F)
        out = self.head(h).squeeze(1)  # (B,)
        if self.embed is not None:
            assert y is not None, "a projection discriminator needs labels"  # internal
            out = out + (self.embed(y) * h).sum(1)
        return out


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Wrap the weight of every Linear, Conv and Embedding layer of ``module`` in spectral normalisation."""
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Linear, nn.Conv2d, nn.Embedding)):
            setattr(module, name, spectral_norm(child))
        else:
            apply_spectral_norm(child)
    return module
