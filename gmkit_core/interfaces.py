r"""The abstract interfaces plugins implement.

Shapes: ``B`` batch, ``D`` latent or vector dimension, images ``(B, C, H, W)``
with integer levels in ``[0, L)``. Log-densities are in nats, per example.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import attrs
import torch
from torch import Tensor, nn

from .data.dataset import Batch

if TYPE_CHECKING:
    from .data import Dataset, DataSpec

__all__ = [
    "Distribution",
    "Encoder",
    "Decoder",
    "Prior",
    "Transform",
    "NoiseSchedule",
    "Network",
    "Sampler",
    "Trainer",
    "GenerativeModel",
    "OptimizerGroup",
    "Step",
    "LIKELIHOODS",
    "likelihood_of",
    "bits_per_dim",
]


def bits_per_dim(nats: Any, dims: int) -> Any:
    """nats per example -> bits per dimension: ``nats / (dims * ln 2)`` (floats or tensors)."""
    return nats / (dims * math.log(2))


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

    ``log_prob(z)``: ``(B, *event) -> (B,)`` nats; ``sample(n, *, condition, generator)``: ``(n, *event)``
    (``condition`` for priors conditioned on labels; others ignore it).
    Standard normal, mixtures, flows and autoregressive priors over codes all
    implement it; models ask for one by name through the registry.
    """

    @abstractmethod
    def log_prob(self, z: Tensor) -> Tensor: ...

    @abstractmethod
    def sample(
        self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor: ...


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
        for name, value in (
            ("betas", betas),
            ("alphas", alphas),
            ("alphas_cumprod", abar),
            ("alphas_cumprod_prev", torch.cat([abar.new_ones(1), abar[:-1]])),
        ):
            self.register_buffer(name, value, persistent=False)

    @property
    def T(self) -> int:  # noqa: N802 - the paper's symbol
        return self.betas.numel()

    def at(self, values: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """``values[t-1]`` (e.g. ``schedule.betas``) shaped ``(B, 1, ..., 1)`` to broadcast on ``like``, in its dtype."""
        out = values.to(like.device)[t.long().to(like.device) - 1]
        return out.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))

    def posterior_variance(self, t: Tensor, like: Tensor) -> Tensor:
        r""":math:`\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t`, shaped to broadcast on ``like``."""
        abar, abar_prev = self.at(self.alphas_cumprod, t, like), self.at(self.alphas_cumprod_prev, t, like)
        return (1 - abar_prev) / (1 - abar) * self.at(self.betas, t, like)

    def q_sample(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        r""":math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon`."""
        abar = self.at(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * eps

    def q_posterior(self, x0: Tensor, xt: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        r"""Mean :math:`\tilde\mu_t(x_t, x_0)` and variance :math:`\tilde\beta_t` (broadcastable) of :math:`q(x_{t-1}\mid x_t, x_0)`."""
        beta, alpha = self.at(self.betas, t, x0), self.at(self.alphas, t, x0)
        abar, abar_prev = self.at(self.alphas_cumprod, t, x0), self.at(self.alphas_cumprod_prev, t, x0)
        mean = (abar_prev.sqrt() * beta / (1 - abar)) * x0 + (alpha.sqrt() * (1 - abar_prev) / (1 - abar)) * xt
        return mean, self.posterior_variance(t, x0)

    def snr(self, t: Tensor) -> Tensor:
        r""":math:`\bar\alpha_t / (1 - \bar\alpha_t)` for integer steps ``t`` (float64)."""
        abar = self.alphas_cumprod[t.long().to(self.alphas_cumprod.device) - 1]
        return abar / (1 - abar)


@runtime_checkable
class Network(Protocol):
    r"""A conditional network ``net(x, t, condition=None) -> Tensor`` (denoisers, score and velocity fields).

    ``x``: ``(B, *shape)`` float input; ``t``: ``(B,)`` time, either an int64
    step in ``[1, T]`` (discrete time) or a float in ``[0, 1]`` (continuous
    time), embedded by :func:`gmkit_core.nn.time_embedding`, which maps both onto
    the same frequencies; ``condition``: ``(B,)`` int64 labels (a network built
    with ``num_classes=K`` reserves label ``K`` for "no label", for
    classifier-free guidance) or ``None``. Returns ``(B, out_channels, *spatial)``
    or ``(B, D)``, as configured.
    """

    def __call__(self, x: Tensor, t: Tensor, condition: Tensor | None = None) -> Tensor: ...


class Sampler(Protocol):
    """A registered sampler: ``sampler(model, n, *, condition, generator, data) -> (n, *shape)``.

    Built by the registry from validated keyword options (an attrs ``Options``
    class or a checked signature). ``applies_to(model) -> str | None`` returns
    ``None`` when the sampler can draw from ``model``, else one line saying why
    not (e.g. "ddim needs a diffusion model"), so a wrong pairing is a clear
    error, never an AttributeError. ``needs_data``: the sampler also needs the
    training split (e.g. a post-hoc latent mixture).
    """

    needs_data: bool

    @staticmethod
    def applies_to(model: GenerativeModel) -> str | None: ...

    def __call__(
        self,
        model: GenerativeModel,
        n: int,
        *,
        condition: Tensor | None = None,
        generator: torch.Generator | None = None,
        data: Dataset | None = None,
    ) -> Tensor: ...


LIKELIHOODS = ("exact", "bound", "estimate", "none")


def likelihood_of(model: GenerativeModel) -> str:
    """The likelihood kind of a built model: ``type(model).likelihood_kind(model.data, model.config)``."""
    return type(model).likelihood_kind(model.data, model.config)


@attrs.frozen
class OptimizerGroup:
    """Parameters stepped by one optimiser of a model that owns its training step.

    ``lr``, ``betas`` and ``weight_decay`` override the trainer's settings for
    this group (``None``: use ``train.lr`` etc.); the trainer's warm-up and
    schedule scale every group's ``lr`` by the same factor.
    """

    params: tuple[nn.Parameter, ...] = attrs.field(converter=lambda ps: tuple(ps))
    lr: float | None = None
    betas: tuple[float, float] | None = None
    weight_decay: float | None = None


class Step(Protocol):
    """What the trainer hands to :meth:`GenerativeModel.train_step`.

    - ``index``: the global optimisation step (0-based);
    - ``update(name, loss)``: zero the gradients of group ``name``'s parameters,
      back-propagate ``loss``, average the gradients over processes (DDP), clip
      them (``train.grad_clip``), set the scheduled learning rate and step that
      group's optimiser. Other groups' parameters are left untouched.
    - ``next_batch()``: the next batch of the training stream (on the device),
      e.g. for several discriminator steps per generator step.
    """

    index: int

    def update(self, name: str, loss: Tensor) -> None: ...

    def next_batch(self) -> Batch: ...


class GenerativeModel(nn.Module, ABC):
    r"""What a plugin registers: a model of one family over one kind of data.

    Class attributes: ``Config`` (a frozen attrs class), ``likelihood`` (what
    :meth:`nll` returns: ``"exact"``, ``"bound"`` (an upper bound on
    :math:`-\log P(x)`, possibly in expectation over its noise), ``"estimate"``
    or ``"none"``; or a mapping from data kind ``"image"``/``"vector"`` to one
    of them), resolved by :meth:`likelihood_kind`; ``conditional`` (accepts a
    label ``condition``; an instance may set it to ``False`` when its data have
    no labels); ``train_defaults``. Models are built as ``Model(config, data_spec)``.

    - :meth:`loss` ``(batch) -> dict`` with key ``"loss"`` (a scalar, the mean
      over the batch, to minimise) and any scalars worth logging.
    - :meth:`sample` ``(n, *, condition, generator)`` -> ``(n, *shape)`` data of
      the stored type: int64 levels for images, floats for vectors.
    - :meth:`nll` ``(batch) -> (B,)`` nats of the data as stored (given the
      labels, for a conditional model).
    - To own the optimisation step (several optimisers, alternating updates),
      override :meth:`optimizer_groups` and :meth:`train_step`; state such as a
      replay buffer lives in persistent buffers, so checkpoints hold it.
    - :meth:`finish` runs a second stage after the main fit.
    """

    Config: ClassVar[type]
    likelihood: ClassVar[str | Mapping[str, str]] = "none"
    conditional: bool = False
    #: Trainer settings (fields of ``TrainConfig``) under which the default config does well.
    train_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: Any, data: DataSpec):
        super().__init__()
        self.config = config
        self.data = data
        #: The optimisation step, set by the trainer before each :meth:`loss` (for warm-ups).
        self.step = 0

    @classmethod
    def likelihood_kind(cls, data: DataSpec | None = None, config: Any = None) -> str:
        """What :meth:`nll` is on ``data`` (and ``config``): exact, bound, estimate or none.

        Reads the ``likelihood`` declaration; without ``data`` a per-kind
        declaration is shown as e.g. ``"exact (vector), bound (image)"``.
        Override only when the kind depends on the config.
        """
        declared = cls.likelihood
        if isinstance(declared, str):
            return declared
        if data is None:
            return ", ".join(f"{v} ({k})" for k, v in declared.items())
        return declared.get(data.kind, declared.get("image" if data.kind == "video" else data.kind, "none"))

    @abstractmethod
    def loss(self, batch: Batch) -> dict[str, Tensor]: ...

    @abstractmethod
    def sample(
        self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor: ...

    def nll(self, batch: Batch) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no likelihood")

    def prepare(self, train: Dataset) -> None:
        """Data-dependent initialisation before the first step of a new run (optional)."""

    def finish(self, data: dict[str, Dataset], fit: Callable[..., GenerativeModel]) -> None:
        """A second stage after the main fit, with the best weights loaded (optional).

        ``fit(module, data, **train_overrides)`` trains another model with the
        same trainer (e.g. a prior over a VQ-VAE's codes); what this method
        leaves in the module is saved as the run's weights.
        """

    def fit_history(self) -> dict[str, dict[str, list[float]]]:
        """History of fitting done outside the trainer's steps (e.g. EM iterations), ``{group: {key: values}}``.

        Merged into the run's history and drawn in its loss picture (the first key
        of a group is the x axis). Default: none.
        """
        return {}

    def describe_fit(self) -> str | None:
        """One line on fitting done outside the trainer's steps, printed after training (default: None)."""
        return None

    @property
    def picture_sample_options(self) -> dict[str, Any]:
        """Keywords of :meth:`sample` for the pictures ``gmkit train`` draws (e.g. a fast sampler); default none."""
        return {}

    def optimizer_groups(self) -> dict[str, OptimizerGroup]:
        """The optimisers of :meth:`train_step`, by name. Default: one group ``"model"`` of all trainable parameters."""
        return {"model": OptimizerGroup([p for p in self.parameters() if p.requires_grad])}

    def train_step(self, batch: Batch, step: Step) -> dict[str, Tensor]:
        """One optimisation step; returns the scalars to log (``"loss"`` among them).

        Override together with :meth:`optimizer_groups` to own the step; the
        default (``loss`` then one update) is run by the trainer's own path,
        which adds gradient accumulation and DDP's overlapped reduction.
        """
        out = self.loss(batch)
        step.update("model", out["loss"])
        return out

    @classmethod
    def owns_step(cls) -> bool:
        """True when the class overrides :meth:`train_step`."""
        return cls.train_step is not GenerativeModel.train_step

    @classmethod
    def defaults_for(cls, data: DataSpec) -> dict[str, Any]:
        """Trainer settings for ``data``: ``train_defaults``, unless a model tunes them per kind of data."""
        return dict(cls.train_defaults)

    @classmethod
    def config_for(cls, data: DataSpec) -> dict[str, Any]:
        """Model options suited to ``data`` (e.g. a deeper network for 32x32 colour images).

        The ``Config`` defaults fit the bundled 8x8 digits and 2D toys; a model
        overrides this to scale them. Options the user gives take precedence.
        """
        return {}

    @classmethod
    def configure(cls, data: DataSpec, options: Mapping[str, Any] | None = None, owner: str = "model") -> Any:
        """The ``Config`` for ``data``: :meth:`config_for`, then ``options`` on top, validated."""
        from .config import make_config

        return make_config(cls.Config, {**cls.config_for(data), **(options or {})}, owner=owner)

    def validation_score(self, data: Dataset, batch_size: int = 256) -> float:
        """What the trainer minimises on the validation split to keep the best weights.

        Default: mean :meth:`nll` in nats, or mean ``loss`` for models without a
        likelihood. Override when ``nll`` is costly (e.g. a fixed-seed estimate)
        or has no meaning (e.g. a Fréchet distance for a GAN).
        """
        if likelihood_of(self) == "none":
            return self._mean(data, batch_size, lambda b: self.loss(b)["loss"].expand(len(b)))
        return self._mean(data, batch_size, self.nll)

    def _mean(self, data: Dataset, batch_size: int, per_example: Any) -> float:
        """Mean over ``data`` of ``per_example(batch) -> (B,)``, in float64, without gradients."""
        values = self._per_example(data, batch_size, per_example)
        return float(values.sum()) / max(len(data), 1)

    def _per_example(self, data: Dataset, batch_size: int, per_example: Any) -> Tensor:
        """``per_example(batch) -> (B,)`` over all of ``data``: ``(N,)`` float64 on the CPU, without gradients."""
        device = next(self.parameters(), torch.zeros(())).device
        with torch.no_grad():
            parts = [per_example(b.to(device)).detach().double().cpu() for b in data.batches(batch_size)]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)

    @property
    def nll_is_sampled(self) -> bool:
        """True when :meth:`nll` is a Monte Carlo estimate (of a bound); ``evaluate`` then adds its standard error."""
        return False

    def marginal_nll(self, batch: Batch) -> Tensor:
        r""":math:`-\log p(x)` of a label-conditional model, :math:`p(x) = \frac1K \sum_y p(x \mid y)`, ``(B,)`` nats.

        Computed over all ``K`` labels by log-mean-exp of :meth:`nll`: exact
        where :meth:`nll` is exact; a log-mean-exp of upper bounds is an upper
        bound. Override with a cheaper valid figure of the same kind if one exists.
        """
        k = int(self.data.num_classes or 0)
        per_label = torch.stack(
            [
                self.nll(Batch(batch.x, torch.full((len(batch.x),), y, dtype=torch.long, device=batch.x.device)))
                for y in range(k)
            ],
            dim=1,
        )  # (B, K)
        return -(torch.logsumexp(-per_label.double(), dim=1) - math.log(k)).to(per_label.dtype)

    def evaluate(self, data: Dataset, batch_size: int = 256) -> dict[str, Any]:
        r"""Mean NLL over ``data`` in nats (and bits/dim for discrete data), plus model-specific metrics.

        For a conditional model on labelled data the headline ``nll_nats`` is of
        the marginal :math:`p(x)` (:meth:`marginal_nll`) and
        ``conditional_nll_nats`` is :math:`-\log p(x \mid y)`. Subclasses extend
        the dict (e.g. an IWAE bound, codebook usage); keys that hold a
        likelihood figure are in nats per example.
        """
        kind = likelihood_of(self)
        out: dict[str, Any] = {"n": len(data), "likelihood": kind, "exact": kind == "exact"}
        if kind == "none":
            return out
        if self.conditional and data.y is not None and self.data.num_classes:
            values = self._per_example(data, batch_size, self.marginal_nll)
            out["conditional_nll_nats"] = self._mean(data, batch_size, self.nll)
            out["conditional"] = True
        else:
            values = self._per_example(data, batch_size, self.nll)
        out["nll_nats"] = float(values.mean()) if len(values) else 0.0
        if self.nll_is_sampled and len(values) > 1:
            # The spread over examples includes the Monte Carlo noise of each one.
            out["nll_stderr_nats"] = float(values.std() / math.sqrt(len(values)))
        if data.spec.kind != "vector":
            for key in [k for k in out if k.endswith("nll_nats")]:
                out[key.replace("nll_nats", "bits_per_dim")] = bits_per_dim(out[key], data.spec.dims)
            if "nll_stderr_nats" in out:
                out["bits_per_dim_stderr"] = bits_per_dim(out["nll_stderr_nats"], data.spec.dims)
        return out

    def describe(self) -> str:
        """One line for progress output and ``gmkit info``."""
        params = sum(p.numel() for p in self.parameters())
        return f"{type(self).__name__} ({params:,} parameters)"


class Trainer(ABC):
    """Fits a :class:`GenerativeModel`: ``fit(model, data, config, resume=None) -> model``.

    ``data`` maps split names (``train``, ``validation``) to datasets;
    ``config`` is a :class:`~gmkit_core.training.TrainConfig`. An implementation
    owns the loop, optimisers, EMA, checkpoints, logging and distribution across
    processes. A registered trainer (kind ``trainer``, chosen with
    ``--set train.trainer=NAME``) is built as ``Trainer(checkpoint=, samples=)``:
    it calls ``checkpoint(snapshot)`` to have the run file written and
    ``samples(step, model)`` for sample grids, and sets ``self.outcome``.
    """

    @abstractmethod
    def fit(
        self, model: GenerativeModel, data: dict[str, Dataset], config: Any, resume: Any = None
    ) -> GenerativeModel: ...
