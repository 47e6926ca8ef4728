r"""The ``ebm`` and ``jem`` models: :math:`p(x) = e^{-E_\theta(x)} / Z` on a box :math:`B`.

Support. The density lives on a box :math:`B`, so :math:`Z = \int_B e^{-E}` is
finite for any continuous energy and SGLD clips its chains to :math:`B`:

- vectors: :math:`B` is the training range widened by ``margin`` times the range
  on each side (fixed in :meth:`EBM.prepare`);
- images: levels :math:`k \in \{0..L-1\}` sit at the bin centres
  :math:`c_k = 2k/(L-1) - 1` of bins of half-width :math:`h = 1/(L-1)`, and
  :math:`B = [-1-h, 1+h]^D` is exactly the union of the bins. Training data are
  the centres plus :math:`\mathcal N(0, \text{dequant\_noise}^2)` noise (clipped to :math:`B`).

Likelihoods (:meth:`EBM.nll`):

- vectors with :math:`D \le 2`: :math:`-\log p(x) = E(x) + \log Z`, with :math:`\log Z`
  from the midpoint rule on a grid over :math:`B` (``"exact"`` up to the reported
  quadrature error ``log_z_error``, see :mod:`gmkit_ebm.partition`);
- images: the probability of the discrete image is the mass of its bin,
  :math:`P(x) = \frac1Z \int_{\text{bin}(x)} e^{-E(y)}dy` (these masses sum to one over all
  images). :meth:`EBM.nll` returns
  :math:`-\log\big(V_\text{bin}\,\frac1S\sum_s e^{-E(c(x)+u_s)}\big) + \log\hat Z`,
  :math:`u_s \sim U(\text{bin})`, with :math:`\log\hat Z` from AIS: an ``"estimate"``, neither
  exact nor a bound (the bin average is unbiased for the bin mass but its log is
  biased low, raising the NLL; :math:`\log\hat Z` is biased low, lowering it).
  Vectors with :math:`D > 2` use :math:`E(x) + \log\hat Z` (also an estimate).

Training (:meth:`EBM.train_step`, the model owns its step): ``objective`` cd
(SGLD negatives from a persistent replay buffer or short runs from noise),
dsm or nce (:mod:`gmkit_ebm.objectives`); every step checks for divergence and
logs ``e_data``, ``e_sample`` and ``buffer_age``.

``jem`` (Grathwohl et al., 2019, arXiv:1912.03263) reads logits :math:`f(x) \in \mathbb R^K`
from the same networks, :math:`E(x) = -\log\sum_y e^{f(x)[y]}`, and adds the
cross-entropy of :math:`p(y \mid x) = \operatorname{softmax} f(x)` to the generative loss.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gmkit_core.data import Batch, Dataset, DataSpec
from gmkit_core.distributions import to_unit_interval
from gmkit_core.errors import ConfigError, DataError, TrainingError
from gmkit_core.interfaces import GenerativeModel, OptimizerGroup, Step

from .buffer import ReplayBuffer, uniform
from .config import EBMConfig, JEMConfig
from .langevin import langevin
from .networks import energy_network
from .objectives import GaussianNoise, contrastive_divergence, denoising_score_matching, noise_contrastive
from .partition import AISResult, GridResult, ais_log_partition, grid_log_partition
from .translate import random_translate

__all__ = ["EBM", "JEM"]


class EBM(GenerativeModel):
    """Energy-based model; see the module docstring for the support, the likelihoods and the training."""

    Config: ClassVar[type[EBMConfig]] = EBMConfig
    likelihood: ClassVar[str | dict[str, str]] = {"vector": "exact", "image": "estimate"}
    #: outputs of the network: 1 (the energy); JEM reads K logits
    outputs: ClassVar[int | None] = 1

    low: Tensor
    high: Tensor
    loc: Tensor
    scale: Tensor

    def __init__(self, config: EBMConfig, data: DataSpec):
        super().__init__(config, data)
        if data.kind not in ("image", "vector"):
            raise DataError(
                f"{data.name}: {type(self).__name__.lower()} models images (C, H, W) or vectors, not {data.kind} data"
            )
        if data.is_image and not data.levels:
            raise DataError(f"{data.name}: {type(self).__name__.lower()} needs the number of levels of image data")
        out = self.outputs or int(data.num_classes or 0)
        self.net = energy_network(
            data.shape,
            out,
            image=data.is_image,
            hidden=config.hidden,
            depth=config.depth,
            channels=config.channels,
            spectral=config.spectral_norm,
        )
        half = 1.0 / (data.levels - 1) if data.is_image else 1.0  # type: ignore[operator]
        self.register_buffer("low", torch.full(data.shape, -1.0 - half))
        self.register_buffer("high", torch.full(data.shape, 1.0 + half))
        self.register_buffer("loc", torch.zeros(data.shape))  # vectors: the network sees (x - loc) / scale
        self.register_buffer("scale", torch.ones(data.shape))
        persistent = self.objective == "cd" and config.sampler == "persistent"
        self.buffer = ReplayBuffer(config.buffer_size if persistent else 0, data.shape)
        self.noise_model = GaussianNoise(data.dims) if self.objective == "nce" else None
        self.log_z_nce = nn.Parameter(torch.zeros(())) if self.objective == "nce" else None
        self._partition: tuple[Any, GridResult | AISResult] | None = None

    # -- per-data defaults ------------------------------------------------------------
    @classmethod
    def likelihood_kind(cls, data: DataSpec | None = None, config: Any = None) -> str:
        """``exact`` on vectors of at most 2 dimensions (grid), ``estimate`` (AIS) on images and wider vectors."""
        if data is not None and data.kind == "vector" and data.dims > 2:
            return "estimate"
        return super().likelihood_kind(data, config)

    @classmethod
    def defaults_for(cls, data: DataSpec) -> dict[str, Any]:
        """Vectors: sized for the default ``nce`` (one network pass per step); images: for ``cd`` with SGLD."""
        if data.kind == "vector":
            return {
                "steps": 12000,
                "batch_size": 256,
                "lr": 1e-3,
                "schedule": "cosine",
                "eval_every": 1000,
                "eval_batch_size": 2000,
            }
        return {"steps": 3000, "batch_size": 64, "lr": 1e-4, "eval_every": 1000, "checkpoint_every": 1000}

    @property
    def objective(self) -> str:
        """``objective``, by default ``nce`` on vectors and ``cd`` on images (see docs/models/ebm.md for why)."""
        if self.config.objective is not None:
            return str(self.config.objective)
        return "cd" if self.data.is_image else "nce"

    @property
    def step_size(self) -> float:
        if self.config.step_size is not None:
            return float(self.config.step_size)
        return 1.0 if self.data.is_image else 0.01

    @property
    def noise(self) -> float:
        if self.config.noise is not None:
            return float(self.config.noise)
        return 0.01 if self.data.is_image else math.sqrt(2 * self.step_size)

    @property
    def alpha(self) -> float:
        if self.config.alpha is not None:
            return float(self.config.alpha)
        return 0.1 if self.data.is_image else 0.001

    @property
    def sample_steps(self) -> int:
        if self.config.sample_steps is not None:
            return int(self.config.sample_steps)
        return self.config.sgld_steps * (10 if self.config.sampler == "persistent" else 1)

    # -- the energy -------------------------------------------------------------------
    def energy(self, x: Tensor) -> Tensor:
        """:math:`E(x)` ``(B,)`` for ``x`` ``(B, *shape)`` in data units (images: on :math:`[-1-h, 1+h]`)."""
        return self.net((x - self.loc) / self.scale).squeeze(-1)

    def continuous(self, x: Tensor, noise: float = 0.0) -> Tensor:
        """Data as stored -> points of :math:`B`: vectors unchanged; images at their bin centres plus ``noise``."""
        if not self.data.is_image:
            return x.to(self.low.dtype)
        y = to_unit_interval(x, int(self.data.levels), self.low.dtype)  # type: ignore[arg-type]
        if noise > 0:
            y = torch.minimum(torch.maximum(y + noise * torch.randn_like(y), self.low), self.high)
        return y

    def quantize(self, y: Tensor) -> Tensor:
        """Points of :math:`B` -> int64 levels of the bin holding them (vectors: unchanged)."""
        if not self.data.is_image:
            return y
        levels = int(self.data.levels)  # type: ignore[arg-type]
        return torch.round((y + 1) * (levels - 1) / 2).clamp(0, levels - 1).long()

    def _langevin(self, x: Tensor, steps: int, generator: torch.Generator | None = None) -> Tensor:
        return langevin(self.energy, x, steps, self.step_size, self.noise, self.low, self.high, generator)

    # -- training -----------------------------------------------------------------------
    @torch.no_grad()
    def prepare(self, train: Dataset) -> None:
        """Vectors: the box and the input scaling from the training data. Then the buffer and the NCE noise."""
        if not self.data.is_image:
            x = train.x.to(self.low.device, self.low.dtype)
            lo, hi = x.min(0).values, x.max(0).values
            span = (hi - lo).clamp_min(1e-6)
            self.low.copy_(lo - self.config.margin * span)
            self.high.copy_(hi + self.config.margin * span)
            self.loc.copy_(x.mean(0))
            self.scale.copy_(x.std(0).clamp_min(1e-6))
        if len(self.buffer):
            self.buffer.fill(self.low, self.high)
        if self.noise_model is not None:
            self.noise_model.fit(self.continuous(train.x.to(self.low.device), self.config.dequant_noise))

    def negatives(self, n: int) -> Tensor:
        """``n`` SGLD samples for cd: refined buffer chains (stored back) or short runs from uniform noise."""
        k = self.config.sgld_steps
        if len(self.buffer):
            index, x0, fresh = self.buffer.draw(n, self.config.reinit, self.low, self.high)
            x = self._langevin(x0, k)
            self.buffer.store(index, x, fresh, k)
            return x
        return self._langevin(uniform(n, self.low, self.high, self.data.shape), k)

    def generative_loss(self, y: Tensor) -> dict[str, Tensor]:
        """The ``objective``'s loss on continuous data ``y`` ``(B, *shape)``, with the scalars to log."""
        cfg = self.config
        if self.objective == "dsm":
            loss, e = denoising_score_matching(self.energy, y, cfg.dsm_sigma)
            return {"loss": loss, "e_data": e.detach().mean()}
        if self.objective == "nce":
            assert self.noise_model is not None and self.log_z_nce is not None
            noise = self.noise_model.sample(len(y)).to(y.dtype).reshape(y.shape)
            inside = ((noise >= self.low) & (noise <= self.high)).flatten(1).all(1)
            e = self.energy(torch.cat([y, noise]))
            e_data, e_noise = e[: len(y)], e[len(y) :]
            g_data = -e_data - self.log_z_nce - self.noise_model.log_prob(y.flatten(1)).to(e.dtype)
            g_noise = -e_noise - self.log_z_nce - self.noise_model.log_prob(noise.flatten(1)).to(e.dtype)
            g_noise = torch.where(inside, g_noise, torch.full_like(g_noise, -1e4))  # p = 0 outside B
            return {
                "loss": noise_contrastive(g_data, g_noise),
                "e_data": e_data.detach().mean(),
                "e_noise": e_noise.detach().mean(),
                "log_z": self.log_z_nce.detach(),
            }
        x_neg = self.negatives(len(y))
        e = self.energy(torch.cat([y, x_neg]))
        e_data, e_sample = e[: len(y)], e[len(y) :]
        out = {
            "loss": contrastive_divergence(e_data, e_sample, self.alpha),
            "e_data": e_data.detach().mean(),
            "e_sample": e_sample.detach().mean(),
            "saturated": self._saturated(x_neg),
        }
        if len(self.buffer):
            out["buffer_age"] = self.buffer.mean_age()
        return out

    def _saturated(self, x: Tensor) -> Tensor:
        """Share of the samples with most of their coordinates on the box bounds."""
        edge = 1e-6 * (self.high - self.low)
        at_bound = ((x <= self.low + edge) | (x >= self.high - edge)).flatten(1).float().mean(1)
        return (at_bound > 0.5).float().mean()

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        """The generative loss on the batch (images: bin centres plus ``dequant_noise``)."""
        return self.generative_loss(self.continuous(batch.x, self.config.dequant_noise))

    def optimizer_groups(self) -> dict[str, OptimizerGroup]:
        """One group, ``energy``: the network (and NCE's log Z)."""
        return {"energy": OptimizerGroup(tuple(p for p in self.parameters() if p.requires_grad))}

    def train_step(self, batch: Batch, step: Step) -> dict[str, Tensor]:
        """Loss, divergence checks, one update of ``energy``."""
        out = self.loss(batch)
        self.check_divergence(out, step.index)
        step.update("energy", out["loss"])
        return out

    def check_divergence(self, out: dict[str, Tensor], index: int) -> None:
        """Raise :class:`TrainingError` when energies explode or SGLD samples pile up on the box bounds."""
        cfg, name = self.config, type(self).__name__.lower()
        energies = {k: float(out[k]) for k in ("e_data", "e_sample", "e_noise") if k in out}
        if any(not math.isfinite(e) or abs(e) > cfg.energy_limit for e in energies.values()):
            shown = ", ".join(f"{k}={v:.4g}" for k, v in energies.items())
            raise TrainingError(
                f"{name}: energies exploded at step {index} ({shown}; energy_limit={cfg.energy_limit:g}); "
                f"raise the energy penalty (--set alpha={max(10 * self.alpha, 0.1):g}), turn on --set spectral_norm=true "
                "or lower the learning rate (--set train.lr=...)"
            )
        if "saturated" in out and float(out["saturated"]) >= cfg.saturation:
            raise TrainingError(
                f"{name}: {100 * float(out['saturated']):.0f}% of the SGLD samples sit on the box bounds at step {index} "
                f"(saturation={cfg.saturation:g}); lower the SGLD step (--set step_size={self.step_size / 10:g}) "
                f"or its noise (--set noise=...)"
            )

    # -- sampling -------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``sample_steps`` of SGLD on fresh chains from uniform noise on :math:`B`, all drawn from ``generator``.

        Returns floats ``(n, D)`` for vectors, int64 levels ``(n, C, H, W)`` (the bin of each pixel) for images.
        """
        if condition is not None:
            raise ConfigError(f"{type(self).__name__.lower()} samples p(x): it takes no label or condition")
        training = self.training
        self.eval()  # no power-iteration updates of spectral norm while sampling
        try:
            x = uniform(n, self.low, self.high, self.data.shape, generator)
            x = self._langevin(x, self.sample_steps, generator)
        finally:
            self.train(training)
        return self.quantize(x)

    # -- likelihood -----------------------------------------------------------------------
    def _fingerprint(self) -> tuple[Any, ...]:
        tensors = [*self.net.state_dict().values(), self.low, self.high, self.loc, self.scale]
        return tuple((t.data_ptr(), t._version, t.device.type) for t in tensors)

    def partition(self) -> GridResult | AISResult:
        """:math:`\\log Z` of the current weights: grid (vectors, D <= 2) or AIS; cached until the weights change."""
        key = self._fingerprint()
        if self._partition is not None and self._partition[0] == key:
            return self._partition[1]
        cfg = self.config
        training = self.training
        self.eval()
        try:
            if not self.data.is_image and self.data.dims <= 2:
                result: GridResult | AISResult = grid_log_partition(self.energy, self.low, self.high, cfg.grid)
            else:
                generator = torch.Generator(self.low.device).manual_seed(cfg.eval_seed)
                step = cfg.ais_step_size or (1e-4 if self.data.is_image else 1e-3)
                result = ais_log_partition(
                    self.energy,
                    self.low,
                    self.high,
                    self.data.shape,
                    cfg.ais_chains,
                    cfg.ais_steps,
                    step,
                    generator=generator,
                )
        finally:
            self.train(training)
        self._partition = (self._fingerprint(), result)
        return result

    @torch.no_grad()
    def nll(self, batch: Batch) -> Tensor:
        """``(B,)`` nats; see the module docstring for what they are on vectors and images."""
        log_z = self.partition().log_z
        if not self.data.is_image:
            x = batch.x.to(self.low.dtype)
            inside = ((x >= self.low) & (x <= self.high)).flatten(1).all(1)
            nll = self.energy(x).double() + log_z
            return torch.where(inside, nll, torch.full_like(nll, math.inf)).to(x.dtype)
        return self._image_nll(batch.x, log_z)

    def _image_nll(self, x: Tensor, log_z: float) -> Tensor:
        levels = int(self.data.levels)  # type: ignore[arg-type]
        half = 1.0 / (levels - 1)
        centre = self.continuous(x)  # (B, C, H, W)
        generator = torch.Generator(centre.device).manual_seed(self.config.eval_seed + 1)
        s = self.config.nll_samples
        u = (
            2 * torch.rand((s, *centre.shape), generator=generator, device=centre.device, dtype=centre.dtype) - 1
        ) * half
        y = (centre.unsqueeze(0) + u).reshape(-1, *centre.shape[1:])  # (S*B, C, H, W)
        neg = -self.energy(y).double().reshape(s, -1)  # (S, B)
        log_bin_mass = torch.logsumexp(neg, 0) - math.log(s) + self.data.dims * math.log(2 * half)
        return (log_z - log_bin_mass).to(centre.dtype)

    def evaluate(self, data: Dataset, batch_size: int = 256) -> dict[str, Any]:
        """NLL plus how :math:`\\log Z` was obtained: the grid and its error, or AIS with its standard error."""
        out = super().evaluate(data, batch_size)
        result = self.partition()
        out["log_z"] = result.log_z
        if isinstance(result, GridResult):
            out.update(
                log_z_error=result.error,
                grid_points=result.points,
                grid_cell=list(result.cell),
                grid_low=self.low.tolist(),
                grid_high=self.high.tolist(),
                grid_boundary_mass=result.boundary_mass,
                log_z_coarse=result.log_z_coarse,
            )
        else:
            out.update(
                log_z_stderr=result.stderr,
                ais_chains=result.chains,
                ais_steps=result.steps,
                ais_acceptance=result.acceptance,
            )
            if self.data.is_image:
                out["nll_samples"] = self.config.nll_samples
        if self.log_z_nce is not None:
            out["nce_log_z"] = float(self.log_z_nce.detach())
        return out

    def describe(self) -> str:
        cfg = self.config
        how = f"cd/{cfg.sampler}" if self.objective == "cd" else self.objective
        return f"{type(self).__name__} ({how}; {sum(p.numel() for p in self.parameters()):,} parameters)"


class JEM(EBM):
    """Joint energy-based classifier: logits ``f(x)`` ``(B, K)``, :math:`E(x) = -\\mathrm{logsumexp}_y f(x)[y]`."""

    Config = JEMConfig
    outputs = None

    def __init__(self, config: JEMConfig, data: DataSpec):
        if not data.num_classes:
            raise DataError(f"{data.name}: jem needs labelled data (num_classes); use ebm for unlabelled data")
        super().__init__(config, data)

    @classmethod
    def defaults_for(cls, data: DataSpec) -> dict[str, Any]:
        """Images: a faster, cosine-decayed learning rate than ``ebm`` (the classifier needs it; see ebm.md)."""
        if data.kind == "vector":
            return super().defaults_for(data)
        return {
            "steps": 2000,
            "batch_size": 64,
            "lr": 1e-3,
            "schedule": "cosine",
            "eval_every": 250,
            "checkpoint_every": 1000,
        }

    def logits(self, x: Tensor) -> Tensor:
        """:math:`f(x)` ``(B, K)`` for continuous ``x``."""
        return self.net((x - self.loc) / self.scale)

    def energy(self, x: Tensor) -> Tensor:
        return -torch.logsumexp(self.logits(x), dim=-1)

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        r"""Cross-entropy of the labels plus ``gen_weight`` times the generative loss.

        Images: the cross-entropy is taken on the batch moved by up to ``shift`` pixels
        (:func:`~gmkit_ebm.translate.random_translate`, filled with level 0), the generative loss on the
        batch as it is, so :math:`p(x)` models the data and only :math:`p(y \mid x)` is taught the translations.
        """
        if batch.y is None:
            raise DataError("jem trains on labelled batches; this batch has no labels")
        noise = self.config.dequant_noise
        y = self.continuous(batch.x, noise)
        moved = self.continuous(random_translate(batch.x, self.config.shift), noise) if self.data.is_image else y
        ce = F.cross_entropy(self.logits(moved), batch.y)
        out = self.generative_loss(y)
        out["generative"] = out["loss"].detach()
        out["loss"] = ce + self.config.gen_weight * out["loss"]
        out["cross_entropy"] = ce.detach()
        return out

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Most probable label ``(B,)`` of data as stored (images at their bin centres)."""
        return self.logits(self.continuous(x)).argmax(-1)

    def validation_score(self, data: Dataset, batch_size: int = 256) -> float:
        r"""Classification first: :math:`(m + \bar c/(1 + \bar c))/n`, lower is better.

        :math:`m` is the number of the ``n`` validation images :meth:`predict` gets wrong and :math:`\bar c` the
        mean cross-entropy of their labels, so the weights with the fewest errors win and the cross-entropy
        (its term lies in [0, 1)) breaks ties. Unlabelled data fall back to the mean NLL estimate.
        """
        if data.y is None:
            return super().validation_score(data, batch_size)
        device, wrong, nats = self.low.device, 0, 0.0
        with torch.no_grad():
            for b in data.batches(batch_size):
                x, label = b.x.to(device), b.y.to(device)  # type: ignore[union-attr]
                logits = self.logits(self.continuous(x))
                wrong += int((logits.argmax(-1) != label).sum())
                nats += float(F.cross_entropy(logits, label, reduction="sum"))
        n = max(len(data), 1)
        mean = nats / n
        return (wrong + mean / (1 + mean)) / n

    def evaluate(self, data: Dataset, batch_size: int = 256) -> dict[str, Any]:
        """The EBM figures plus ``accuracy`` of :meth:`predict` on labelled data."""
        out = super().evaluate(data, batch_size)
        if data.y is not None:
            device, correct = self.low.device, 0
            for b in data.batches(batch_size):
                if b.y is not None:
                    correct += int((self.predict(b.x.to(device)) == b.y.to(device)).sum())
            out["accuracy"] = correct / max(len(data), 1)
        return out
