r"""Samplers for :class:`~gmkit_diffusion.model.DDPM`: ancestral DDPM and DDIM.

Both are registered components (kind ``sampler``), built from validated options
(an attrs ``Options`` class each, so ``--option steps=abc`` is a one-line error naming
``steps``), applicable to ``ddpm`` models only (:meth:`DDPMSampler.applies_to`), and
called as ``sampler(model, n, *, condition=None, generator=None, data=None)``; every
random draw uses ``generator``, so a seed fixes the samples. ``guidance`` (``s``) is the
classifier-free guidance scale (Ho & Salimans, 2022, arXiv:2207.12598):
:math:`\hat\epsilon = \hat\epsilon(x_t, \varnothing) + s(\hat\epsilon(x_t, y) - \hat\epsilon(x_t, \varnothing))`;
``None`` takes the model's configured scale, ``1`` is the plain conditional model.

- :class:`DDPMSampler` (Ho et al., 2020, arXiv:2006.11239, algorithm 2): for
  :math:`t = T, \dots, 2`, :math:`x_{t-1} = \tilde\mu_t(x_t, \hat x_0) + \sigma_t z`, then
  :math:`x_0 \sim p_\theta(x_0 \mid x_1)` (the decoder of the bound).
- :class:`DDIMSampler` (Song et al., 2021, arXiv:2010.02502, eq. 12) on ``steps``
  steps :math:`\tau_S = T > \dots > \tau_1 = 1`:

  .. math:: x_{\tau_{i-1}} = \sqrt{\bar\alpha_{\tau_{i-1}}}\,\hat x_0
            + \sqrt{1-\bar\alpha_{\tau_{i-1}}-\sigma_i^2}\,\hat\epsilon + \sigma_i z, \quad
            \sigma_i = \eta\sqrt{\frac{1-\bar\alpha_{\tau_{i-1}}}{1-\bar\alpha_{\tau_i}}}
                       \sqrt{1-\frac{\bar\alpha_{\tau_i}}{\bar\alpha_{\tau_{i-1}}}},

  ending at :math:`\hat x_0(x_{\tau_1}, \tau_1)`, binned to the nearest level
  for images (the decoder's mode) when :math:`\eta = 0`, drawn from the decoder
  otherwise. With :math:`\eta = 0` the map :math:`x_T \mapsto x_{\tau_1}` is a
  deterministic ODE discretisation; :meth:`DDIMSampler.invert` runs it backwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import torch
from attrs.validators import ge
from torch import Tensor
from tqdm.auto import tqdm

from gmkit_core.config import option
from gmkit_core.sampling import ConfiguredSampler

if TYPE_CHECKING:
    from .model import DDPM

__all__ = ["DDPMSampler", "DDIMSampler"]


def progress_bar(steps: Any, enabled: bool, desc: str) -> Any:
    # disable=None: tqdm stays quiet when stderr is not a terminal (CI, pipes).
    return tqdm(steps, desc=desc, leave=False, disable=None if enabled else True)


def _full(n: int, t: int, like: Tensor) -> Tensor:
    return torch.full((n,), t, dtype=torch.long, device=like.device)


def _guidance() -> Any:
    return option(None, "classifier-free guidance scale s (default: the model's guidance; 1: plain conditional)")


def _progress_option() -> Any:
    return option(True, "show a progress bar on a terminal")


class _DiffusionSampler(ConfiguredSampler):
    @staticmethod
    def applies_to(model: Any) -> str | None:
        from .model import DDPM

        if isinstance(model, DDPM):
            return None
        return f"it draws from diffusion models (ddpm), not {type(model).__name__}"

    @property
    def guidance(self) -> float | None:
        return self.options.guidance

    @property
    def progress(self) -> bool:
        return self.options.progress


class DDPMSampler(_DiffusionSampler):
    """Ancestral sampling over all ``T`` steps."""

    name = "ddpm"

    @attrs.frozen
    class Options:
        guidance: float | None = _guidance()
        progress: bool = _progress_option()

    @torch.no_grad()
    def __call__(
        self,
        model: DDPM,
        n: int,
        *,
        condition: Tensor | None = None,
        generator: torch.Generator | None = None,
        data: Any = None,
    ) -> Tensor:
        sched, g = model.schedule, self.guidance
        y = model.sampling_labels(n, condition, generator)
        x = model.noise((n, *model.data.shape), generator)  # (n, *shape) = x_T
        for t in progress_bar(range(sched.T, 1, -1), self.progress, "ddpm"):
            tt = _full(n, t, x)
            x0 = model.denoise(x, tt, y, g)
            mean, _ = sched.q_posterior(x0, x, tt)
            x = mean + model.reverse_variance(tt, x).sqrt() * model.noise(x.shape, generator)
        return model.decode(model.denoise(x, _full(n, 1, x), y, g), generator)


class DDIMSampler(_DiffusionSampler):
    """DDIM on ``steps`` evenly spaced steps with stochasticity ``eta`` (0: deterministic)."""

    name = "ddim"

    @attrs.frozen
    class Options:
        steps: int = option(50, "number of steps tau_S = T > ... > tau_1 = 1 (at most T)", ge(1))
        eta: float = option(0.0, "stochasticity: 0 deterministic (an ODE step), 1 ancestral-like", ge(0.0))
        guidance: float | None = _guidance()
        progress: bool = _progress_option()

    @property
    def steps(self) -> int:
        return self.options.steps

    @property
    def eta(self) -> float:
        return self.options.eta

    def timesteps(self, T: int) -> list[int]:  # noqa: N803
        """:math:`\\tau_S = T > \\dots > \\tau_1 = 1`, evenly spaced and distinct (at most ``T`` of them)."""
        grid = torch.linspace(T, 1, min(self.steps, T), dtype=torch.float64).round().long()
        return sorted(set(grid.tolist()), reverse=True)

    def _abar(self, model: DDPM, t: int) -> float:
        return 1.0 if t == 0 else float(model.schedule.alphas_cumprod[t - 1])

    @torch.no_grad()
    def generate(
        self, model: DDPM, x: Tensor, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Run ``x_T -> x_{tau_1}`` and return :math:`\\hat x_0(x_{\\tau_1}, \\tau_1)` (continuous, model space)."""
        taus, n = self.timesteps(model.schedule.T), x.shape[0]
        for t, t_prev in progress_bar(list(zip(taus, taus[1:] + [0], strict=True)), self.progress, "ddim"):
            x0 = model.denoise(x, _full(n, t, x), y, self.guidance)
            if t_prev == 0:
                return x0
            a, a_prev = self._abar(model, t), self._abar(model, t_prev)
            eps = (x - a**0.5 * x0) / (1 - a) ** 0.5
            sigma = self.eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)) ** 0.5
            x = a_prev**0.5 * x0 + max(1 - a_prev - sigma**2, 0.0) ** 0.5 * eps
            if sigma > 0:
                x = x + sigma * model.noise(x.shape, generator)
        raise AssertionError("unreachable: the last step goes to t = 0")

    @torch.no_grad()
    def invert(self, model: DDPM, x: Tensor, y: Tensor | None = None) -> Tensor:
        r"""DDIM encoding (eta = 0): :math:`x_{\tau_1} \mapsto x_T` along the same steps, backwards.

        Each step keeps :math:`(\hat x_0, \hat\epsilon)` of the current point and moves
        it to the next noise level, :math:`x_{\tau_{i+1}} = \sqrt{\bar\alpha_{\tau_{i+1}}}\hat x_0
        + \sqrt{1-\bar\alpha_{\tau_{i+1}}}\hat\epsilon`; the error against :meth:`generate`
        vanishes as the steps get finer.
        """
        taus, n = self.timesteps(model.schedule.T)[::-1], x.shape[0]
        for t, t_next in zip(taus[:-1], taus[1:], strict=True):
            x0 = model.denoise(x, _full(n, t, x), y, self.guidance)
            a, a_next = self._abar(model, t), self._abar(model, t_next)
            eps = (x - a**0.5 * x0) / (1 - a) ** 0.5
            x = a_next**0.5 * x0 + (1 - a_next) ** 0.5 * eps
        return x

    @torch.no_grad()
    def __call__(
        self,
        model: DDPM,
        n: int,
        *,
        condition: Tensor | None = None,
        generator: torch.Generator | None = None,
        data: Any = None,
    ) -> Tensor:
        y = model.sampling_labels(n, condition, generator)
        x0 = self.generate(model, model.noise((n, *model.data.shape), generator), y, generator)
        return model.decode(x0, generator if self.eta > 0 else None, mode=self.eta == 0)
