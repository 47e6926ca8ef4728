r"""Shared samplers of the probability-flow ODE for any :class:`~gmkit_core.paths.Denoiser`.

They take a denoiser function :math:`\hat x_0(x_t, t)` and a :class:`~gmkit_core.paths.GaussianPath`,
never a model class, so DDPM, VDM, score SDEs and flow matching share them. Write
:math:`\tilde\sigma = \sigma/\alpha = e^{-\lambda/2}` and :math:`\tilde x = x/\alpha`; the ODE of
every Gaussian path is then (Karras et al., 2022, arXiv:2206.00364, eq. 4 with :math:`s = 1`)

.. math:: \frac{d\tilde x}{d\tilde\sigma} = \frac{\tilde x - \hat x_0(\alpha\tilde x, t(\tilde\sigma))}{\tilde\sigma}.

- ``euler``: Euler steps in :math:`\tilde\sigma` (DDIM with :math:`\eta = 0` is this method);
- ``heun``: Karras et al.'s algorithm 1 (Heun's second-order correction on every step but the last);
- ``dpmpp_2m``: DPM-Solver++(2M) (Lu et al., 2022, arXiv:2211.01095, algorithm 2), multistep
  second order in :math:`\lambda/2 = \log(\alpha/\sigma)` on the data prediction:
  :math:`x_i = \frac{\sigma_i}{\sigma_{i-1}}x_{i-1} - \alpha_i(e^{-h_i} - 1)D_i` with
  :math:`D_i = (1 + \frac1{2r_i})\hat x_0^{(i-1)} - \frac1{2r_i}\hat x_0^{(i-2)}`, :math:`r_i = h_{i-1}/h_i`.

Grids. Every sampler starts at :math:`t_0`, where :math:`\tilde\sigma = \min(\tilde\sigma(t_{\max}), \tilde\sigma_{\max})`,
from :math:`x_{t_0} = \sigma(t_0)\,\epsilon` (the path's marginal there up to :math:`\alpha(t_0)x_0`, which
:math:`\tilde\sigma_{\max} = 80` makes negligible), visits ``N`` noise levels down to
:math:`\tilde\sigma_{\min} = \max(\tilde\sigma(t_{\min}), \text{sigma\_min})` and ends with
:math:`\hat x_0` at that last level. Euler and Heun space the levels as Karras et al. (eq. 5,
:math:`\rho = 7`); DPM-Solver++ evenly in :math:`\lambda`. The number of denoiser evaluations is
``nfe``: Euler and DPM-Solver++ take ``N = nfe`` levels, Heun ``N = (nfe + 1) // 2`` (``2N - 1``
evaluations). Given the seed, every sampler is deterministic (the only noise is :math:`x_{t_0}`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import torch
from attrs.validators import ge, gt, instance_of, optional
from torch import Tensor

from .errors import ConfigError
from .paths import Denoiser, GaussianPath

__all__ = ["SOLVERS", "SolverOptions", "noise_levels", "solve", "ODESampler", "Euler", "Heun", "DPMSolverPP2M"]

SOLVERS = ("euler", "heun", "dpmpp_2m")

#: ``denoise(x_t, t) -> x0_hat`` with ``t`` a ``(B,)`` float tensor.
DenoiseFn = Callable[[Tensor, Tensor], Tensor]


@attrs.frozen
class SolverOptions:
    """Options of the shared samplers (``--option nfe=20``)."""

    nfe: int = attrs.field(
        default=20,
        validator=[instance_of(int), ge(1)],
        metadata={"help": "denoiser evaluations (Heun: the largest odd count <= nfe)"},
    )
    guidance: float | None = attrs.field(
        default=None,
        validator=optional(instance_of((int, float))),
        metadata={"help": "classifier-free guidance scale (None: the model's)"},
    )
    sigma_max: float = attrs.field(
        default=80.0, validator=gt(0), metadata={"help": "largest sigma/alpha visited (Karras et al.: 80)"}
    )
    sigma_min: float = attrs.field(
        default=0.002, validator=gt(0), metadata={"help": "smallest sigma/alpha visited before the last x0-hat"}
    )
    rho: float = attrs.field(default=7.0, validator=gt(0), metadata={"help": "euler/heun: level spacing exponent"})


def noise_levels(
    path: GaussianPath, n: int, method: str, options: SolverOptions, device: torch.device | str = "cpu"
) -> tuple[Tensor, Tensor]:
    r"""``(t, log_snr)``, each ``(n,)`` float64 and decreasing in noise: the levels visited (see the module docstring)."""
    if method not in SOLVERS:
        raise ConfigError(f"unknown solver '{method}'; solvers: {', '.join(SOLVERS)}")
    ends = torch.tensor([path.t_max, path.t_min], dtype=torch.get_default_dtype(), device=device)
    lam_ends = path.log_snr(ends).double()
    lam_hi = max(float(lam_ends[0]), -2 * math.log(options.sigma_max))  # log-SNR at the start
    lam_lo = min(float(lam_ends[1]), -2 * math.log(options.sigma_min))  # log-SNR at the last level
    if lam_lo <= lam_hi:
        raise ConfigError(
            f"sampler: sigma_min={options.sigma_min} must be below sigma_max={options.sigma_max} and the path's range"
        )
    if n == 1:
        lam = torch.tensor([lam_hi], dtype=torch.float64)
    elif method == "dpmpp_2m":
        lam = torch.linspace(lam_hi, lam_lo, n, dtype=torch.float64)
    else:
        s_hi, s_lo = math.exp(-lam_hi / 2) ** (1 / options.rho), math.exp(-lam_lo / 2) ** (1 / options.rho)
        sig = torch.linspace(s_hi, s_lo, n, dtype=torch.float64) ** options.rho
        lam = -2 * sig.log()
    lam = lam.to(device)
    t = path.time_at(lam.to(torch.get_default_dtype())).double()
    if lam_hi == float(lam_ends[0]):
        t[0] = path.t_max
    if lam_lo == float(lam_ends[1]) and n > 1:
        t[-1] = path.t_min
    return t, lam


def solve(
    method: str, denoise: DenoiseFn, path: GaussianPath, x: Tensor, nfe: int, options: SolverOptions | None = None
) -> Tensor:
    r"""Integrate the probability-flow ODE from ``x`` (at the first level) to :math:`\hat x_0`; ``(B, *shape)``.

    ``x`` must be drawn at the first level of :func:`noise_levels`; :meth:`ODESampler.start`
    does that. Uses exactly ``nfe`` denoiser calls (Heun: ``2N - 1 <= nfe``).
    """
    options = options or SolverOptions(nfe=nfe)
    steps = (nfe + 1) // 2 if method == "heun" else nfe
    t, lam = noise_levels(path, steps, method, options, x.device)
    if method == "dpmpp_2m":
        return _dpmpp_2m(denoise, path, x, t, lam)
    return _edm(denoise, path, x, t, lam, heun=method == "heun")


def _at(t: float, x: Tensor) -> Tensor:
    return torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)


def _edm(denoise: DenoiseFn, path: GaussianPath, x: Tensor, t: Tensor, lam: Tensor, heun: bool) -> Tensor:
    """Euler (``heun=False``) or Heun steps in ``sigma~`` over the levels, then x0-hat at the last one."""
    sig = (-lam / 2).exp()  # sigma~_i = sigma/alpha
    alpha = path.alpha(t.to(x.dtype)).double()
    xs = x.double() / float(alpha[0])  # x~ = x / alpha
    n = len(t)
    for i in range(n):
        ti = _at(float(t[i]), x)
        d0 = denoise((float(alpha[i]) * xs).to(x.dtype), ti).double()
        if i == n - 1:
            return d0.to(x.dtype)
        d = (xs - d0) / sig[i]
        nxt = xs + (sig[i + 1] - sig[i]) * d
        if heun:
            d1 = denoise((float(alpha[i + 1]) * nxt).to(x.dtype), _at(float(t[i + 1]), x)).double()
            nxt = xs + (sig[i + 1] - sig[i]) * 0.5 * (d + (nxt - d1) / sig[i + 1])
        xs = nxt
    raise AssertionError("unreachable")


def _dpmpp_2m(denoise: DenoiseFn, path: GaussianPath, x: Tensor, t: Tensor, lam: Tensor) -> Tensor:
    """DPM-Solver++(2M) over the levels (first order on the first step), then x0-hat at the last one."""
    tt = t.to(x.dtype)
    alpha, sigma = path.alpha(tt).double(), path.sigma(tt).double()
    xs, prev, h_prev = x.double(), None, 1.0
    for i in range(len(t)):
        d0 = denoise(xs.to(x.dtype), _at(float(t[i]), x)).double()
        if i == len(t) - 1:
            return d0.to(x.dtype)
        h = float(lam[i + 1] - lam[i]) / 2  # in half log-SNR, log(alpha / sigma), as the paper's lambda
        d = d0 if prev is None else (1 + h / (2 * h_prev)) * d0 - (h / (2 * h_prev)) * prev
        xs = float(sigma[i + 1] / sigma[i]) * xs - float(alpha[i + 1]) * math.expm1(-h) * d
        prev, h_prev = d0, h
    raise AssertionError("unreachable")


class ODESampler:
    """A registered sampler (kind ``sampler``) running :func:`solve` on a :class:`~gmkit_core.paths.Denoiser`.

    ``ODESampler(nfe=20, guidance=None, sigma_max=80, sigma_min=0.002, rho=7)``; called as
    ``sampler(model, n, condition=None, generator=None)``; returns data of the stored type
    (images: the nearest level of :math:`\\hat x_0`).
    """

    method: ClassVar[str] = ""
    needs_data: ClassVar[bool] = False

    def __init__(self, **options: Any):
        from .config import make_config

        self.options: SolverOptions = make_config(SolverOptions, options, owner=f"sampler '{self.method}'")

    @staticmethod
    def applies_to(model: Any) -> str | None:
        """``None`` when ``model`` exposes ``path()`` and ``denoise()``, else why not."""
        missing = [m for m in ("path", "denoise", "decode", "sampling_labels") if not callable(getattr(model, m, None))]
        if missing:
            return (
                f"the ODE samplers need a diffusion-like model with path() and denoise(); "
                f"{type(model).__name__} has no {', '.join(missing)}"
            )
        return None

    @property
    def nfe(self) -> int:
        """Denoiser evaluations per sample batch."""
        n = self.options.nfe
        return 2 * ((n + 1) // 2) - 1 if self.method == "heun" else n

    def start(self, model: Denoiser, n: int, generator: torch.Generator | None) -> Tensor:
        r""":math:`x_{t_0} = \sigma(t_0)\epsilon`, ``(n, *shape)`` on the model's device."""
        device = next(iter(model.parameters()), torch.zeros(())).device if hasattr(model, "parameters") else "cpu"
        path = model.path()
        t, _ = noise_levels(path, 1, self.method, self.options, device)
        eps = torch.randn((n, *model.data.shape), generator=generator, device=device)
        return float(path.sigma(t.to(eps.dtype))[0]) * eps

    @torch.no_grad()
    def __call__(
        self,
        model: Any,
        n: int,
        *,
        condition: Tensor | None = None,
        generator: torch.Generator | None = None,
        data: Any = None,
    ) -> Tensor:
        problem = self.applies_to(model)
        if problem:
            raise ConfigError(f"sampler '{self.method}': {problem}")
        y = model.sampling_labels(n, condition, generator)
        x = self.start(model, n, generator)
        guidance = self.options.guidance

        def denoise(xt: Tensor, t: Tensor) -> Tensor:
            return model.denoise(xt, t, y, guidance)

        x0 = solve(self.method, denoise, model.path(), x, self.options.nfe, self.options)
        return model.decode(x0, None, mode=True)


class Euler(ODESampler):
    """Euler on the probability-flow ODE in sigma/alpha (DDIM, eta = 0)."""

    method = "euler"


class Heun(ODESampler):
    """Karras et al.'s second-order Heun sampler (2N - 1 evaluations for N levels)."""

    method = "heun"


class DPMSolverPP2M(ODESampler):
    """DPM-Solver++(2M): second-order multistep in log-SNR on the x0 prediction."""

    method = "dpmpp_2m"
