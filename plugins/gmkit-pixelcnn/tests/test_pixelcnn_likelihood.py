"""The likelihood: every conditional sums to one, and log p(x) is the exact chain-rule sum."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gmkit_core.data import Batch, DataSpec
from gmkit_core.heads import CategoricalHead, LogisticMixtureHead
from gmkit_core.interfaces import bits_per_dim
from gmkit_core.registry import registry


@settings(max_examples=20, deadline=None)
@given(levels=st.sampled_from([2, 3, 17, 256]), mixtures=st.integers(1, 4), scale=st.floats(0.1, 20.0))
def test_levels_probabilities_sum_to_one(levels, mixtures, scale):  # noqa: ANN001
    gen = torch.Generator().manual_seed(levels * 10 + mixtures)
    for out in (CategoricalHead(levels), LogisticMixtureHead(levels, mixtures)):
        params = scale * torch.randn(3, 2, out.params, generator=gen, dtype=torch.float64)
        log_probs = out.log_probs(params)
        assert log_probs.shape == (3, 2, levels)
        torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3, 2, dtype=torch.float64), rtol=0, atol=1e-9)


@pytest.mark.parametrize("output", ["categorical", "logistic_mixture"])
def test_log_probs_agree_with_log_prob(output, build):  # noqa: ANN001
    net, out = build("gated", channels=2, levels=6, output=output)
    x = torch.randint(6, (4, 2, 3, 3))
    params = net(x)
    table = out.log_probs(params)  # (B, C, H, W, L)
    picked = table.gather(-1, x.unsqueeze(-1)).squeeze(-1).sum((1, 2, 3))
    torch.testing.assert_close(picked, out(params).log_prob(x), rtol=0, atol=1e-10)


def _all_images(channels: int, height: int, width: int, levels: int) -> torch.Tensor:
    grid = itertools.product(range(levels), repeat=channels * height * width)
    flat = torch.tensor(list(grid))  # model order: (i, j, c)
    return flat.view(-1, height, width, channels).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("arch", ["gated", "plain"])
@pytest.mark.parametrize("output", ["categorical", "logistic_mixture"])
@pytest.mark.parametrize("shape,position_bias", [((1, 2, 2), True), ((2, 1, 2), False)])
def test_nll_equals_brute_force_chain_rule(arch, output, shape, position_bias, build):  # noqa: ANN001
    """Marginalise the joint over all L^D images by brute force: it sums to one, and every
    conditional p(x_k | x_<k) computed from it equals the network's, so -log p(x) is the exact NLL."""
    levels = 3
    channels, height, width = shape
    net, out = build(arch, channels, levels=levels, output=output, size=(height, width) if position_bias else None)
    images = _all_images(channels, height, width, levels)  # (L^D, C, H, W)
    with torch.no_grad():
        params = net(images)
        log_joint = out(params).log_prob(images)  # (L^D,)
        table = out.log_probs(params)  # (L^D, C, H, W, L)
    assert abs(torch.logsumexp(log_joint, 0).item()) < 1e-10
    dims = channels * height * width
    flat = images.permute(0, 2, 3, 1).reshape(len(images), dims)  # model order
    by_prefix = log_joint.view(*([levels] * dims))
    chain = torch.zeros_like(log_joint)
    for k in range(dims):
        marg_k = torch.logsumexp(by_prefix, dim=tuple(range(k + 1, dims))) if k + 1 < dims else by_prefix
        marg_prev = torch.logsumexp(by_prefix, dim=tuple(range(k, dims)))
        index = tuple(flat[:, m] for m in range(k + 1))
        brute = marg_k[index] - (marg_prev[index[:-1]] if k else marg_prev)
        i, rest = divmod(k, width * channels)
        j, c = divmod(rest, channels)
        network = table[torch.arange(len(images)), c, i, j, flat[:, k]]
        torch.testing.assert_close(network, brute, rtol=0, atol=1e-9)
        chain += brute
    torch.testing.assert_close(chain, log_joint, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["pixelcnn", "cpixelcnn"])
def test_model_nll_loss_and_evaluate(name):  # noqa: ANN001
    torch.manual_seed(0)
    spec = DataSpec("tiny", "image", (1, 3, 3), levels=5, num_classes=3)
    model = registry.get("model", name, data=spec, hidden=8, layers=2).double().eval()
    x, y = torch.randint(5, (6, 1, 3, 3)), torch.arange(6) % 3
    batch = Batch(x, y)
    nll = model.nll(batch)
    params = model.net(x, y if name == "cpixelcnn" else None)
    torch.testing.assert_close(nll, -model.head(params).log_prob(x))
    assert (nll > 0).all()
    out = model.loss(batch)
    torch.testing.assert_close(out["loss"], nll.mean())
    torch.testing.assert_close(out["bits_per_dim"], bits_per_dim(nll.mean(), 9))
