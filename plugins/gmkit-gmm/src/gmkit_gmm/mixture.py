r"""A Gaussian mixture density over :math:`\mathbb R^D`, as a torch module.

.. math::

    p(x) = \sum_{k=1}^K \pi_k\, \mathcal N(x; \mu_k, \Sigma_k), \qquad
    \log p(x) = \operatorname{logsumexp}_k \big(\log \pi_k + \log \mathcal N(x; \mu_k, \Sigma_k)\big).

Every parameter is unconstrained, so the same module is fitted by EM
(:mod:`gmkit_gmm.em`, which writes the M-step's closed form into it) or by
gradient descent (a learned prior, ``fit="gradient"``):

- :math:`\pi = \operatorname{softmax}(\text{logits})`, ``logits``: ``(K,)``;
- :math:`\mu_k` = ``loc[k]``, ``loc``: ``(K, D)``;
- ``"full"``: :math:`\Sigma_k = L_k L_k^\top` with :math:`L_k` lower triangular, its
  strictly lower part taken from ``tril[k]`` and its diagonal :math:`\exp` of the
  diagonal of ``tril[k]`` (``(K, D, D)``), so :math:`\log|\Sigma_k| = 2\sum_i \log L_{k,ii}`;
- ``"diag"``: :math:`\Sigma_k = \operatorname{diag}(\sigma_k^2)`, :math:`\log\sigma` in ``log_scale``: ``(K, D)``;
- ``"spherical"``: :math:`\Sigma_k = \sigma_k^2 I`, ``log_scale``: ``(K,)``.

For ``"full"``, :math:`\log\mathcal N(x;\mu,\Sigma) = -\tfrac12\|L^{-1}(x-\mu)\|^2 - \sum_i\log L_{ii} - \tfrac D2\log 2\pi`.
Reference: Bishop, Pattern Recognition and Machine Learning (2006), section 9.2.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gmkit_core.distributions import LOG_2PI, Normal, sample_categorical
from gmkit_core.errors import ConfigError

__all__ = ["COVARIANCES", "GaussianMixture"]

COVARIANCES = ("full", "diag", "spherical")


class GaussianMixture(nn.Module):
    """:math:`K` Gaussians in :math:`D` dimensions with ``covariance`` in ``full``, ``diag``, ``spherical``.

    Initialised to equal weights, means at the origin and unit covariances;
    :meth:`set_parameters` loads given values (EM's M-step, tests).
    """

    def __init__(self, dim: int, components: int, covariance: str = "full"):
        super().__init__()
        if covariance not in COVARIANCES:
            raise ConfigError(f"covariance must be one of {', '.join(COVARIANCES)}, got '{covariance}'")
        if dim < 1 or components < 1:
            raise ConfigError(f"a mixture needs dim >= 1 and components >= 1, got {dim} and {components}")
        self.dim, self.components, self.covariance = dim, components, covariance
        self.logits = nn.Parameter(torch.zeros(components))
        self.loc = nn.Parameter(torch.zeros(components, dim))
        if covariance == "full":
            self.tril = nn.Parameter(torch.zeros(components, dim, dim))
        else:
            self.log_scale = nn.Parameter(torch.zeros((components, dim) if covariance == "diag" else (components,)))

    # -- parameters in their natural form ----------------------------------------
    @property
    def log_weights(self) -> Tensor:
        r""":math:`\log\pi`, ``(K,)``."""
        return torch.log_softmax(self.logits, -1)

    @property
    def scale_tril(self) -> Tensor:
        r""":math:`L_k` with :math:`\Sigma_k = L_k L_k^\top`, ``(K, D, D)``, for every covariance type."""
        if self.covariance == "full":
            return torch.tril(self.tril, -1) + torch.diag_embed(torch.exp(torch.diagonal(self.tril, 0, -2, -1)))
        return torch.diag_embed(self._scale())

    @property
    def covariance_matrix(self) -> Tensor:
        r""":math:`\Sigma_k`, ``(K, D, D)``."""
        tril = self.scale_tril
        return tril @ tril.transpose(-1, -2)

    def _scale(self) -> Tensor:
        """Per-dimension standard deviations ``(K, D)`` (diag and spherical only)."""
        scale = torch.exp(self.log_scale)
        return scale if self.covariance == "diag" else scale[:, None].expand(-1, self.dim)

    @torch.no_grad()
    def set_parameters(self, weights: Tensor, loc: Tensor, covariance: Tensor) -> None:
        r"""Load :math:`\pi` ``(K,)``, :math:`\mu` ``(K, D)`` and the covariances.

        ``covariance`` is ``(K, D, D)`` matrices for ``full`` (must be positive
        definite), variances ``(K, D)`` for ``diag`` and ``(K,)`` for ``spherical``.
        """
        dtype = self.loc.dtype
        self.logits.copy_(torch.log(weights.clamp_min(torch.finfo(weights.dtype).tiny)).to(dtype))
        self.loc.copy_(loc.to(dtype))
        if self.covariance == "full":
            chol, info = torch.linalg.cholesky_ex(covariance.double())
            if bool((info != 0).any()):
                raise ValueError("covariance matrices must be positive definite; raise reg_covar")
            self.tril.copy_(
                (torch.tril(chol, -1) + torch.diag_embed(torch.log(torch.diagonal(chol, 0, -2, -1)))).to(dtype)
            )
        else:
            self.log_scale.copy_((0.5 * torch.log(covariance.double())).to(dtype))

    # -- densities ------------------------------------------------------------------
    def component_log_prob(self, x: Tensor) -> Tensor:
        r""":math:`\log\mathcal N(x; \mu_k, \Sigma_k)` for every component: ``(*, D) -> (*, K)``."""
        if self.covariance != "full":
            return Normal(self.loc, self._scale(), event_dims=1).log_prob(x.unsqueeze(-2))
        tril = self.scale_tril
        eye = torch.eye(self.dim, dtype=tril.dtype, device=tril.device)
        inv = torch.linalg.solve_triangular(tril, eye, upper=False)  # L_k^{-1}, (K, D, D)
        z = torch.einsum("kij,...j->...ki", inv, x) - (inv @ self.loc.unsqueeze(-1)).squeeze(-1)  # (*, K, D)
        half_log_det = torch.diagonal(self.tril, 0, -2, -1).sum(-1)  # (K,)
        return -0.5 * z.square().sum(-1) - half_log_det - 0.5 * self.dim * LOG_2PI

    def joint_log_prob(self, x: Tensor) -> Tensor:
        r""":math:`\log \pi_k + \log\mathcal N(x;\mu_k,\Sigma_k)`: ``(*, D) -> (*, K)``."""
        return self.log_weights + self.component_log_prob(x)

    def log_prob(self, x: Tensor) -> Tensor:
        r""":math:`\log p(x)` by log-sum-exp over components: ``(*, D) -> (*)``."""
        return torch.logsumexp(self.joint_log_prob(x), -1)

    def forward(self, x: Tensor) -> Tensor:
        """:meth:`log_prob`."""
        return self.log_prob(x)

    def responsibilities(self, x: Tensor) -> Tensor:
        r""":math:`r_{k}(x) = p(k \mid x) = \pi_k \mathcal N(x;\mu_k,\Sigma_k) / p(x)`: ``(*, D) -> (*, K)``."""
        return torch.softmax(self.joint_log_prob(x), -1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        r"""``(n, D)`` draws: :math:`k \sim \mathrm{Cat}(\pi)`, then :math:`x = \mu_k + L_k \epsilon`, :math:`\epsilon \sim \mathcal N(0, I)`."""
        k = sample_categorical(self.logits.expand(n, -1), generator)  # (n,)
        eps = torch.randn((n, self.dim), generator=generator, device=self.loc.device, dtype=self.loc.dtype)
        if self.covariance == "full":
            return self.loc[k] + (self.scale_tril[k] @ eps.unsqueeze(-1)).squeeze(-1)
        return self.loc[k] + self._scale()[k] * eps

    def extra_repr(self) -> str:
        return f"dim={self.dim}, components={self.components}, covariance={self.covariance!r}"
