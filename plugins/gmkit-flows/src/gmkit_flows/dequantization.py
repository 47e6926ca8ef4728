r"""Dequantisation: from integer images to a density bound on the discrete data.

For levels ``x`` in :math:`\{0..L-1\}^D` and noise :math:`u \in [0,1)^D` drawn from
:math:`q(u \mid x)`, the flow scores :math:`y = (x + u)/L \in [0, 1)^D`. Jensen gives

.. math::
    -\log P(x) \le \mathbb E_{q(u\mid x)}\big[-\log p(y) + \log q(u \mid x)\big] + D \log L,

and with ``K`` draws the importance-weighted estimate
:math:`-\log \frac1K \sum_k p(y_k)/q(u_k\mid x) + D\log L` is an upper bound in
expectation that tightens as ``K`` grows (Burda et al., 2015, arXiv:1509.00519).

- uniform: :math:`q = U[0,1)^D`, :math:`\log q = 0` (Theis et al., 2016, arXiv:1511.01844;
  :func:`gmkit_core.distributions.dequantize`);
- variational: :class:`LogitNormalDequantizer`, a learned conditional flow
  :math:`u = \sigma(\mu(x) + e^{s(x)} \epsilon)`, :math:`\epsilon \sim \mathcal N(0, I)`
  (Ho et al., Flow++, 2019, arXiv:1902.00275, sec. 3.1, with a one-layer flow).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gmkit_core.distributions import LOG_2PI, to_unit_interval

from .nets import ConvNet

__all__ = ["LogitNormalDequantizer", "uniform_noise"]


def uniform_noise(
    x: Tensor, generator: torch.Generator | None = None, dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor]:
    """``u ~ U[0,1)`` shaped like ``x`` and ``log q(u) = 0`` per example."""
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=dtype or torch.get_default_dtype())
    return u, u.new_zeros(x.shape[0])


class LogitNormalDequantizer(nn.Module):
    r""":math:`q(u \mid x)`: :math:`v = \mu(x) + e^{s(x)}\epsilon`, :math:`u = \sigma(v)`.

    .. math::
        \log q(u \mid x) = \sum_i \log\mathcal N(\epsilon_i; 0, 1) - s_i(x)
                           - \log\sigma(v_i) - \log\sigma(-v_i).

    ``x``: ``(B, C, H, W)`` integer levels; a residual CNN of the scaled image
    gives :math:`(\mu, s)`, zero-initialised (so :math:`q` starts logit-normal).
    """

    def __init__(self, shape: tuple[int, int, int], levels: int, hidden: int = 32, blocks: int = 2):
        super().__init__()
        self.levels = levels
        self.net = ConvNet(shape[0], shape[0], 2, hidden, blocks)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(u, log q(u|x))``: ``(B, C, H, W)`` noise in (0, 1) and ``(B,)`` nats."""
        # ConvNet.net opens with its input convolution (see nets.ConvNet)
        dtype = cast(nn.Conv2d, self.net.net[0]).weight.dtype
        theta = self.net(to_unit_interval(x, self.levels).to(dtype))  # (B, C, H, W, 2)
        mu, s = theta[..., 0], theta[..., 1].clamp(-8, 4)
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=mu.dtype)
        v = mu + torch.exp(s) * eps
        u = torch.sigmoid(v).clamp(1e-6, 1 - 1e-6)
        log_q = -0.5 * (eps.square() + LOG_2PI) - s - F.logsigmoid(v) - F.logsigmoid(-v)
        return u, log_q.flatten(1).sum(1)
