r"""DDPM's discrete schedule read in continuous time, for the shared samplers of :mod:`gmkit_core.solvers`.

Step :math:`k \in \{1..T\}` sits at :math:`t = k/T`; between steps the log-SNR
:math:`\lambda_k = \log(\bar\alpha_k / (1 - \bar\alpha_k))` is interpolated linearly in ``t``
(constant beyond the ends), and the path is variance preserving,
:math:`\alpha^2 = \mathrm{sigmoid}(\lambda)`, :math:`\sigma^2 = \mathrm{sigmoid}(-\lambda)`, so at every
step it is exactly DDPM's :math:`q(x_k \mid x_0)`. The denoiser is DDPM's network at the nearest
step, :func:`to_step` (for ``T = 1000`` and the log-linear schedule the nearest step is within
0.01 of the asked log-SNR). Defined on ``[1/T, 1]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gmkit_core.interfaces import NoiseSchedule
from gmkit_core.paths import LogSNRPath

__all__ = ["DDPMPath", "to_step"]


def to_step(t: Tensor, T: int) -> Tensor:  # noqa: N803 - the paper's symbol
    """Float times ``(B,)`` in ``[0, 1]`` -> the nearest int64 step in ``[1, T]``."""
    return torch.round(t.double() * T).clamp(1, T).long()


class DDPMPath(LogSNRPath):
    """The continuous-time path of a :class:`~gmkit_core.interfaces.NoiseSchedule` (see the module docstring)."""

    def __init__(self, schedule: NoiseSchedule):
        abar = schedule.alphas_cumprod.double()
        self.lam = torch.log(abar) - torch.log1p(-abar)  # (T,) log-SNR of steps 1..T
        self.T = schedule.T
        super().__init__(self._interpolate, t_min=1.0 / self.T, t_max=1.0)

    def _interpolate(self, t: Tensor) -> Tensor:
        lam = self.lam.to(device=t.device, dtype=t.dtype)
        s = (t * self.T).clamp(1, self.T) - 1  # 0-based fractional step
        lo = s.detach().floor().clamp(max=self.T - 2).long()
        frac = s - lo.to(s.dtype)
        return lam[lo] * (1 - frac) + lam[lo + 1] * frac
