r"""Noise schedules: the betas of a discrete-time Gaussian diffusion.

Each schedule only supplies :math:`\beta_{1..T}` (float64, index ``t-1`` holds
step ``t``); all the math (:math:`q(x_t \mid x_0)`, the posterior, the SNR)
lives in :class:`gmkit_core.interfaces.NoiseSchedule`.

- linear (Ho et al., 2020, arXiv:2006.11239, sec. 4):
  :math:`\beta_t = \beta_1 + \frac{t-1}{T-1}(\beta_T - \beta_1)`, default
  :math:`\beta_1 = 10^{-4}`, :math:`\beta_T = 0.02`, :math:`T = 1000`.
- cosine (Nichol & Dhariwal, 2021, arXiv:2102.09672, eq. 17):
  :math:`\bar\alpha_t = f(t)/f(0)`, :math:`f(t) = \cos^2\!\big(\frac{t/T + s}{1 + s}\frac{\pi}{2}\big)`,
  :math:`\beta_t = \min(1 - \bar\alpha_t/\bar\alpha_{t-1}, \beta_{\max})`, :math:`s = 0.008`,
  :math:`\beta_{\max} = 0.999`.
- loglinear (the fixed schedule of Kingma et al., 2021, arXiv:2107.00630, sec. 5):
  :math:`\lambda_t = \log\mathrm{SNR}(t)` evenly spaced from :math:`\lambda_1` (``logsnr_max``)
  to :math:`\lambda_T` (``logsnr_min``), :math:`\bar\alpha_t = \mathrm{sigmoid}(\lambda_t)`,
  :math:`\beta_t = 1 - \bar\alpha_t/\bar\alpha_{t-1}` (:math:`\bar\alpha_0 = 1`). The defaults 9.2 and -10
  are the end points of the linear schedule (:math:`\mathrm{SNR}(1) \approx 10^4`,
  :math:`\bar\alpha_T \approx 4\cdot10^{-5}`); spending the steps evenly in log SNR makes the
  discrete-time bound much closer to its continuous-time limit (docs/models/diffusion.md, table 1).
- custom: any user-given betas in (0, 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from gmkit_core.errors import ConfigError
from gmkit_core.interfaces import NoiseSchedule

__all__ = ["LinearSchedule", "CosineSchedule", "LogLinearSchedule", "CustomSchedule"]


def _check_T(T: int) -> int:  # noqa: N802 - the paper's symbol
    if not isinstance(T, int) or T < 1:
        raise ConfigError(f"schedule: T must be a positive integer, got {T!r}")
    return T


class LinearSchedule(NoiseSchedule):
    r"""Betas spaced evenly from ``beta_start`` (:math:`\beta_1`) to ``beta_end`` (:math:`\beta_T`)."""

    def __init__(self, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):  # noqa: N803
        T = _check_T(T)
        if not 0 < beta_start <= beta_end < 1:
            raise ConfigError(f"linear schedule: need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
        super().__init__(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))


class CosineSchedule(NoiseSchedule):
    r"""Betas from :math:`\bar\alpha_t = f(t)/f(0)`, :math:`f(t) = \cos^2((t/T + s)/(1 + s)\cdot\pi/2)`, clipped at ``max_beta``."""

    def __init__(self, T: int = 1000, s: float = 0.008, max_beta: float = 0.999):  # noqa: N803
        T = _check_T(T)
        if s <= 0 or not 0 < max_beta < 1:
            raise ConfigError(f"cosine schedule: need s > 0 and 0 < max_beta < 1, got {s}, {max_beta}")
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((steps + s) / (1 + s) * (math.pi / 2)).square()
        abar = f / f[0]
        super().__init__((1 - abar[1:] / abar[:-1]).clamp(max=max_beta))


class LogLinearSchedule(NoiseSchedule):
    r"""Log-SNR evenly spaced from ``logsnr_max`` at :math:`t = 1` to ``logsnr_min`` at :math:`t = T`."""

    def __init__(self, T: int = 1000, logsnr_max: float = 9.2, logsnr_min: float = -10.0):  # noqa: N803
        T = _check_T(T)
        if not logsnr_max > logsnr_min:
            raise ConfigError(f"loglinear schedule: need logsnr_max > logsnr_min, got {logsnr_max}, {logsnr_min}")
        abar = torch.sigmoid(torch.linspace(logsnr_max, logsnr_min, T, dtype=torch.float64))
        super().__init__(1 - abar / torch.cat([abar.new_ones(1), abar[:-1]]))


class CustomSchedule(NoiseSchedule):
    """User-given betas, one per step (length ``T``), each in (0, 1)."""

    def __init__(self, betas: Sequence[float] | torch.Tensor):
        betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
        if betas.numel() == 0 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ConfigError("custom schedule: betas must be a non-empty list of values in (0, 1)")
        super().__init__(betas)
