r"""The simplest real generative model: every dimension on its own.

Images ``(C, H, W)`` with ``L`` levels: :math:`p(x) = \prod_i \mathrm{Cat}(x_i; \mathrm{softmax}(\theta_i))`,
logits :math:`\theta` of shape ``(C, H, W, L)``. Vectors ``(D,)``:
:math:`p(x) = \prod_i \mathcal N(x_i; \mu_i, \sigma_i^2)`. Both are fitted by
maximum likelihood (gradient descent on the mean NLL); the NLL is exact.
"""

from __future__ import annotations

import attrs
import torch
from torch import Tensor, nn

from gmkit_core.config import option
from gmkit_core.data import Batch, Dataset, DataSpec
from gmkit_core.distributions import Categorical, Normal
from gmkit_core.interfaces import GenerativeModel


@attrs.frozen
class Config:
    init_from_data: bool = option(True, "start at the training data's marginals")
    smoothing: float = option(1.0, "pseudo-counts per level for the data-based start", attrs.validators.ge(0))


class Independent(GenerativeModel):
    Config = Config
    likelihood = "exact"
    train_defaults = {"steps": 300, "lr": 0.05, "batch_size": 100, "eval_every": 50}

    def __init__(self, config: Config, data: DataSpec):
        super().__init__(config, data)
        if data.is_image:
            self.logits = nn.Parameter(torch.zeros(*data.shape, data.levels))
        else:
            self.loc = nn.Parameter(torch.zeros(*data.shape))
            self.log_scale = nn.Parameter(torch.zeros(*data.shape))

    def dist(self) -> Categorical | Normal:
        if self.data.is_image:
            return Categorical(self.logits.unsqueeze(0), event_dims=len(self.data.shape))
        return Normal(self.loc.unsqueeze(0), self.log_scale.exp().unsqueeze(0), event_dims=1)

    def prepare(self, train: Dataset) -> None:
        if not self.config.init_from_data:
            return
        x = train.x.to(self.logits.device if self.data.is_image else self.loc.device)
        if self.data.is_image:
            counts = nn.functional.one_hot(x, self.data.levels).sum(0).float() + self.config.smoothing
            self.logits.copy_(counts.log())
        else:
            self.loc.copy_(x.mean(0))
            self.log_scale.copy_(x.std(0).clamp_min(1e-3).log())

    def nll(self, batch: Batch) -> Tensor:
        return -self.dist().log_prob(batch.x)

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        return {"loss": self.nll(batch).mean()}

    def sample(self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        d = self.dist()
        if self.data.is_image:
            return Categorical(d.logits.expand(n, *d.logits.shape[1:])).sample(generator)
        return Normal(self.loc.expand(n, -1), self.log_scale.exp().expand(n, -1)).sample(generator)
