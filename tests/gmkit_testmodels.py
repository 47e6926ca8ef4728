"""Small models for the core's own tests: one well-behaved stochastic model and deliberate failures."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor, nn

import gmkit_core
from gmkit_core.data import Batch
from gmkit_core.distributions import Categorical, Normal
from gmkit_core.interfaces import GenerativeModel, OptimizerGroup, Step
from gmkit_core.training.trainer import DefaultTrainer

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

    def sample(self, n, *, condition=None, generator=None):
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

    def sample(self, n, *, condition=None, generator=None):
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

    def sample(self, n, *, condition=None, generator=None):
        return Categorical(self.logits.expand(n, *self.logits.shape)).sample(generator).float()


class TwoPlayer(GenerativeModel):
    """A tiny adversarial pair on 2D data that owns its step: ``n_critic`` critic updates, then one generator update.

    Generator ``g(z) = A z + b``; critic ``d(x) = w . tanh(V x)``; non-saturating
    losses. A persistent buffer counts critic updates (model state that resume
    must restore). Two optimiser groups with their own learning rates and betas.
    """

    Config = Config
    likelihood = "none"
    n_critic = 2

    def __init__(self, config: Config, data):
        super().__init__(config, data)
        d = data.dims
        self.generator = nn.Linear(d, d)
        self.critic = nn.Sequential(nn.Linear(d, config.hidden), nn.Tanh(), nn.Linear(config.hidden, 1))
        self.register_buffer("critic_updates", torch.zeros((), dtype=torch.long))

    def optimizer_groups(self) -> dict[str, OptimizerGroup]:
        return {
            "generator": OptimizerGroup(self.generator.parameters(), lr=2e-3, betas=(0.5, 0.9)),
            "critic": OptimizerGroup(self.critic.parameters(), lr=4e-3, betas=(0.0, 0.9)),
        }

    def _fake(self, n: int) -> Tensor:
        return self.generator(torch.randn(n, self.data.dims))

    def _critic_loss(self, x: Tensor) -> Tensor:
        real, fake = self.critic(x.float()), self.critic(self._fake(len(x)).detach())
        return torch.nn.functional.softplus(-real).mean() + torch.nn.functional.softplus(fake).mean()

    def train_step(self, batch: Batch, step: Step) -> dict[str, Tensor]:
        for i in range(self.n_critic):
            d_loss = self._critic_loss((batch if i == 0 else step.next_batch()).x)
            step.update("critic", d_loss)
            self.critic_updates += 1
        g_loss = torch.nn.functional.softplus(-self.critic(self._fake(len(batch.x)))).mean()
        step.update("generator", g_loss)
        return {"loss": g_loss.detach(), "d_loss": d_loss.detach()}

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        return {"loss": self._critic_loss(batch.x)}

    def sample(self, n, *, condition=None, generator=None):
        z = torch.randn(n, self.data.dims, generator=generator, device=self.generator.weight.device)
        return self.generator(z)


class TwoGroups(GenerativeModel):
    """A deterministic diagonal Gaussian that owns its step: the mean and the scale are two groups, updated in turn."""

    Config = Config
    likelihood = "exact"

    def __init__(self, config: Config, data):
        super().__init__(config, data)
        self.loc = nn.Parameter(torch.zeros(data.dims))
        self.log_scale = nn.Parameter(torch.zeros(data.dims))

    def optimizer_groups(self) -> dict[str, OptimizerGroup]:
        return {"loc": OptimizerGroup([self.loc]), "scale": OptimizerGroup([self.log_scale], lr=0.02)}

    def nll(self, batch: Batch) -> Tensor:
        return -Normal(self.loc, self.log_scale.exp(), 1).log_prob(batch.x.flatten(1).float())

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        return {"loss": self.nll(batch).mean()}

    def train_step(self, batch: Batch, step: Step) -> dict[str, Tensor]:
        step.update("loc", self.loss(batch)["loss"])
        out = self.loss(batch)
        step.update("scale", out["loss"])
        return out

    def sample(self, n, *, condition=None, generator=None):
        return Normal(self.loc.expand(n, -1), self.log_scale.exp().expand(n, -1)).sample(generator)


class ShortTrainer(DefaultTrainer):
    """A plugin-shipped trainer: the default loop, stopped after half the configured steps."""

    def fit(self, model, data, config, resume=None):
        return super().fit(model, data, attrs.evolve(config, steps=config.steps // 2), resume)


@gmkit_core.hookimpl
def gmkit_register_models(register):
    for name in (
        "Noisy",
        "Diverging",
        "Interrupted",
        "GlobalRngSampler",
        "PlainTensor",
        "StochasticExact",
        "FloatImages",
        "TwoPlayer",
        "TwoGroups",
    ):
        register(f"test_{name.lower()}", f"gmkit_testmodels:{name}", family="test")


@gmkit_core.hookimpl
def gmkit_register_components(register):
    register(
        "trainer", "test_short", "gmkit_testmodels:ShortTrainer", description="the default loop for half the steps"
    )
