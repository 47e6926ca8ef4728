"""Observation heads: normalised over the levels (brute force), shapes, and the hand-built distributions."""

import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gmkit_core.distributions import (
    Bernoulli,
    Categorical,
    DiscretizedGaussian,
    DiscretizedLogistic,
    DiscretizedLogisticMixture,
    Normal,
)
from gmkit_core.errors import ConfigError
from gmkit_core.heads import MIN_LOG_SCALE, channels_last, make_head

DISCRETE = [
    ("bernoulli", 2),
    ("categorical", 5),
    ("logistic", 7),
    ("logistic_mixture", 6),
    ("discretized_gaussian", 4),
    ("categorical", 2),
    ("logistic", 256),
]


def _raw(head, *shape, seed=0, spread=2.0):
    g = torch.Generator().manual_seed(seed)
    return spread * torch.randn(*shape, head.params, generator=g, dtype=torch.float64)


@pytest.mark.parametrize(("name", "levels"), [d for d in DISCRETE if d[1] <= 7])
def test_discrete_heads_sum_to_one_over_every_image(name, levels):
    """Brute force over all L^D images of a tiny (1, 1, 2) event: the masses of the joint sum to one."""
    head = make_head(name, levels, mixtures=3)
    raw = _raw(head, 1, 1, 2)  # one example, event (1, 2)
    grid = torch.tensor(list(itertools.product(range(levels), repeat=2))).reshape(-1, 1, 2)  # (L^2, 1, 2)
    log_p = head(raw.expand(len(grid), 1, 2, head.params)).log_prob(grid)  # (L^2,)
    assert log_p.shape == (len(grid),)
    torch.testing.assert_close(torch.logsumexp(log_p, 0), torch.zeros((), dtype=torch.float64), atol=1e-10, rtol=0)


@pytest.mark.parametrize(("name", "levels"), DISCRETE)
def test_log_probs_table_sums_to_one_and_agrees_with_log_prob(name, levels):
    head = make_head(name, levels, mixtures=3)
    raw = _raw(head, 3, 2, 4, seed=1, spread=3.0)  # (B=3, C=2, W=4, P)
    table = head.log_probs(raw)
    assert table.shape == (3, 2, 4, levels)
    torch.testing.assert_close(table.exp().sum(-1), torch.ones(3, 2, 4, dtype=torch.float64), atol=1e-10, rtol=0)
    x = torch.randint(levels, (3, 2, 4), generator=torch.Generator().manual_seed(2))
    by_table = table.gather(-1, x.unsqueeze(-1)).squeeze(-1).sum((1, 2))
    dist = head(raw)
    torch.testing.assert_close(dist.log_prob(x), by_table)
    assert dist.sample(torch.Generator().manual_seed(0)).shape == (3, 2, 4)


def test_heads_match_the_distributions_built_by_hand():
    g = torch.Generator().manual_seed(3)
    x = torch.randint(5, (4, 3), generator=g)
    raw2 = torch.randn(4, 3, 2, generator=g, dtype=torch.float64)
    raw2[0, :, 1] = torch.tensor([-9.0, -7.5, -20.0])  # log-scales below MIN_LOG_SCALE
    loc, log_scale = raw2.unbind(-1)
    clamped = log_scale.clamp_min(MIN_LOG_SCALE)
    assert bool((log_scale < MIN_LOG_SCALE).any())
    torch.testing.assert_close(
        make_head("logistic", 5)(raw2).log_prob(x), DiscretizedLogistic(loc, clamped, 5).log_prob(x)
    )
    torch.testing.assert_close(
        make_head("discretized_gaussian", 5)(raw2).log_prob(x), DiscretizedGaussian(loc, clamped, 5).log_prob(x)
    )
    v = torch.randn(4, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(make_head("gaussian", None)(raw2).log_prob(v), Normal(loc, clamped.exp()).log_prob(v))
    raw5 = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(make_head("categorical", 5)(raw5).log_prob(x), Categorical(raw5).log_prob(x))
    raw1 = torch.randn(4, 3, 1, generator=g, dtype=torch.float64)
    b = x.clamp_max(1)
    torch.testing.assert_close(make_head("bernoulli", 2)(raw1).log_prob(b), Bernoulli(raw1[..., 0]).log_prob(b))
    raw9 = torch.randn(4, 3, 9, generator=g, dtype=torch.float64)
    w, m, s = raw9[..., :3], raw9[..., 3:6], raw9[..., 6:]
    torch.testing.assert_close(
        make_head("logistic_mixture", 5, mixtures=3)(raw9).log_prob(x),
        DiscretizedLogisticMixture(w, m, s.clamp_min(MIN_LOG_SCALE), 5).log_prob(x),
    )


def test_event_dims_and_parameter_counts():
    assert [make_head(n, 16, mixtures=4).params for n in ("categorical", "logistic", "logistic_mixture")] == [16, 2, 12]
    head = make_head("categorical", 3, event_dims=0)
    raw = torch.zeros(2, 5, 3)
    assert head(raw).log_prob(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 5)
    with pytest.raises(ValueError, match="expects 3 parameters"):
        head(torch.zeros(2, 5, 4))


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3))
def test_channels_last_moves_each_channels_parameters_to_the_last_axis(c, p, h, w):
    raw = torch.arange(2 * c * p * h * w).reshape(2, c * p, h, w)
    out = channels_last(raw, c)
    assert out.shape == (2, c, h, w, p)
    for ch, k in itertools.product(range(c), range(p)):
        assert torch.equal(out[:, ch, :, :, k], raw[:, ch * p + k])


@pytest.mark.parametrize(
    ("name", "levels", "match"),
    [
        ("gaussian", 256, "density"),
        ("logistic", None, "continuous"),
        ("bernoulli", 4, "needs 2 levels"),
        ("nope", 2, "unknown"),
    ],
)
def test_heads_that_do_not_fit_the_data_are_config_errors(name, levels, match):
    with pytest.raises(ConfigError, match=match):
        make_head(name, levels)


def test_auto_picks_from_the_data():
    assert make_head("auto", 2).name == "bernoulli"
    assert make_head("auto", 256).name == "logistic_mixture"
    assert make_head("auto", None).name == "gaussian"
