"""Oracle denoisers with known optimal predictions, for tests that need exact answers."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class OracleGaussian(nn.Module):
    r"""The exact eps-prediction for data :math:`x_0 \sim \mathcal N(m, s^2 I)` under a schedule.

    :math:`E[x_0 \mid x_t] = m + \frac{\sqrt{\bar\alpha}s^2}{\bar\alpha s^2 + 1 - \bar\alpha}(x_t - \sqrt{\bar\alpha}m)`;
    ``s = 0`` is the one-point data set :math:`x_0 = m`.
    """

    def __init__(self, schedule, mean: Tensor, std: float):  # noqa: ANN001
        super().__init__()
        self.schedule, self.std = schedule, std
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        abar = self.schedule.alphas_cumprod.to(x.device)[t - 1].to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        a, var = abar.sqrt(), self.std**2
        x0 = self.mean + a * var / (abar * var + 1 - abar) * (x - a * self.mean)
        return (x - a * x0) / (1 - abar).sqrt()


class Zero(nn.Module):
    """Outputs zeros of a given channel count: with prediction=levels, the exact denoiser of uniform levels."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        return x.new_zeros(x.shape[0], self.channels, *x.shape[2:]) + 0 * self.anchor


class Constant(nn.Module):
    """Outputs one value per output channel everywhere (``values``); with prediction=gauss_levels,
    ``(0,) * C + (20,) * C`` is a flat prior over the levels: the exact denoiser of uniform levels."""

    def __init__(self, values: list[float]):
        super().__init__()
        self.register_buffer("values", torch.tensor(values))
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        out = self.values.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))
        return out.expand(x.shape[0], -1, *x.shape[2:]) + 0 * self.anchor
