r"""Flow matching on the linear path, with minibatch OT coupling and reflow.

Conditional flow matching (Lipman et al., 2023, arXiv:2210.02747) with the linear path
:math:`x_t = (1-t)x_0 + t\epsilon` (rectified flow, Liu et al., 2023, arXiv:2209.03003;
:class:`~gmkit_core.paths.LinearPath`): the network regresses the conditional velocity,

.. math:: \mathcal L = E_{t, (x_0, \epsilon)}\,\|v_\theta(x_t, t) - (\epsilon - x_0)\|^2,

whose minimiser is the marginal velocity :math:`E[\epsilon - x_0 \mid x_t]`; the learned ODE
:math:`\dot x = v_\theta` carries :math:`\mathcal N(0, I)` at :math:`t = 1` to the data at
:math:`t = 0`. As a denoiser, :math:`\hat x_0 = x_t - t\,v_\theta(x_t, t)`.

- ``coupling=ot``: the pairs :math:`(x_0, \epsilon)` of a minibatch are matched by the exact
  assignment minimising :math:`\sum_i \|x_{0,i} - \epsilon_{\pi(i)}\|^2` (:mod:`gmkit_score.ot`;
  Tong et al., 2023, arXiv:2302.00482), which straightens the paths;
- ``reflow_steps > 0``: after the main fit, ``finish`` draws ``reflow_pairs`` pairs
  :math:`(\hat x_0, \epsilon)` with :math:`\hat x_0` the ODE solution from :math:`\epsilon`
  (``reflow_nfe`` fixed RK4 evaluations), and trains the same network on them for
  ``reflow_steps`` steps (Liu et al., section 2.2): the 1-rectified flow's straighter paths
  let few-step samplers work.

``nll`` is the probability-flow ODE bound of :mod:`gmkit_score.base` with :math:`v_\theta` itself
as the velocity, from :math:`t_0 = 0` to :math:`t_1 = 1` (prior :math:`\mathcal N(0, I)` exactly).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import torch
from attrs.validators import ge, in_, instance_of
from torch import Tensor

from gmkit_core.data import Batch, Dataset, DataSpec
from gmkit_core.interfaces import GenerativeModel
from gmkit_core.paths import GaussianPath, LinearPath

from . import ode
from .base import ContinuousModel, PathTrainingConfig, at, fourier_features, opt, plane_options, training_times
from .ot import ot_pairing

__all__ = ["FlowMatching", "FlowMatchingConfig", "ReflowStage"]


@attrs.frozen
class FlowMatchingConfig(PathTrainingConfig):
    """Options of ``flow_matching``."""

    coupling: str = opt(
        "independent", "pairs (x0, eps): independent, or ot (exact minibatch assignment)", in_(("independent", "ot"))
    )
    reflow_steps: int = opt(0, "training steps of the reflow stage (0: no reflow)", instance_of(int), ge(0))
    reflow_pairs: int = opt(0, "pairs drawn for reflow (0: as many as training examples)", instance_of(int), ge(0))
    reflow_nfe: int = opt(64, "RK4 velocity evaluations per reflow pair (a multiple of 4)", instance_of(int), ge(4))
    sampler: str = opt("heun", "sampler of `sample`: euler, heun or dpmpp_2m", in_(("euler", "heun", "dpmpp_2m")))
    nfe: int = opt(39, "velocity evaluations of `sample`", instance_of(int), ge(1))
    dequantize: bool = opt(
        True, "images: train on c_x + u, u ~ U[-1/(L-1), 1/(L-1)), the density the likelihood bound integrates"
    )


class FlowMatching(ContinuousModel):
    """Conditional flow matching with a velocity network; see the module docstring."""

    Config: ClassVar[type] = FlowMatchingConfig

    @classmethod
    def config_for(cls, data: DataSpec) -> dict[str, Any]:
        """:func:`~gmkit_score.base.plane_options` (checkerboard test NLL 3.549 with the features, 3.585 without)."""
        return plane_options(data)

    def __init__(self, config: FlowMatchingConfig, data: DataSpec):
        super().__init__(config, data)
        self.exponents = self.input_exponents(config)
        self.network = self.build_network()

    def path(self) -> GaussianPath:
        return LinearPath()

    def velocity(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        r""":math:`v_\theta(x, t, y)` (the network sees ``x`` and its ``x_fourier`` features)."""
        return self.network(fourier_features(x, self.exponents), t, y)

    def x0_from_network(self, x_t: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        return x_t - at(t, x_t) * self.velocity(x_t, t, y)

    def flow_loss(self, x0: Tensor, eps: Tensor, y: Tensor | None) -> Tensor:
        r""":math:`\|v_\theta(x_t, t) - (\epsilon - x_0)\|^2` averaged over dimensions and the batch
        (antithetic ``t``, raised to ``t_power``)."""
        t = training_times(x0.shape[0], x0.device, 0.0, 1.0, self.config.t_power)
        x_t = (1 - at(t, x0)) * x0 + at(t, x0) * eps
        return (self.velocity(x_t, t, y) - (eps - x0)).square().flatten(1).mean(1).mean()

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        x0 = self.training_data(batch)
        eps = torch.randn_like(x0)
        if self.config.coupling == "ot":
            eps = ot_pairing(x0, eps)
        return {"loss": self.flow_loss(x0, eps, self.drop_labels(self.labels(batch)))}

    # -- reflow ------------------------------------------------------------------------------------
    @torch.no_grad()
    def reflow_pairs(
        self, n: int, generator: torch.Generator | None = None, batch_size: int = 500
    ) -> tuple[Tensor, Tensor | None]:
        r"""``(pairs, labels)``: ``n`` rows :math:`[\hat x_0, \epsilon]` flattened, ``(n, 2D)``, by RK4 from ``t = 1``."""
        out, labels = [], []
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            y = self.sampling_labels(m, None, generator)
            eps = torch.randn((m, *self.data.shape), generator=generator, device=self.device())

            def f(x: Tensor, t: Tensor, y: Tensor | None = y) -> tuple[Tensor, Tensor]:
                return self.velocity(x, t, y), torch.zeros(x.shape[0], device=x.device)

            x0 = ode.integrate(f, eps, 1.0, 0.0, "rk4", max(1, self.config.reflow_nfe // 4))[0]
            out.append(torch.cat([x0.flatten(1), eps.flatten(1)], 1))
            if y is not None:
                labels.append(y)
        return torch.cat(out), (torch.cat(labels) if labels else None)

    def finish(self, data: dict[str, Dataset], fit: Callable[..., GenerativeModel]) -> None:
        """Reflow: train on the current flow's own (noise, ODE solution) pairs for ``reflow_steps`` steps."""
        if not self.config.reflow_steps:
            return
        n = self.config.reflow_pairs or len(data["train"])
        generator = torch.Generator(device=self.device()).manual_seed(self.config.seed + 1)
        pairs, labels = self.reflow_pairs(n + max(n // 10, 1), generator)
        spec = DataSpec(
            name=f"{self.data.name}-reflow", kind="vector", shape=(pairs.shape[1],), num_classes=self.num_classes
        )
        split = {"train": slice(0, n), "validation": slice(n, None)}
        stage_data = {
            k: Dataset(pairs[s].cpu(), None if labels is None else labels[s].cpu(), spec, k) for k, s in split.items()
        }
        stage = ReflowStage(self, spec)
        steps = self.config.reflow_steps
        fit(stage, stage_data, steps=steps, eval_every=max(steps // 4, 1), warmup=min(100, steps // 10))
        self.load_state_dict(stage.flow.state_dict())


@attrs.frozen
class ReflowConfig:
    """The reflow stage has no options of its own (they are ``flow_matching``'s ``reflow_*``)."""


class ReflowStage(GenerativeModel):
    r"""Trains a :class:`FlowMatching` model's network on fixed pairs :math:`[x_0, \epsilon]` (``(B, 2D)``)."""

    Config: ClassVar[type] = ReflowConfig
    likelihood: ClassVar[str] = "none"

    def __init__(self, flow: FlowMatching, spec: DataSpec):
        super().__init__(ReflowConfig(), spec)
        self.flow = flow
        self.conditional = flow.conditional

    @classmethod
    def defaults_for(cls, data: DataSpec) -> dict[str, Any]:
        return {}

    def _split(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor | None]:
        pairs = batch.x.to(self.flow.device()).float()
        shape = self.flow.data.shape
        x0, eps = pairs.chunk(2, dim=1)
        y = None if batch.y is None or self.flow.num_classes is None else batch.y.to(pairs.device).long()
        return x0.reshape(-1, *shape), eps.reshape(-1, *shape), y

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        x0, eps, y = self._split(batch)
        return {"loss": self.flow.flow_loss(x0, eps, self.flow.drop_labels(y))}

    def validation_score(self, data: Dataset, batch_size: int = 256) -> float:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return self._mean(data, batch_size, lambda b: self.loss(b)["loss"].expand(len(b)))

    def sample(self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        return self.flow.sample(n, condition=condition, generator=generator)
