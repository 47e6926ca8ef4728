"""Small models for the core's own tests: one well-behaved stochastic model and deliberate failures."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor, nn

import gmkit_core
from gmkit_core.data import Batch
from gmkit_core.distributions import Categorical, Normal
from gmkit_core.interfaces import GenerativeModel

GMKIT_API = 2


@attrs.frozen
class Config:
    hidden: int = 8


class Noisy(GenerativeModel):
    """Diagonal Gaussian whose training loss uses dropout and noise (consumes the global RNG)."""

    Config = Config
    likelihood = "exact"

    def __init__(self, config: Config, data):
        super().__init__(config, data)
        d = data.dims
        self.loc = nn.Parameter(torch.zeros(d))
        self.log_scale = nn.Parameter(torch.zeros(d))
        self.net = nn.Sequential(nn.Linear(d, config.hidden), nn.Dropout(0.3), nn.Linear(config.hidden, d))

    def nll(self, batch: Batch) -> Tensor:
        return -Normal(self.loc, self.log_scale.exp(), 1).log_prob(batch.x.flatten(1).float())

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        x = batch.x.flatten(1).float()
        jitter = self.net(x + 0.1 * torch.randn_like(x)).square().mean()
        return {"loss": self.nll(batch).mean() + 1e-3 * jitter}

    def sample(self, n, condition=None, generator=None):
        return Normal(self.loc.expand(n, -1), self.log_scale.exp().expand(n, -1)).sample(generator)


class Diverging(Noisy):
    """Its loss becomes NaN from step 25 on."""

    def loss(self, batch):
        out = super().loss(batch)
        if self.step >= 25:
            out["loss"] = out["loss"] * float("nan")
        return out


class Interrupted(Noisy):
    """Ctrl-C arrives during step 7."""

    def loss(self, batch):
        if self.step == 7:
            raise KeyboardInterrupt
        return super().loss(batch)


class GlobalRngSampler(Noisy):
    """Broken: ignores the generator."""

    def sample(self, n, condition=None, generator=None):
        return Normal(self.loc.expand(n, -1), self.log_scale.exp().expand(n, -1)).sample(None)


class PlainTensor(Noisy):
    """Broken: keeps a tensor as a plain attribute, so .to(device) would leave it behind."""

    def __init__(self, config, data):
        super().__init__(config, data)
        self.offset = torch.zeros(data.dims)


class StochasticExact(Noisy):
    """Broken: claims an exact likelihood but its nll is a random estimate."""

    def nll(self, batch):
        return super().nll(batch) + 0.1 * torch.rand(len(batch))


class FloatImages(GenerativeModel):
    """Broken: returns float images instead of integer levels."""

    Config = Config
    likelihood = "exact"

    def __init__(self, config, data):
        super().__init__(config, data)
        self.logits = nn.Parameter(torch.zeros(*data.shape, data.levels))

    def nll(self, batch):
        return -Categorical(self.logits.unsqueeze(0), 3).log_prob(batch.x)

    def loss(self, batch):
        return {"loss": self.nll(batch).mean()}

    def sample(self, n, condition=None, generator=None):
        return Categorical(self.logits.expand(n, *self.logits.shape)).sample(generator).float()


@gmkit_core.hookimpl
def gmkit_register_models(register):
    for name in ("Noisy", "Diverging", "Interrupted", "GlobalRngSampler", "PlainTensor", "StochasticExact", "FloatImages"):
        register(f"test_{name.lower()}", f"gmkit_testmodels:{name}", family="test")
