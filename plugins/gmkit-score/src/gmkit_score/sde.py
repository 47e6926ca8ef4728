r"""Score-based generative modelling with SDEs: VP, sub-VP and VE (Song et al., 2021, arXiv:2011.13456).

Each SDE :math:`dx = f(t)x\,dt + g(t)\,dW` has Gaussian marginals :math:`x_t = \alpha(t)x_0 + \sigma(t)\epsilon`
(a :class:`~gmkit_core.paths.GaussianPath`), with :math:`f = \dot\alpha/\alpha` and
:math:`g^2 = \tfrac{d\sigma^2}{dt} - 2f\sigma^2`:

- ``vp``: :math:`\beta(t) = \beta_0 + t(\beta_1 - \beta_0)`, :math:`\alpha = e^{-\frac14 t^2(\beta_1-\beta_0) - \frac12 t\beta_0}`,
  :math:`\sigma^2 = 1 - \alpha^2` (eq. 11; DDPM's limit);
- ``subvp``: the same :math:`\alpha`, :math:`\sigma = 1 - \alpha^2` (eq. 12);
- ``ve``: :math:`\alpha = 1`, :math:`\sigma = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^t` (eq. 9; SMLD's limit).

Training is denoising score matching: the network sees :math:`\tilde x = c_{\rm in}x_t` with
:math:`c_{\rm in} = (\alpha^2 + \sigma^2)^{-1/2}` and, by ``predict``, outputs

- ``eps``: :math:`\hat\epsilon` itself;
- ``v``: :math:`\hat v` with :math:`\hat\epsilon = \tilde\alpha\hat v + \tilde\sigma\tilde x`,
  :math:`(\tilde\alpha, \tilde\sigma) = c_{\rm in}(\alpha, \sigma)`: the target is
  :math:`v = \tilde\alpha\epsilon - \tilde\sigma x_0` (Salimans & Ho, 2022, arXiv:2202.00512, on the
  normalised path), so near the prior :math:`\hat\epsilon \to \tilde x` needs no fitting.

The score is :math:`s_\theta(x, t) = -\hat\epsilon/\sigma`, so
:math:`w(t)\|s_\theta - \nabla\log p(x_t \mid x_0)\|^2 = \tfrac{w(t)}{\sigma^2}\|\hat\epsilon - \epsilon\|^2`.
With :math:`\lambda = \log(\alpha^2/\sigma^2)` the log-SNR, every Gaussian path has
:math:`g^2/\sigma^2 = \tfrac{d\log\sigma^2}{dt} - 2f = -\dot\lambda(t)`, so a weight
:math:`w = g^2\tilde w(\lambda)` gives the loss :math:`\tfrac12\int\tilde w(\lambda)E\|\hat\epsilon - \epsilon\|^2 d\lambda`
over :math:`[\lambda(1), \lambda(t_\epsilon)]` (Kingma & Gao, 2023, arXiv:2303.00848). ``weighting`` picks :math:`w`:

- ``sigma2``: :math:`w = \sigma^2` (eq. 7): the loss :math:`E\|\hat\epsilon - \epsilon\|^2`,
  :math:`t \sim U[t_\epsilon, 1]` (antithetic, raised to ``t_power``);
- ``likelihood``: :math:`\tilde w = 1`, :math:`w = g^2` (Song et al., 2021, arXiv:2101.09258), for which the
  score-matching loss bounds the negative log-likelihood (VDM's diffusion loss on this path):
  :math:`\lambda \sim U[\lambda(1), \lambda(t_\epsilon)]` (antithetic, importance sampling), inverted to
  :math:`t` in closed form; the loss :math:`E_\lambda\|\hat\epsilon - \epsilon\|^2`;
- ``flow``: :math:`\tilde w = e^{-\lambda/2}`, flow matching's weighting: :math:`\lambda` from the logistic
  density of scale 2, :math:`p(\lambda) = \tfrac12 e^{-\lambda/2}(1 + e^{-\lambda/2})^{-2}` (truncated to the
  range), and the loss :math:`E_\lambda(1 + e^{-\lambda/2})^2\|\hat\epsilon - \epsilon\|^2`. On the linear path
  :math:`x_\tau = (1-\tau)x_0 + \tau\epsilon` these are :math:`\tau \sim U[0, 1]` and
  :math:`\|\hat\epsilon - \epsilon\|^2/(1-\tau)^2` is the squared error of the velocity :math:`\epsilon - x_0`:
  ``flow_matching``'s loss.

Each loss is the per-dimension mean over the batch.

Sampling (``sample(method=...)``):

- ``ode``: the probability-flow ODE with a shared solver (``sampler``, ``nfe``);
- ``em``: Euler-Maruyama on the reverse SDE :math:`dx = [f x - g^2 s_\theta]dt + g\,d\bar W` (eq. 6),
  ``steps`` uniform steps from 1 to :math:`t_\epsilon`, then :math:`\hat x_0` (Tweedie's denoising step);
- ``pc``: predictor-corrector (algorithm 1 with the reverse-diffusion predictor and Langevin
  corrector): after each predictor step, ``corrector_steps`` Langevin steps
  :math:`x \leftarrow x + \eta s + \sqrt{2\eta}z`, :math:`\eta = 2(r\|z\|/\|s\|)^2`, ``snr`` :math:`= r`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs
import torch
from attrs.validators import ge, gt, in_, instance_of
from torch import Tensor

from gmkit_core.data import Batch, DataSpec
from gmkit_core.errors import ConfigError
from gmkit_core.paths import GaussianPath, eps_from_x0

from .base import ContinuousModel, PathTrainingConfig, at, fourier_features, opt, plane_options, training_times

__all__ = ["ScoreSDE", "ScoreSDEConfig", "VPPath", "SubVPPath", "VEPath", "METHODS"]

METHODS = ("ode", "em", "pc")
WEIGHTINGS = ("sigma2", "likelihood", "flow")
PREDICTIONS = ("eps", "v")


def logistic_quantile(u: Tensor, low: float, high: float) -> Tensor:
    r"""The logistic distribution of scale 2 truncated to ``[low, high]``, at the quantiles ``u`` in [0, 1]:
    :math:`\lambda = 2\log(p/q)` with :math:`p = F(\lambda)` (:math:`F = \mathrm{sigmoid}(\cdot/2)`) interpolated
    from the low end and :math:`q = 1 - p` from the high end, so neither tail loses precision."""
    p_lo, q_hi = 1 / (1 + math.exp(-low / 2)), 1 / (1 + math.exp(high / 2))
    width = 1 - p_lo - q_hi  # F(high) - F(low)
    return 2 * (torch.log(p_lo + width * u) - torch.log(q_hi + width * (1 - u)))


class VPPath(GaussianPath):
    """The VP SDE's marginals (``beta_min``, ``beta_max``; ``t_min`` = :math:`t_\\epsilon`)."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-5):
        self.beta_min, self.beta_max, self.t_min = beta_min, beta_max, t_min

    def log_alpha(self, t: Tensor) -> Tensor:
        return -0.25 * t.square() * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def alpha(self, t: Tensor) -> Tensor:
        return self.log_alpha(t).exp()

    def sigma(self, t: Tensor) -> Tensor:
        return (-torch.expm1(2 * self.log_alpha(t))).sqrt()

    def time_at(self, log_snr: Tensor, iters: int = 0) -> Tensor:
        r"""Closed form: :math:`\alpha^2 = \mathrm{sigmoid}(\lambda)`, so :math:`-\log\alpha = \tfrac12\mathrm{softplus}(-\lambda)`."""
        return self.time_at_neg_log_alpha(0.5 * torch.nn.functional.softplus(-log_snr))

    def time_at_neg_log_alpha(self, c: Tensor) -> Tensor:
        r"""The root of :math:`\tfrac14\Delta\beta\,t^2 + \tfrac12\beta_{\min}t = c` (:math:`c = -\log\alpha`), in the stable
        form :math:`t = 2c / (b + \sqrt{b^2 + 4ac})`, clamped to ``[t_min, t_max]`` as the bisection is."""
        a, b = 0.25 * (self.beta_max - self.beta_min), 0.5 * self.beta_min
        return (2 * c / (b + (b * b + 4 * a * c).sqrt())).clamp(self.t_min, self.t_max)


class SubVPPath(VPPath):
    r"""The sub-VP SDE's marginals: :math:`\sigma = 1 - \alpha^2`."""

    def sigma(self, t: Tensor) -> Tensor:
        return -torch.expm1(2 * self.log_alpha(t))

    def time_at(self, log_snr: Tensor, iters: int = 0) -> Tensor:
        r"""Closed form: :math:`e^\lambda = \alpha^2/(1 - \alpha^2)^2` has the root :math:`\alpha^2 < 1` with
        :math:`-\log\alpha^2 = \mathrm{softplus}(-\lambda + \log\tfrac12(1 + \sqrt{1 + 4e^\lambda}))` (stable at both ends)."""
        q = -log_snr + torch.log(0.5 * (1 + (1 + 4 * log_snr.exp()).sqrt()))
        return self.time_at_neg_log_alpha(0.5 * torch.nn.functional.softplus(q))


class VEPath(GaussianPath):
    r"""The VE SDE's marginals: :math:`\alpha = 1`, :math:`\sigma = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^t`."""

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 20.0, t_min: float = 1e-5):
        self.sigma_min, self.sigma_max, self.t_min = sigma_min, sigma_max, t_min

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def time_at(self, log_snr: Tensor, iters: int = 0) -> Tensor:
        r"""Closed form: :math:`\lambda = -2\log\sigma`, linear in :math:`t`."""
        t = (-0.5 * log_snr - math.log(self.sigma_min)) / math.log(self.sigma_max / self.sigma_min)
        return t.clamp(self.t_min, self.t_max)


@attrs.frozen
class ScoreSDEConfig(PathTrainingConfig):
    """Options of ``score_sde``."""

    sde: str = opt("vp", "vp, subvp or ve", in_(("vp", "subvp", "ve")))
    beta_min: float = opt(0.1, "vp/subvp: beta(0)", gt(0.0))
    beta_max: float = opt(20.0, "vp/subvp: beta(1)", gt(0.0))
    sigma_min: float = opt(0.01, "ve: sigma(0)", gt(0.0))
    sigma_max: float = opt(20.0, "ve: sigma(1) (about the largest distance between data points)", gt(0.0))
    weighting: str = opt(
        "sigma2",
        "score-matching weight: sigma2 (t uniform), likelihood (g^2: log-SNR uniform) or flow "
        "(g^2 exp(-log-SNR/2): flow matching's; the default on vectors)",
        in_(WEIGHTINGS),
    )
    predict: str = opt(
        "eps",
        "network output: eps (the noise) or v (alpha eps - sigma x0 on the normalised path; the default on vectors)",
        in_(PREDICTIONS),
    )
    t_eps: float = opt(1e-5, "smallest time of training, sampling and the likelihood ODE", gt(0.0))
    method: str = opt(
        "ode",
        "sampling: ode (probability flow, shared solver), em (Euler-Maruyama), pc (predictor-corrector)",
        in_(METHODS),
    )
    steps: int = opt(500, "em/pc: reverse-SDE steps", instance_of(int), ge(1))
    snr: float = opt(0.16, "pc: Langevin signal-to-noise ratio r", gt(0.0))
    corrector_steps: int = opt(1, "pc: Langevin steps per predictor step", instance_of(int), ge(0))


class ScoreSDE(ContinuousModel):
    """Denoising score matching on an SDE's marginals; see the module docstring."""

    Config: ClassVar[type] = ScoreSDEConfig

    @classmethod
    def config_for(cls, data: DataSpec) -> dict[str, Any]:
        """Vectors: ``predict=v``, ``weighting=flow``, and on the plane :func:`~gmkit_score.base.plane_options`
        (checkerboard test NLL 3.546 with all three, 3.680 with none; docs/models/score.md)."""
        if data.kind != "vector":
            return {}
        return {"predict": "v", "weighting": "flow", **plane_options(data)}

    def __init__(self, config: ScoreSDEConfig, data: DataSpec):
        super().__init__(config, data)
        if config.sde == "ve" and not config.sigma_min < config.sigma_max:
            raise ConfigError(f"score_sde: sigma_min ({config.sigma_min}) must be below sigma_max ({config.sigma_max})")
        if config.sde != "ve" and not config.beta_min < config.beta_max:
            raise ConfigError(f"score_sde: beta_min ({config.beta_min}) must be below beta_max ({config.beta_max})")
        if config.weighting != "sigma2" and config.t_power != 1.0:
            raise ConfigError(
                f"score_sde: t_power applies to weighting=sigma2 ({config.weighting} draws times by log-SNR); "
                "add --set weighting=sigma2 to use it"
            )
        if config.t_eps >= 0.5:
            raise ConfigError(f"score_sde: t_eps must be small (< 0.5), got {config.t_eps}")
        self.exponents = self.input_exponents(config)
        self.network = self.build_network()
        c = config
        self._path: GaussianPath = (
            VEPath(c.sigma_min, c.sigma_max, c.t_eps)
            if c.sde == "ve"
            else (SubVPPath if c.sde == "subvp" else VPPath)(c.beta_min, c.beta_max, c.t_eps)
        )
        ends = self._path.log_snr(torch.tensor([1.0, c.t_eps], dtype=torch.float64))
        #: :math:`(\lambda(1), \lambda(t_\epsilon))`, the range ``weighting=likelihood`` and ``flow`` draw from
        self.log_snr_range = (float(ends[0]), float(ends[1]))

    def path(self) -> GaussianPath:
        return self._path

    def default_warp(self) -> float:
        r"""2 for ``vp`` and ``subvp``: there :math:`v \approx \sigma'\hat\epsilon \propto t^{-1/2}` near
        :math:`t = 0`, and with :math:`t = t_0 + (t_1 - t_0)s^2` the solved :math:`v\,dt/ds` stays bounded; 1 for ``ve``."""
        return 1.0 if self.config.sde == "ve" else 2.0

    def eps_hat(self, x_t: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        r""":math:`\hat\epsilon(x_t, t, y)` from the network's ``predict`` output; the score is :math:`-\hat\epsilon/\sigma(t)`."""
        a, s = self._path.alpha(t), self._path.sigma(t)
        c_in = (a.square() + s.square()).rsqrt()
        x_in = at(c_in, x_t) * x_t
        out = self.network(fourier_features(x_in, self.exponents), t, y)
        if self.config.predict == "eps":
            return out
        return at(c_in * a, x_t) * out + at(c_in * s, x_t) * x_in

    def x0_from_network(self, x_t: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        a, s = at(self._path.alpha(t), x_t), at(self._path.sigma(t), x_t)
        return (x_t - s * self.eps_hat(x_t, t, y)) / a

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        x = self.training_data(batch)
        y = self.drop_labels(self.labels(batch))
        t = self.training_times(x.shape[0], x.device)
        eps = torch.randn_like(x)
        x_t = at(self._path.alpha(t), x) * x + at(self._path.sigma(t), x) * eps
        mse = (self.eps_hat(x_t, t, y) - eps).square().flatten(1).mean(1)
        loss = (self.loss_weights(t) * mse).mean()
        return {"loss": loss}

    def training_times(self, B: int, device: torch.device) -> Tensor:
        r"""``(B,)`` times, antithetic: uniform in :math:`t` (``sigma2``), uniform in :math:`\lambda(t)`
        (``likelihood``) or :math:`\lambda` logistic of scale 2 (``flow``)."""
        c = self.config
        if c.weighting == "sigma2":
            return training_times(B, device, c.t_eps, 1.0, c.t_power)
        if c.weighting == "likelihood":
            return self._path.time_at(training_times(B, device, *self.log_snr_range, 1.0))
        return self._path.time_at(logistic_quantile(training_times(B, device, 0.0, 1.0, 1.0), *self.log_snr_range))

    def loss_weights(self, t: Tensor) -> Tensor:
        r"""``(B,)`` weights of the per-example losses: :math:`(1 + e^{-\lambda(t)/2})^2` (``flow``), else 1."""
        if self.config.weighting != "flow":
            return torch.ones_like(t)
        return (1 + torch.exp(-0.5 * self._path.log_snr(t))).square()

    # -- sampling -------------------------------------------------------------------------------
    def sample(
        self,
        n: int,
        *,
        condition: Tensor | None = None,
        generator: torch.Generator | None = None,
        sampler: str | None = None,
        nfe: int | None = None,
        guidance: float | None = None,
        method: str | None = None,
        steps: int | None = None,
    ) -> Tensor:
        """``method``: ode (``sampler``, ``nfe``), em or pc (``steps``); ``guidance`` scales classifier-free guidance."""
        method = method or self.config.method
        if method not in METHODS:
            raise ConfigError(f"score_sde: unknown method '{method}'; methods: {', '.join(METHODS)}")
        if method == "ode":
            return super().sample(
                n, condition=condition, generator=generator, sampler=sampler, nfe=nfe, guidance=guidance
            )
        return self.reverse_sde(n, condition, generator, method, steps or self.config.steps, guidance)

    def sde_coefficients(self, t: Tensor) -> tuple[Tensor, Tensor]:
        r""":math:`(f(t), g(t)^2)` of the forward SDE, each ``(B,)``."""
        a, s, da, ds = self._path.derivatives(t)
        f = da / a
        return f, 2 * s * ds - 2 * f * s.square()

    @torch.no_grad()
    def reverse_sde(
        self,
        n: int,
        condition: Tensor | None,
        generator: torch.Generator | None,
        method: str,
        steps: int,
        guidance: float | None = None,
    ) -> Tensor:
        """Euler-Maruyama (``em``) or predictor-corrector (``pc``) from the prior at ``t = 1``; data of the stored type."""
        y = self.sampling_labels(n, condition, generator)
        device, path = self.device(), self._path
        one = torch.ones(n, device=device)
        std = float((path.alpha(one[:1]).square() + path.sigma(one[:1]).square()).sqrt())
        x = std * torch.randn((n, *self.data.shape), generator=generator, device=device)
        times = torch.linspace(1.0, self.config.t_eps, steps + 1, device=device)

        def score(x: Tensor, t: Tensor) -> Tensor:
            x0 = self.denoise(x, t, y, guidance)
            return -eps_from_x0(path, x, t, x0) / at(path.sigma(t), x)

        for i in range(steps):
            t, dt = times[i] * one, float(times[i] - times[i + 1])
            f, g2 = self.sde_coefficients(t)
            drift = at(f, x) * x - at(g2, x) * score(x, t)
            z = torch.randn(x.shape, generator=generator, device=device)
            x = x - drift * dt + at(g2 * dt, x).sqrt() * z
            if method == "pc":
                t_next = times[i + 1] * one
                for _ in range(self.config.corrector_steps):
                    s = score(x, t_next)
                    z = torch.randn(x.shape, generator=generator, device=device)
                    ratio = z.flatten(1).norm(dim=1) / s.flatten(1).norm(dim=1).clamp_min(1e-12)
                    eta = at(2 * (self.config.snr * ratio).square(), x)
                    x = x + eta * s + (2 * eta).sqrt() * z
        x0 = self.denoise(x, times[-1] * one, y, guidance)
        return self.decode(x0, generator, mode=True)
