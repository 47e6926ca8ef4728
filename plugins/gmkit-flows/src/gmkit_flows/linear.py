r"""Linear maps along the channel (feature) axis: ActNorm, LU-parameterised
invertible 1x1 convolutions and fixed permutations.

All act on ``x`` of shape ``(B, C)`` or ``(B, C, *spatial)``, channel axis 1,
the same map at every spatial position; the log-determinant is the per-position
one times the number of positions :math:`S = \prod \text{spatial}`.

References: Kingma & Dhariwal, Glow (2018, arXiv:1807.03039), table 1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gmkit_core.errors import ConfigError
from gmkit_core.interfaces import Transform

__all__ = ["ActNorm", "InvertibleLinear", "Permutation", "permutation"]


def _positions(x: Tensor) -> int:
    return math.prod(x.shape[2:])


def _view(v: Tensor, x: Tensor) -> Tensor:
    return v.reshape(1, -1, *([1] * (x.ndim - 2)))


class ActNorm(Transform):
    r""":math:`y = (x - b)\, e^{-s}` per channel; :math:`\log|\det J| = -S \sum_c s_c`.

    Data-dependent initialisation: the first ``forward`` in training mode (or
    :meth:`initialize` on a batch) sets ``b`` and ``e^{s}`` to the per-channel
    mean and standard deviation, so the first batch leaves the layer with zero
    mean and unit variance. Whether this has happened is saved with the weights.
    """

    initialized: Tensor

    def __init__(self, channels: int):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set shift and scale from the batch ``x`` (statistics over every axis but 1)."""
        flat = x.transpose(0, 1).reshape(x.shape[1], -1)
        self.shift.copy_(flat.mean(1))
        self.log_scale.copy_(torch.log(flat.std(1, unbiased=False).clamp_min(1e-6)))
        self.initialized.fill_(True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized):
            self.initialize(x)
        y = (x - _view(self.shift, x)) * _view(torch.exp(-self.log_scale), x)
        return y, (-self.log_scale.sum() * _positions(x)).expand(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x = y * _view(torch.exp(self.log_scale), y) + _view(self.shift, y)
        return x, (self.log_scale.sum() * _positions(y)).expand(y.shape[0])


class InvertibleLinear(Transform):
    r""":math:`y = W x` per position with :math:`W = P L (U + \mathrm{diag}(\sigma\, e^{\ell}))`.

    ``P`` a fixed permutation, ``L`` unit lower triangular, ``U`` strictly upper
    triangular, :math:`\sigma` fixed signs and :math:`\ell` learned
    log-magnitudes, so :math:`\log|\det J| = S \sum_c \ell_c` costs :math:`O(C)`.
    Initialised from the QR factor of a random rotation (drawn from ``seed``),
    as in Glow's LU-decomposed 1x1 convolution. On ``(B, C)`` it is an
    invertible dense layer.
    """

    perm: Tensor
    sign: Tensor

    def __init__(self, channels: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=g, dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        diag = torch.diagonal(upper)
        dtype = torch.get_default_dtype()
        self.register_buffer("perm", p.to(dtype))
        self.register_buffer("sign", torch.sign(diag).to(dtype))
        self.lower = nn.Parameter(lower.tril(-1).to(dtype))
        self.upper = nn.Parameter(upper.triu(1).to(dtype))
        self.log_diag = nn.Parameter(torch.log(diag.abs()).to(dtype))

    def _factors(self) -> tuple[Tensor, Tensor]:
        eye = torch.eye(self.lower.shape[0], dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower.tril(-1) + eye
        upper = self.upper.triu(1) + torch.diag(self.sign * torch.exp(self.log_diag))
        return lower, upper

    def weight(self) -> Tensor:
        """The ``(C, C)`` matrix ``W``."""
        lower, upper = self._factors()
        return self.perm @ lower @ upper

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = torch.einsum("ij,bj...->bi...", self.weight(), x)
        return y, (self.log_diag.sum() * _positions(x)).expand(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        lower, upper = self._factors()
        flat = y.movedim(1, -1).reshape(-1, y.shape[1]).T  # (C, N)
        z = torch.linalg.solve_triangular(lower, self.perm.T @ flat, upper=False, unitriangular=True)
        z = torch.linalg.solve_triangular(upper, z, upper=True)
        x = z.T.reshape(*y.movedim(1, -1).shape).movedim(-1, 1)
        return x, (-self.log_diag.sum() * _positions(y)).expand(y.shape[0])


class Permutation(Transform):
    """``y[:, i] = x[:, perm[i]]`` along axis 1; volume preserving (log-det 0)."""

    perm: Tensor
    inverse_perm: Tensor

    def __init__(self, perm: Tensor):
        super().__init__()
        perm = torch.as_tensor(perm).long()
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return y[:, self.inverse_perm], y.new_zeros(y.shape[0])


def permutation(features: int, order: str = "reverse", seed: int = 0) -> Permutation:
    """A fixed permutation of ``features`` channels: ``reverse`` or ``random`` (from ``seed``)."""
    if order == "reverse":
        return Permutation(torch.arange(features - 1, -1, -1))
    if order == "random":
        return Permutation(torch.randperm(features, generator=torch.Generator().manual_seed(seed)))
    raise ConfigError(f"permutation order must be reverse or random, got '{order}'")
