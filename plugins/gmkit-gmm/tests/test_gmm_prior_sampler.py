"""The ``gmm`` prior and the ``gmm`` post-hoc latent sampler."""

from __future__ import annotations

import pytest
import torch
from gmkit_gmm.em import fit_em
from gmkit_gmm.mixture import GaussianMixture
from torch import nn

from gmkit_core.data import Dataset, DataSpec
from gmkit_core.errors import ConfigError, DataError
from gmkit_core.interfaces import Prior
from gmkit_core.registry import registry

F64 = torch.float64


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_prior_log_prob_sample_and_gradients(covariance: str) -> None:
    prior = registry.get("prior", "gmm", shape=(2, 3), components=4, covariance=covariance)
    assert isinstance(prior, Prior)
    z = torch.randn(5, 2, 3)
    lp = prior.log_prob(z)
    assert lp.shape == (5,)
    torch.testing.assert_close(lp, prior.mixture.log_prob(z.reshape(5, 6)))
    lp.sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in prior.parameters())
    a = prior.sample(7, generator=torch.Generator().manual_seed(0))
    b = prior.sample(7, generator=torch.Generator().manual_seed(0))
    assert a.shape == (7, 2, 3) and torch.equal(a, b)


def test_prior_builds_identically_and_spreads_its_means() -> None:
    a = registry.get("prior", "gmm", shape=8, components=10)
    b = registry.get("prior", "gmm", shape=8, components=10)
    assert torch.equal(a.mixture.loc, b.mixture.loc)
    assert float(torch.pdist(a.mixture.loc.detach()).min()) > 0.5


def test_prior_learns_by_gradient() -> None:
    """Maximum likelihood by Adam on samples of a known mixture approaches that mixture's likelihood."""
    truth = GaussianMixture(2, 2, "diag")
    truth.set_parameters(
        torch.tensor([0.3, 0.7]), torch.tensor([[-3.0, 0.0], [3.0, 1.0]]), torch.tensor([[0.5, 0.2], [0.3, 0.6]])
    )
    z = truth.sample(1000, torch.Generator().manual_seed(0))
    prior = registry.get("prior", "gmm", shape=2, components=2)
    optimizer = torch.optim.Adam(prior.parameters(), lr=0.1)
    for _ in range(150):
        optimizer.zero_grad()
        (-prior.log_prob(z).mean()).backward()
        optimizer.step()
    with torch.no_grad():
        gap = float(truth.log_prob(z).mean() - prior.log_prob(z).mean())
    assert gap < 0.02, gap


def test_prior_option_errors() -> None:
    with pytest.raises(ConfigError, match="components"):
        registry.get("prior", "gmm", shape=2, components=0)
    with pytest.raises(ConfigError, match="covariance"):
        registry.get("prior", "gmm", shape=2, covariance="tied")
    with pytest.raises(ConfigError, match="options"):
        registry.get("prior", "gmm", shape=2, bogus=1)


class StandIn(nn.Module):
    """A latent-variable model with an exact affine code: z = A x + b, decode(z) = A^{-1}(z - b).

    It records the conditions it was called with.
    """

    conditional = False

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor([[2.0, 1.0], [0.0, 0.5]], dtype=F64))
        self.b = nn.Parameter(torch.tensor([1.0, -2.0], dtype=F64))
        self.seen: list[torch.Tensor | None] = []

    def encode(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        self.seen.append(condition)
        return x @ self.a.T + self.b

    def decode(
        self, z: torch.Tensor, condition: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return torch.linalg.solve(self.a, (z - self.b).T).T


def two_clusters(n: int = 3000, labels: bool = False) -> Dataset:
    g = torch.Generator().manual_seed(0)
    side = torch.rand(n, generator=g, dtype=F64) < 0.3
    x = torch.where(side[:, None], torch.tensor([-3.0, 2.0], dtype=F64), torch.tensor([2.0, -1.0], dtype=F64))
    x = x + 0.4 * torch.randn(n, 2, generator=g, dtype=F64)
    spec = DataSpec("clusters", "vector", (2,), num_classes=2 if labels else None)
    return Dataset(x, side.long() if labels else None, spec, "train")


def test_sampler_matches_the_data_through_the_codes() -> None:
    data, model = two_clusters(), StandIn()
    sampler = registry.get("sampler", "gmm", components=2, covariance="full")
    assert type(sampler).needs_data is True
    with torch.no_grad():
        samples = sampler(model, 20_000, generator=torch.Generator().manual_seed(1), data=data)
        again = sampler(model, 20_000, generator=torch.Generator().manual_seed(1), data=data)
    assert torch.equal(samples, again)
    assert samples.shape == (20_000, 2)
    # an affine code keeps the family: the samples follow the data distribution
    torch.testing.assert_close(samples.mean(0), data.x.mean(0), atol=0.06, rtol=0)
    torch.testing.assert_close(torch.cov(samples.T), torch.cov(data.x.T), atol=0.12, rtol=0)
    # and the mixture fitted to the codes is EM's fit of the encoded data
    direct = GaussianMixture(2, 2, "full").double()
    fit_em(
        direct,
        model.encode(data.x).detach(),
        max_iter=200,
        tol=1e-4,
        reg_covar=1e-4,
        generator=torch.Generator().manual_seed(0),
    )
    torch.testing.assert_close(sampler.mixture.loc, direct.loc)
    assert sampler.result is not None and sampler.result.converged


def test_sampler_passes_labels_to_conditional_encoders() -> None:
    data, model = two_clusters(200, labels=True), StandIn()
    model.conditional = True
    sampler = registry.get("sampler", "gmm", components="2", batch_size="64")  # CLI options may be strings
    sampler(model, 4, condition=torch.zeros(4, dtype=torch.long), generator=torch.Generator().manual_seed(0), data=data)
    assert torch.equal(torch.cat(model.seen), data.y)


def test_sampler_errors() -> None:
    sampler = registry.get("sampler", "gmm", components=2)
    with pytest.raises(DataError, match="training data"):
        sampler(StandIn(), 4, data=None)
    with pytest.raises(ConfigError, match="encode"):
        sampler(nn.Linear(2, 2), 4, data=two_clusters(50))
    with pytest.raises(ConfigError, match="'components'"):
        registry.get("sampler", "gmm", components="ten")
    with pytest.raises(ConfigError, match="has no option 'steps'"):
        registry.get("sampler", "gmm", steps=3)
    assert "encode() and decode()" in sampler.applies_to(nn.Linear(2, 2))
    assert sampler.applies_to(StandIn()) is None
    with pytest.raises(ConfigError, match="covariance"):
        registry.get("sampler", "gmm", covariance="tied")
