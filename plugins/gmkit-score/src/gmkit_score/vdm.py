r"""VDM: the variational diffusion model in continuous (or discrete) time.

Kingma et al. (2021, arXiv:2107.00630). Forward process on model-space data :math:`x`
(:mod:`gmkit_score.base`): :math:`z_t = \alpha_t x + \sigma_t\epsilon` with
:math:`\alpha_t^2 = \mathrm{sigmoid}(-\gamma(t))`, :math:`\sigma_t^2 = \mathrm{sigmoid}(\gamma(t))`
(variance preserving), :math:`\gamma` the negative log-SNR (:mod:`gmkit_score.gamma`). The
variational bound on :math:`-\log P(x)` of the discrete data is

.. math:: -\log P(x) \le \underbrace{D_{KL}(q(z_1 \mid x)\,\|\,\mathcal N(0, I))}_{\text{prior}}
   + \underbrace{E_{q(z_0 \mid x)}[-\log p(x \mid z_0)]}_{\text{reconstruction}} + \mathcal L_\infty(x),

.. math:: \mathcal L_\infty(x) = \tfrac12 E_{\epsilon, t \sim U(0,1)}\big[\gamma'(t)\,\|\epsilon - \hat\epsilon(z_t; t)\|^2\big]
   \quad\text{(eq. 17)}, \qquad
   \mathcal L_T(x) = \tfrac T2 E_{\epsilon, i}\big[(e^{\gamma(t_i) - \gamma(s_i)} - 1)\|\epsilon - \hat\epsilon(z_{t_i}; t_i)\|^2\big]
   \quad\text{(eq. 13)}

for :math:`T` steps, :math:`t_i = i/T`, :math:`s_i = (i-1)/T`; :math:`\mathcal L_T \to \mathcal L_\infty`
as :math:`T \to \infty` and :math:`\mathcal L_{2T} \le \mathcal L_T`. The decoder is the normalised
discrete distribution over the :math:`L` levels of each dimension,
:math:`p(x_i = k \mid z_0) \propto \exp(-(z_{0,i} - \alpha_0 c_k)^2 / (2\sigma_0^2))`
(vectors: the Gaussian :math:`\mathcal N(x; z_0/\alpha_0, \sigma_0^2/\alpha_0^2)`).

Training draws one time per example with antithetic (low-discrepancy) sampling,
:math:`t_b = (u + b/B) \bmod 1` (appendix I.1). With ``schedule=learned`` the end points of
:math:`\gamma` get the gradient of the bound and its shape the gradient of the variance
:math:`E[\mathcal L_\infty^2]` of the diffusion loss (section 5.2, the loss per dimension).
The network sees :math:`z_t` and Fourier features :math:`\sin(2^n\pi z_t), \cos(2^n\pi z_t)` of it
(appendix C). It predicts :math:`\hat\epsilon` (``prediction=eps``) or, for images, logits over the levels
(``levels``, as ddpm's option of that name): :math:`\hat x_0 = \sum_k \pi_k c_k`,
:math:`\pi = \mathrm{softmax}(\ell_k - (z_t - \alpha_t c_k)^2/(2\sigma_t^2))`,
:math:`\hat\epsilon = (z_t - \alpha_t\hat x_0)/\sigma_t` -- the same bound, another read-out.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs
import torch
from attrs.validators import ge, in_, instance_of
from torch import Tensor

from gmkit_core.data import Batch, Dataset, DataSpec
from gmkit_core.distributions import to_unit_interval
from gmkit_core.errors import ConfigError
from gmkit_core.interfaces import bits_per_dim
from gmkit_core.paths import GaussianPath, LogSNRPath

from .base import ContinuousConfig, ContinuousModel, at, fourier_features, opt
from .gamma import LearnedGamma, LinearGamma, derivative

__all__ = ["VDM", "VDMConfig", "fourier_features"]


@attrs.frozen
class VDMConfig(ContinuousConfig):
    """Options of ``vdm``."""

    schedule: str = opt("learned", "gamma(t): learned (monotone network) or linear (fixed)", in_(("learned", "linear")))
    gamma_min: float = opt(-13.3, "gamma(0) (learned: its initial value)")
    gamma_max: float = opt(5.0, "gamma(1) (learned: its initial value)")
    schedule_hidden: int = opt(1024, "learned: sigmoid units of the monotone network", instance_of(int), ge(1))
    T: int = opt(0, "0: continuous-time bound; T > 0: the T-step discrete-time bound", instance_of(int), ge(0))
    prediction: str = opt(
        "auto",
        "eps, levels (images: logits over the levels) or auto (levels for images)",
        in_(("auto", "eps", "levels")),
    )
    fourier: tuple[int, ...] = opt(
        (-1,),
        "exponents n of the Fourier features sin/cos(2^n pi z); -1: from the "
        "levels (log2(L-1) - 1 and log2(L-1)); empty: none",
    )
    nll_samples: int = opt(
        16, "Monte Carlo draws of (t, eps) per example in nll (stratified in t)", instance_of(int), ge(1)
    )
    variance_weight: float = opt(1.0, "learned: weight of the variance objective of the schedule's shape", ge(0.0))
    sampler: str = opt("dpmpp_2m", "sampler of `sample`: euler, heun or dpmpp_2m", in_(("euler", "heun", "dpmpp_2m")))


class VDM(ContinuousModel):
    """Variational diffusion model; ``nll`` is the variational bound (see the module docstring)."""

    Config: ClassVar[type] = VDMConfig
    likelihood: ClassVar[str] = "bound"
    vector_lr: ClassVar[float | None] = None  # the image learning rate also on vectors

    @classmethod
    def likelihood_kind(cls, data: DataSpec | None = None, config: Any = None) -> str:
        return "bound"

    def __init__(self, config: VDMConfig, data: DataSpec):
        super().__init__(config, data)
        if not config.gamma_min < config.gamma_max:
            raise ConfigError(f"vdm: gamma_min ({config.gamma_min}) must be below gamma_max ({config.gamma_max})")
        self.prediction = config.prediction if config.prediction != "auto" else ("levels" if self.levels else "eps")
        if self.prediction == "levels" and not self.levels:
            raise ConfigError("vdm: prediction=levels needs image data; use prediction=eps for vectors")
        if config.fourier == (-1,):
            base = int(round(math.log2(self.levels - 1))) if self.levels else 0
            self.exponents: tuple[int, ...] = (base - 1, base) if self.levels else ()
        else:
            self.exponents = tuple(config.fourier)
        self.input_multiplier = 1 + 2 * len(self.exponents)
        out = data.shape[0] * (int(self.levels or 1) if self.prediction == "levels" else 1)
        self.network = self.build_network(out)
        self.gamma = (
            LearnedGamma(config.gamma_min, config.gamma_max, config.schedule_hidden)
            if config.schedule == "learned"
            else LinearGamma(config.gamma_min, config.gamma_max)
        )

    # -- path and denoiser ----------------------------------------------------------------
    def path(self) -> GaussianPath:
        return LogSNRPath(lambda t: -self.gamma(t))

    def _coefs(self, gamma: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        return at(torch.sigmoid(-gamma).sqrt(), like), at(torch.sigmoid(gamma).sqrt(), like)

    def _centres(self, like: Tensor) -> Tensor:
        levels = int(self.levels or 0)
        return to_unit_interval(torch.arange(levels, device=like.device), levels).to(like.dtype)

    def eps_and_x0(self, z: Tensor, t: Tensor, gamma: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
        r"""``(eps_hat, x0_hat)`` at :math:`z_t` with :math:`\gamma(t)` given (so a caller controls its gradient)."""
        a, s = self._coefs(gamma, z)
        out = self.network(fourier_features(z, self.exponents), t, y)
        if self.prediction == "eps":
            return out, (z - s * out) / a
        B, C = z.shape[:2]
        logits = out.reshape(B, C, self.levels, *z.shape[2:])  # (B, C, L, H, W)
        c = self._centres(z).reshape(1, 1, -1, *([1] * (z.ndim - 2)))
        loglik = -(z.unsqueeze(2) - a.unsqueeze(2) * c).square() / (2 * s.unsqueeze(2).square())
        x0 = (torch.softmax(logits + loglik, dim=2) * c).sum(2)  # (B, C, H, W)
        return (z - a * x0) / s, x0

    def x0_from_network(self, x_t: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        return self.eps_and_x0(x_t, t, self.gamma(t), y)[1]

    # -- the bound ----------------------------------------------------------------------------
    def prior_term(self, x: Tensor) -> Tensor:
        r""":math:`D_{KL}(\mathcal N(\alpha_1 x, \sigma_1^2)\,\|\,\mathcal N(0, 1))` summed over dimensions, ``(B,)``."""
        g1 = self.gamma.ends()[1].expand(x.shape[0])
        a, s = self._coefs(g1, x)
        var = s.square()
        return (0.5 * (a.square() * x.square() + var - var.log() - 1)).flatten(1).sum(1)

    def reconstruction_term(self, x: Tensor, x_stored: Tensor, eps: Tensor) -> Tensor:
        r""":math:`-\log p(x \mid z_0)` at :math:`z_0 = \alpha_0 x + \sigma_0\epsilon`, ``(B,)`` nats."""
        g0 = self.gamma.ends()[0].expand(x.shape[0])
        a, s = self._coefs(g0, x)
        z0 = a * x + s * eps
        if not self.levels:
            std = s / a
            return (0.5 * ((z0 / a - x) / std).square() + std.log() + 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)
        c = self._centres(x).reshape(1, 1, -1, *([1] * (x.ndim - 2)))
        logits = -(z0.unsqueeze(2) - a.unsqueeze(2) * c).square() / (2 * s.unsqueeze(2).square())  # (B, C, L, ...)
        logp = torch.log_softmax(logits, dim=2).gather(2, x_stored.long().unsqueeze(2)).squeeze(2)
        return -logp.flatten(1).sum(1)

    def diffusion_term(
        self, x: Tensor, y: Tensor | None, t: Tensor, eps: Tensor, train: bool = False
    ) -> tuple[Tensor, Tensor]:
        r"""``(L, V)``: the diffusion loss :math:`\mathcal L_\infty` (or :math:`\mathcal L_T`) per example,
        and (``train`` with a learned schedule) the loss whose square's gradient reaches only the shape."""
        g0, g1 = self.gamma.ends()
        shape, dshape = derivative(self.gamma.shape, t, create_graph=train)
        gap = g1 - g0
        gamma_t = g0 + gap * shape.detach()
        z = self._coefs(gamma_t, x)[0] * x + self._coefs(gamma_t, x)[1] * eps
        eps_hat, _ = self.eps_and_x0(z, t, gamma_t, y)
        mse = (eps - eps_hat).square().flatten(1).sum(1)  # (B,)
        T = self.config.T
        if T:
            gamma_s = g0 + gap * self.gamma.shape(t - 1.0 / T).detach()
            loss = 0.5 * T * torch.expm1(gamma_t - gamma_s) * mse
        else:
            loss = 0.5 * gap * dshape.detach() * mse
        variance = 0.5 * gap.detach() * dshape * mse.detach() if train else loss.detach()
        return loss, variance

    def times(self, n: int, generator: torch.Generator | None = None, device: Any = None) -> Tensor:
        r"""Antithetic times :math:`(u + b/n) \bmod 1`, snapped to :math:`t_i = i/T` for the discrete bound; ``(n,)``."""
        u = torch.rand((), generator=generator, device=device)
        t = torch.remainder(u + torch.arange(n, device=device) / n, 1.0)
        if self.config.T:
            t = torch.ceil(t * self.config.T).clamp(min=1) / self.config.T
        return t

    def terms(self, batch: Batch, generator: torch.Generator | None = None, samples: int = 1) -> dict[str, Tensor]:
        """The three terms of the bound, ``(B,)`` nats each, averaged over ``samples`` draws."""
        device = self.device()
        x_stored = batch.x.to(device)
        x = self.to_model_space(x_stored)
        y = self.labels(batch)
        B = x.shape[0]
        diff = torch.zeros(B, device=device)
        recon = torch.zeros(B, device=device)
        offsets = torch.arange(samples, device=device) / samples  # stratified over the draws of each example
        u = torch.rand(B, generator=generator, device=device)
        for k in range(samples):
            t = torch.remainder(u + offsets[k], 1.0)
            if self.config.T:
                t = torch.ceil(t * self.config.T).clamp(min=1) / self.config.T
            eps = torch.randn(x.shape, generator=generator, device=device)
            diff = diff + self.diffusion_term(x, y, t, eps)[0].detach()
            eps0 = torch.randn(x.shape, generator=generator, device=device)
            recon = recon + self.reconstruction_term(x, x_stored, eps0).detach()
        out = {"diffusion": diff / samples, "prior": self.prior_term(x).detach(), "reconstruction": recon / samples}
        out["bound"] = out["diffusion"] + out["prior"] + out["reconstruction"] + self._log_scale_nats()
        return out

    def _log_scale_nats(self) -> float:
        return 0.0 if self.levels else self.data.dims * math.log(float(self.scale))

    # -- the GenerativeModel contract -------------------------------------------------------
    def loss(self, batch: Batch) -> dict[str, Tensor]:
        device = self.device()
        x_stored = batch.x.to(device)
        x = self.to_model_space(x_stored)
        y = self.drop_labels(self.labels(batch))
        B, D = x.shape[0], self.data.dims
        t = self.times(B, device=device)
        diff, variance = self.diffusion_term(x, y, t, torch.randn_like(x), train=True)
        prior = self.prior_term(x)
        recon = self.reconstruction_term(x, x_stored, torch.randn_like(x))
        bound = (diff + prior + recon).mean() / D + self._log_scale_nats() / D
        loss = bound
        if isinstance(self.gamma, LearnedGamma) and self.config.variance_weight > 0:
            # zero in value (the logged loss is the bound), the variance's gradient for the shape
            var = self.config.variance_weight * (variance / D).square().mean()
            loss = loss + (var - var.detach())
        return {
            "loss": loss,
            "bound_nats_per_dim": bound.detach(),
            "diffusion": diff.mean().detach() / D,
            "prior": prior.mean().detach() / D,
            "reconstruction": recon.mean().detach() / D,
        }

    def nll(self, batch: Batch) -> Tensor:
        """The variational bound in nats per example (a Monte Carlo estimate whose expectation is the bound)."""
        with torch.no_grad():
            return self.terms(batch, self.nll_generator(), self.config.nll_samples)["bound"]

    def validation_score(self, data: Dataset, batch_size: int = 256) -> float:
        """Mean fixed-seed estimate of the bound with 4 draws per example (nats)."""
        with torch.no_grad():
            return self._mean(data, batch_size, lambda b: self.terms(b, self.nll_generator(), 4)["bound"])

    def evaluate(self, data: Dataset, batch_size: int = 256) -> dict[str, Any]:
        """The core's figures (marginal ``nll + log K`` with labels) from one pass that also keeps the three terms."""
        sums = dict.fromkeys(("bound", "diffusion", "prior", "reconstruction"), 0.0)
        with torch.no_grad():
            for b in data.batches(batch_size):
                terms = self.terms(b, self.nll_generator(), self.config.nll_samples)
                for key in sums:
                    sums[key] += float(terms[key].double().sum())
        n = max(len(data), 1)
        out: dict[str, Any] = {"n": len(data), "likelihood": "bound", "exact": False}
        conditional = self.conditional and data.y is not None and bool(self.data.num_classes)
        out["nll_nats"] = sums["bound"] / n + (math.log(int(self.data.num_classes or 1)) if conditional else 0.0)
        if conditional:
            out["conditional_nll_nats"], out["conditional"] = sums["bound"] / n, True
        if data.spec.kind != "vector":
            for key in [k for k in out if k.endswith("nll_nats")]:
                out[key.replace("nll_nats", "bits_per_dim")] = bits_per_dim(out[key], data.spec.dims)
        for key in ("diffusion", "prior", "reconstruction"):
            out[f"{key}_nats"] = sums[key] / n
        g0, g1 = (float(g.detach()) for g in self.gamma.ends())
        out.update(gamma_0=g0, gamma_1=g1, bound_T=self.config.T or "continuous", nll_samples=self.config.nll_samples)
        return out
