"""KL terms: closed form against Monte Carlo, non-negativity, KL(q||q) = 0, and the reparameterised draw."""

from __future__ import annotations

import pytest
import torch
from gmkit_vae.bounds import elbo, kl_divergence
from gmkit_vae.networks import GaussianEncoder, ObservationDecoder
from hypothesis import given, settings
from hypothesis import strategies as st

from gmkit_core.distributions import Normal, StandardNormal
from gmkit_core.heads import make_head
from gmkit_core.interfaces import Prior

pytestmark = pytest.mark.usefixtures("float64_default")

SETTINGS = settings(max_examples=8, deadline=None)
seeds = st.integers(0, 2**31 - 1)


class NormalPrior(Prior):
    """A Gaussian prior that is *not* the StandardNormal class, so ``kl_divergence`` takes the Monte Carlo path."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor):
        super().__init__()
        self.loc, self.scale = loc, scale

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return Normal(self.loc, self.scale, event_dims=1).log_prob(z)

    def sample(
        self, n: int, *, condition: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return Normal(self.loc.expand(n, -1), self.scale.expand(n, -1)).sample(generator)


def _random_normal(g: torch.Generator, batch: int, dim: int) -> Normal:
    loc = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    scale = torch.exp(0.5 * torch.randn(batch, dim, generator=g, dtype=torch.float64))
    return Normal(loc, scale, event_dims=1)


@SETTINGS
@given(seed=seeds, dim=st.integers(1, 6))
def test_closed_form_kl_matches_monte_carlo(seed: int, dim: int) -> None:
    g = torch.Generator().manual_seed(seed)
    q = _random_normal(g, 3, dim)
    prior = StandardNormal(dim).double()
    closed = kl_divergence(q, prior, q.rsample(g))  # closed-form branch
    z = q.rsample(g, (4_000,))  # (S, B, D)
    mc = (q.log_prob(z) - prior.log_prob(z)).mean(0)
    stderr = (q.log_prob(z) - prior.log_prob(z)).std(0) / 4_000**0.5
    assert torch.all((closed - mc).abs() < 5 * stderr + 1e-6), (closed, mc)


@SETTINGS
@given(seed=seeds, dim=st.integers(1, 6))
def test_monte_carlo_branch_estimates_the_closed_form(seed: int, dim: int) -> None:
    g = torch.Generator().manual_seed(seed)
    q = _random_normal(g, 2, dim)
    p_loc, p_scale = torch.randn(dim, generator=g), torch.exp(0.3 * torch.randn(dim, generator=g))
    prior = NormalPrior(p_loc, p_scale)
    exact = q.kl(Normal(p_loc.expand_as(q.loc), p_scale.expand_as(q.loc), event_dims=1))
    draws = kl_divergence(q, prior, q.rsample(g, (4_000,)))  # (S, B): one-draw estimates
    assert torch.all((draws.mean(0) - exact).abs() < 5 * draws.std(0) / 4_000**0.5 + 1e-6)


@SETTINGS
@given(seed=seeds, dim=st.integers(1, 8))
def test_kl_is_nonnegative_and_zero_against_itself(seed: int, dim: int) -> None:
    g = torch.Generator().manual_seed(seed)
    q, p = _random_normal(g, 5, dim), _random_normal(g, 5, dim)
    assert torch.all(q.kl(p) >= 0)
    assert torch.all(kl_divergence(q, StandardNormal(dim).double(), q.loc) >= 0)
    torch.testing.assert_close(q.kl(q), torch.zeros(5), atol=1e-12, rtol=0)
    standard = Normal(torch.zeros(5, dim), torch.ones(5, dim), event_dims=1)
    torch.testing.assert_close(kl_divergence(standard, StandardNormal(dim).double(), q.loc), torch.zeros(5))


def test_reparameterised_samples_have_the_right_moments() -> None:
    g = torch.Generator().manual_seed(0)
    q = _random_normal(g, 4, 3)
    z = q.rsample(g, (200_000,))  # (S, B, D)
    torch.testing.assert_close(z.mean(0), q.loc, atol=5 * float(q.scale.max()) / 200_000**0.5, rtol=0)
    torch.testing.assert_close(z.var(0), q.scale.square(), rtol=0.02, atol=0)


def test_gradients_reach_the_encoder_through_the_sample() -> None:
    """The reconstruction term alone (no KL) must move every encoder weight: it depends on them only via z."""
    from gmkit_core.data import DataSpec

    torch.manual_seed(0)
    spec = DataSpec("toy", "image", (1, 4, 4), levels=17)
    enc = GaussianEncoder(spec, 3, hidden=(16,)).double()
    dec = ObservationDecoder(spec, 3, make_head("auto", spec.levels, event_dims=3), hidden=(16,)).double()
    x = torch.randint(0, 17, (8, 1, 4, 4))
    terms = elbo(x, enc, dec, StandardNormal(3).double(), generator=torch.Generator().manual_seed(1))
    terms.reconstruction.sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
