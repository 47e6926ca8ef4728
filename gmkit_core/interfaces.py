r"""The abstract interfaces plugins implement.

Shapes: ``B`` batch, ``D`` latent or vector dimension, images ``(B, C, H, W)``
with integer levels in ``[0, L)``. Log-densities are in nats, per example.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from .data import Batch, Dataset, DataSpec

__all__ = [
    "Distribution", "Encoder", "Decoder", "Prior", "Transform", "NoiseSchedule",
    "Trainer", "GenerativeModel",
]


class Distribution(Protocol):
    """What encoders and decoders return: ``log_prob(x) -> (B,)`` nats and ``sample(generator)``."""

    def log_prob(self, x: Tensor) -> Tensor: ...

    def sample(self, generator: torch.Generator | None = None) -> Tensor: ...


class Encoder(nn.Module, ABC):
    r"""``x`` (and an optional condition) -> :math:`q(z \mid x)`.

    Returns a distribution with reparameterised ``rsample`` and ``log_prob``
    (and ``kl`` in closed form where one exists, e.g. :class:`~gmkit_core.distributions.Normal`),
    or, for vector quantisation, the deterministic ``z_e`` as a tensor.
    """

    @abstractmethod
    def forward(self, x: Tensor, condition: Tensor | None = None) -> Any: ...


class Decoder(nn.Module, ABC):
    r"""``z`` (and an optional condition) -> :math:`p(x \mid z)`.

    ``log_prob(x)`` is evaluated on the data as stored (integer levels for
    images, so it is a probability mass, not a density); ``sample()`` returns
    data of the stored type.
    """

    @abstractmethod
    def forward(self, z: Tensor, condition: Tensor | None = None) -> Distribution: ...


class Prior(nn.Module, ABC):
    r"""A distribution :math:`p(z)` over latents of shape ``(*event)``.

    ``log_prob(z)``: ``(B, *event) -> (B,)`` nats; ``sample(n)``: ``(n, *event)``.
    Standard normal, mixtures, flows and autoregressive priors over codes all
    implement it; models ask for one by name through the registry.
    """

    @abstractmethod
    def log_prob(self, z: Tensor) -> Tensor: ...

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...


class Transform(nn.Module, ABC):
    r"""A bijection :math:`y = f(x)` with its log-Jacobian determinant.

    ``forward(x) -> (y, log|det J_f(x)|)`` and ``inverse(y) -> (x, log|det J_{f^{-1}}(y)|)``,
    log-dets of shape ``(B,)``; so ``inverse`` returns minus the forward log-det
    at the matching point. Composition sums log-dets
    (:class:`~gmkit_core.transforms.Compose`).
    """

    @abstractmethod
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]: ...

    @abstractmethod
    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]: ...


class NoiseSchedule(nn.Module):
    r"""A discrete-time Gaussian diffusion :math:`q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1-\beta_t}\,x_{t-1}, \beta_t I)`.

    Built from ``betas`` (length ``T``, float64; index ``t-1`` holds step ``t``).
    With :math:`\alpha_t = 1-\beta_t` and :math:`\bar\alpha_t = \prod_{s \le t}\alpha_s`:

    - :math:`q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0, (1-\bar\alpha_t) I)` (:meth:`q_sample`);
    - :math:`q(x_{t-1} \mid x_t, x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I)` with
      :math:`\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}x_0 + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t`
      and :math:`\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t` (:meth:`q_posterior`);
    - :math:`\mathrm{SNR}(t) = \bar\alpha_t / (1-\bar\alpha_t)` (:meth:`snr`).

    Steps ``t`` are integer tensors in ``[1, T]``, one per example; ``x`` is ``(B, *)``.
    Subclasses only supply ``betas``. Reference: Ho et al. (2020, arXiv:2006.11239), eqs. 4, 6, 7.
    """

    betas: Tensor
    alphas: Tensor
    alphas_cumprod: Tensor
    alphas_cumprod_prev: Tensor

    def __init__(self, betas: Tensor):
        super().__init__()
        betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
        if betas.numel() == 0 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must be a non-empty sequence of values in (0, 1)")
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, 0)
        for name, value in (("betas", betas), ("alphas", alphas), ("alphas_cumprod", abar),
                            ("alphas_cumprod_prev", torch.cat([abar.new_ones(1), abar[:-1]]))):
            self.register_buffer(name, value, persistent=False)

    @property
    def T(self) -> int:  # noqa: N802 - the paper's symbol
        return self.betas.numel()

    def _at(self, values: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """``values[t-1]`` shaped ``(B, 1, ..., 1)`` to broadcast against ``like``, in its dtype."""
        out = values.to(like.device)[t.long().to(like.device) - 1]
        return out.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))

    def q_sample(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        r""":math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon`."""
        abar = self._at(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * eps

    def q_posterior(self, x0: Tensor, xt: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        r"""Mean :math:`\tilde\mu_t(x_t, x_0)` and variance :math:`\tilde\beta_t` (broadcastable) of :math:`q(x_{t-1}\mid x_t, x_0)`."""
        beta, alpha = self._at(self.betas, t, x0), self._at(self.alphas, t, x0)
        abar, abar_prev = self._at(self.alphas_cumprod, t, x0), self._at(self.alphas_cumprod_prev, t, x0)
        mean = (abar_prev.sqrt() * beta / (1 - abar)) * x0 + (alpha.sqrt() * (1 - abar_prev) / (1 - abar)) * xt
        return mean, (1 - abar_prev) / (1 - abar) * beta

    def snr(self, t: Tensor) -> Tensor:
        r""":math:`\bar\alpha_t / (1 - \bar\alpha_t)` for integer steps ``t`` (float64)."""
        abar = self.alphas_cumprod[t.long().to(self.alphas_cumprod.device) - 1]
        return abar / (1 - abar)


class GenerativeModel(nn.Module, ABC):
    """What a plugin registers: a model of one family over one kind of data.

    Subclasses declare ``Config`` (a frozen attrs class), ``likelihood``
    (``"exact"``, ``"bound"`` or ``"none"``: what :meth:`nll` returns) and
    ``conditional``; they are built as ``Model(config, data_spec)``.

    - :meth:`loss` ``(batch) -> dict`` with key ``"loss"`` (a scalar, the mean
      over the batch, to minimise) and any scalars worth logging.
    - :meth:`sample` ``(n, condition, generator)`` -> ``(n, *shape)`` data of the
      stored type: int64 levels for images, floats for vectors.
    - :meth:`nll` ``(batch) -> (B,)`` nats of the data as stored: exact, or an
      upper bound (then it is ``-log p`` of a lower bound such as the ELBO).
    """

    Config: ClassVar[type]
    likelihood: ClassVar[str] = "none"
    conditional: ClassVar[bool] = False
    #: Trainer settings (fields of ``TrainConfig``) under which the default config does well.
    train_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: Any, data: DataSpec):
        super().__init__()
        self.config = config
        self.data = data
        #: The optimisation step, set by the trainer before each :meth:`loss` (for warm-ups).
        self.step = 0

    @abstractmethod
    def loss(self, batch: Batch) -> dict[str, Tensor]: ...

    @abstractmethod
    def sample(self, n: int, condition: Tensor | None = None,
               generator: torch.Generator | None = None) -> Tensor: ...

    def nll(self, batch: Batch) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no likelihood")

    def prepare(self, train: Dataset) -> None:
        """Data-dependent initialisation before the first step of a new run (optional)."""

    @classmethod
    def defaults_for(cls, data: DataSpec) -> dict[str, Any]:
        """Trainer settings for ``data``: ``train_defaults``, unless a model tunes them per kind of data."""
        return dict(cls.train_defaults)

    def validation_score(self, data: Dataset, batch_size: int = 256) -> float:
        """What the trainer minimises on the validation split to keep the best weights.

        Default: mean :meth:`nll` in nats, or mean ``loss`` for models without a
        likelihood. Override when ``nll`` is costly (e.g. a fixed-seed estimate).
        """
        if self.likelihood == "none":
            return self._mean(data, batch_size, lambda b: self.loss(b)["loss"].expand(len(b)))
        return self._mean(data, batch_size, self.nll)

    def _mean(self, data: Dataset, batch_size: int, per_example: Any) -> float:
        """Mean over ``data`` of ``per_example(batch) -> (B,)``, in float64, without gradients."""
        device = next(self.parameters(), torch.zeros(())).device
        with torch.no_grad():
            total = sum(float(per_example(b.to(device)).double().sum()) for b in data.batches(batch_size))
        return total / max(len(data), 1)

    def evaluate(self, data: Dataset, batch_size: int = 256) -> dict[str, Any]:
        """Mean NLL over ``data`` in nats (and bits/dim for images), plus model-specific metrics.

        Subclasses extend the dict (e.g. an IWAE bound, codebook usage); keys that
        hold a likelihood figure are in nats per example.
        """
        out: dict[str, Any] = {"n": len(data), "exact": self.likelihood == "exact"}
        if self.likelihood == "none":
            return out
        out["nll_nats"] = self._mean(data, batch_size, self.nll)
        if data.spec.is_image:
            out["bits_per_dim"] = out["nll_nats"] / (data.spec.dims * math.log(2))
        return out

    def describe(self) -> str:
        """One line for progress output and ``gmkit info``."""
        params = sum(p.numel() for p in self.parameters())
        return f"{type(self).__name__} ({params:,} parameters)"


class Trainer(ABC):
    """Fits a :class:`GenerativeModel`: ``fit(model, data, config) -> model``.

    ``data`` maps split names (``train``, ``validation``) to datasets. An
    implementation owns the loop, optimiser, EMA, checkpoints, logging and
    distribution across processes.
    """

    @abstractmethod
    def fit(self, model: GenerativeModel, data: dict[str, Dataset], config: Any) -> GenerativeModel: ...
