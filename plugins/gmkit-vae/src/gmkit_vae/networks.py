r"""Encoder and decoder networks: MLP or convolutional, chosen from the data shape.

- :class:`GaussianEncoder`: :math:`q_\phi(z \mid x, y) = \mathcal N(\mu_\phi, \mathrm{diag}\,\sigma^2_\phi)`,
  the network predicting :math:`\mu` and :math:`\log\sigma^2`; ``x`` ``(B, *shape)`` -> a
  :class:`~gmkit_core.distributions.Normal` with ``loc`` ``(B, D)``.
- :class:`ObservationDecoder`: :math:`p_\theta(x \mid z, y)`; ``z`` ``(B, D)`` -> raw parameters
  ``(B, *shape, P)`` -> a core observation head (:mod:`gmkit_core.heads`) -> a distribution over ``(B, *shape)``.

Both read an optional label ``y`` ``(B,)`` as a one-hot vector concatenated to the
fully connected input (conditional VAE, Sohn et al. 2015). Images enter the encoder
as bin centres in ``[-1, 1]``.

The ``conv`` torso halves the image twice with stride-2 convolutions (so ``H`` and
``W`` must be multiples of 4); ``auto`` uses it for images of at least 16x16 and an
MLP otherwise. ``spatial`` uses the same torso and its mirror without the fully connected
layers: the latent is a map of ``D / (H/4 * W/4)`` channels at ``H/4 x W/4``, produced by a
3x3 convolution of the torso's features (mean and log-variance per position and channel) and
read by a 3x3 convolution in the decoder. It is handed around flattened, ``(B, D)`` in
channel-major order, so priors, bounds and the KL see an ordinary ``D``-vector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gmkit_core.data import DataSpec
from gmkit_core.distributions import Normal, to_unit_interval
from gmkit_core.errors import ConfigError
from gmkit_core.heads import Head
from gmkit_core.interfaces import Decoder, Encoder

__all__ = ["ACTIVATIONS", "NETWORKS", "GaussianEncoder", "ObservationDecoder", "choose_network", "mlp"]

NETWORKS = ("auto", "mlp", "conv", "spatial")
ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


def mlp(sizes: list[int], activation: str = "elu", dropout: float = 0.0) -> nn.Sequential:
    """``Linear -> act -> dropout`` for every hidden layer, a plain ``Linear`` last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def choose_network(spec: DataSpec, name: str) -> str:
    """``auto`` -> ``conv`` for images of at least 16x16 (sides multiples of 4), else ``mlp``."""
    if name not in NETWORKS:
        raise ConfigError(f"unknown network '{name}'; choices: {', '.join(NETWORKS)}")
    convolvable = spec.is_image and len(spec.shape) == 3 and all(s % 4 == 0 for s in spec.shape[1:])
    if name in ("conv", "spatial") and not convolvable:
        raise ConfigError(
            f"network '{name}' needs images with height and width multiples of 4, "
            f"{spec.name} has shape {spec.shape}; use network=mlp"
        )
    if name == "auto":
        return "conv" if convolvable and min(spec.shape[1:]) >= 16 else "mlp"
    return name


def _one_hot(condition: Tensor | None, classes: int, like: Tensor) -> Tensor | None:
    if not classes:
        return None
    if condition is None:
        raise ValueError("this model is conditional: pass the labels as condition")
    return F.one_hot(condition.long(), classes).to(like.dtype)


def _join(h: Tensor, onehot: Tensor | None) -> Tensor:
    return h if onehot is None else torch.cat([h, onehot], dim=-1)


def _join_planes(h: Tensor, onehot: Tensor | None) -> Tensor:
    """``(B, C, H, W)`` and one-hot ``(B, K)`` -> ``(B, C + K, H, W)`` (the label as constant planes)."""
    if onehot is None:
        return h
    return torch.cat([h, onehot[:, :, None, None].expand(-1, -1, *h.shape[2:])], dim=1)


def latent_grid(spec: DataSpec, latent_dim: int) -> tuple[int, int, int]:
    """The ``spatial`` latent map ``(latent_dim / (H/4 * W/4), H/4, W/4)``; a ConfigError if it does not divide."""
    h, w = spec.shape[1] // 4, spec.shape[2] // 4
    if latent_dim % (h * w):
        raise ConfigError(
            f"network 'spatial' needs latent_dim a multiple of {h * w} (a {h}x{w} latent map for "
            f"{spec.name}'s shape {spec.shape}), got {latent_dim}"
        )
    return latent_dim // (h * w), h, w


class _ConvTorso(nn.Sequential):
    """``(B, C, H, W)`` -> ``(B, 2c * H/4 * W/4)`` (``(B, 2c, H/4, W/4)`` unless ``flatten``): one 3x3 conv
    and two stride-2 4x4 convs."""

    def __init__(self, in_channels: int, c: int, activation: str, flatten: bool = True):
        act = ACTIVATIONS[activation]
        super().__init__(
            nn.Conv2d(in_channels, c, 3, padding=1),
            act(),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),
            act(),  # (B, 2c, H/2, W/2)
            nn.Conv2d(2 * c, 2 * c, 4, stride=2, padding=1),
            act(),  # (B, 2c, H/4, W/4)
            *([nn.Flatten()] if flatten else []),
        )


class _ConvHead(nn.Module):
    """``(B, 2c * H/4 * W/4)`` -> ``(B, C, H, W, P)``: the mirror of :class:`_ConvTorso`."""

    def __init__(self, shape: tuple[int, ...], c: int, params: int, activation: str):
        super().__init__()
        channels, h, w = shape
        act = ACTIVATIONS[activation]
        self.grid, self.channels, self.params = (2 * c, h // 4, w // 4), channels, params
        self.body = nn.Sequential(
            act(),
            nn.ConvTranspose2d(2 * c, 2 * c, 4, stride=2, padding=1),
            act(),  # (B, 2c, H/2, W/2)
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1),
            act(),  # (B, c, H, W)
            nn.Conv2d(c, channels * params, 3, padding=1),  # (B, C*P, H, W)
        )

    def forward(self, h: Tensor) -> Tensor:
        out = self.body(h.view(h.shape[0], *self.grid))
        b, _, height, width = out.shape
        return out.view(b, self.channels, self.params, height, width).permute(0, 1, 3, 4, 2)  # (B, C, H, W, P)


class GaussianEncoder(Encoder):
    r""":math:`x, y \mapsto q(z \mid x, y) = \mathcal N(\mu, \mathrm{diag}\exp(\log\sigma^2))`, ``loc`` ``(B, D)``."""

    def __init__(
        self,
        spec: DataSpec,
        latent_dim: int,
        *,
        network: str = "mlp",
        hidden: tuple[int, ...] = (256,),
        channels: int = 32,
        activation: str = "elu",
        dropout: float = 0.0,
        classes: int = 0,
    ):
        super().__init__()
        self.spec, self.classes, self.spatial = spec, classes, network == "spatial"
        self.head: nn.Module
        if self.spatial:
            z_channels = latent_grid(spec, latent_dim)[0]
            self.torso: nn.Module = _ConvTorso(spec.shape[0], channels, activation, flatten=False)
            self.head = nn.Conv2d(2 * channels + classes, 2 * z_channels, 3, padding=1)  # (B, 2c_z, H/4, W/4)
            return
        if network == "conv":
            self.torso = _ConvTorso(spec.shape[0], channels, activation)
            features = 2 * channels * (spec.shape[1] // 4) * (spec.shape[2] // 4)
        else:
            self.torso, features = nn.Flatten(), spec.dims
        self.head = mlp([features + classes, *hidden, 2 * latent_dim], activation, dropout)

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Normal:
        h = to_unit_interval(x, self.spec.levels or 0) if self.spec.is_image else x
        h = self.torso(h.to(next(self.head.parameters()).dtype))  # (B, F) or (B, 2c, H/4, W/4)
        onehot = _one_hot(condition, self.classes, h)
        if self.spatial:
            loc, logvar = self.head(_join_planes(h, onehot)).flatten(1).chunk(2, dim=-1)  # (B, D) each
            # chunk of the flattened (B, 2c_z * H/4 * W/4): the first c_z channels are the means
        else:
            loc, logvar = self.head(_join(h, onehot)).chunk(2, dim=-1)  # (B, D) each
        return Normal.from_logvar(loc, logvar, event_dims=1)


class ObservationDecoder(Decoder):
    r""":math:`z, y \mapsto p(x \mid z, y)`: ``z`` ``(B, D)`` -> raw parameters ``(B, *shape, P)`` -> distribution."""

    def __init__(
        self,
        spec: DataSpec,
        latent_dim: int,
        observation: Head,
        *,
        network: str = "mlp",
        hidden: tuple[int, ...] = (256,),
        channels: int = 32,
        activation: str = "elu",
        dropout: float = 0.0,
        classes: int = 0,
    ):
        super().__init__()
        self.spec, self.classes, self.observation = spec, classes, observation
        self.grid: tuple[int, int, int] | None = None
        sizes = [latent_dim + classes, *reversed(hidden)]
        if network == "spatial":
            self.grid = latent_grid(spec, latent_dim)
            self.body = nn.Sequential(
                nn.Conv2d(self.grid[0] + classes, 2 * channels, 3, padding=1),  # (B, 2c, H/4, W/4)
                nn.Flatten(),
                _ConvHead(spec.shape, channels, observation.params, activation),
            )
        elif network == "conv":
            grid = 2 * channels * (spec.shape[1] // 4) * (spec.shape[2] // 4)
            self.body = nn.Sequential(
                mlp([*sizes, grid], activation, dropout),
                _ConvHead(spec.shape, channels, observation.params, activation),
            )
        else:
            self.body = nn.Sequential(
                mlp([*sizes, spec.dims * observation.params], activation, dropout),
                nn.Unflatten(1, (*spec.shape, observation.params)),
            )

    def raw(self, z: Tensor, condition: Tensor | None = None) -> Tensor:
        """Raw observation parameters ``(B, *shape, P)``."""
        onehot = _one_hot(condition, self.classes, z)
        if self.grid is not None:
            return self.body(_join_planes(z.view(z.shape[0], *self.grid), onehot))
        return self.body(_join(z, onehot))

    def forward(self, z: Tensor, condition: Tensor | None = None):
        return self.observation(self.raw(z, condition))
