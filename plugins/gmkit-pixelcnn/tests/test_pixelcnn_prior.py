"""The ``pixelcnn`` prior over code maps, as another plugin builds it through the registry."""

from __future__ import annotations

import itertools

import pytest
import torch

from gmkit_core.errors import ConfigError
from gmkit_core.interfaces import Prior
from gmkit_core.registry import registry


def test_prior_over_code_maps():
    torch.manual_seed(0)
    prior = registry.get("prior", "pixelcnn", shape=(4, 5), levels=32, hidden=16, layers=2)
    assert isinstance(prior, Prior)
    z = prior.sample(3, generator=torch.Generator().manual_seed(0))
    assert z.shape == (3, 4, 5) and z.dtype == torch.int64 and int(z.max()) < 32
    assert torch.equal(z, prior.sample(3, generator=torch.Generator().manual_seed(0), method="naive"))
    lp = prior.log_prob(z)
    assert lp.shape == (3,) and (lp < 0).all()
    lp.sum().backward()  # trainable by maximum likelihood
    assert prior.net.embedding.weight.grad is not None


@pytest.mark.parametrize("shape", [3, (1, 3), (2, 1, 2)])
def test_prior_is_a_normalised_law(shape):  # noqa: ANN001
    """Summing exp(log p(z)) over every possible code map gives one, for each accepted shape form."""
    torch.manual_seed(0)
    prior = registry.get("prior", "pixelcnn", shape=shape, levels=3, hidden=8, layers=2).double().eval()
    event = (shape,) if isinstance(shape, int) else shape
    dims = int(torch.tensor(event).prod())
    codes = torch.tensor(list(itertools.product(range(3), repeat=dims))).view(-1, *event)
    with torch.no_grad():
        total = torch.logsumexp(prior.log_prob(codes), 0)
    assert abs(total.item()) < 1e-10


@pytest.mark.parametrize(
    "options,condition",
    [
        ({"num_classes": 4}, torch.tensor([0, 3])),
        ({"condition_dim": 6}, torch.randn(2, 6)),
        ({"condition_channels": 2}, torch.randn(2, 2, 3, 3)),
    ],
)
def test_conditional_prior(options, condition):  # noqa: ANN001
    torch.manual_seed(0)
    prior = registry.get("prior", "pixelcnn", shape=(3, 3), levels=8, hidden=8, layers=2, **options)
    z = prior.sample(2, generator=torch.Generator().manual_seed(1), condition=condition)
    naive = prior.sample(2, generator=torch.Generator().manual_seed(1), condition=condition, method="naive")
    assert torch.equal(z, naive)
    assert prior.log_prob(z, condition=condition).shape == (2,)
    with pytest.raises(ConfigError, match="pass condition"):
        prior.log_prob(z)


def test_prior_errors():
    with pytest.raises(ConfigError, match="no option 'width'"):
        registry.get("prior", "pixelcnn", shape=(2, 2), levels=4, width=3)
    with pytest.raises(ConfigError, match="arch"):
        registry.get("prior", "pixelcnn", shape=(2, 2), levels=4, arch="diagonal")
    with pytest.raises(ConfigError, match="at most one"):
        registry.get("prior", "pixelcnn", shape=(2, 2), levels=4, num_classes=3, condition_dim=2)
    with pytest.raises(ConfigError, match="shape"):
        registry.get("prior", "pixelcnn", shape=(2, 2, 2, 2), levels=4)
    prior = registry.get("prior", "pixelcnn", shape=(2, 2), levels=4, hidden=4, layers=1)
    with pytest.raises(ConfigError, match="codes must have shape"):
        prior.log_prob(torch.zeros(1, 3, 3, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"lie in \[0, 4\)"):
        prior.log_prob(torch.full((1, 2, 2), 4))
    with pytest.raises(ConfigError, match="unconditional"):
        prior.log_prob(torch.zeros(1, 2, 2, dtype=torch.long), condition=torch.zeros(1))
