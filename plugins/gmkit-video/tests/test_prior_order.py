"""The prior over the code volume (the registered transformer) is causal in time-major order; prefix sampling."""

from __future__ import annotations

import pytest
import torch
from gmkit_video.prior import image_to_volume, sample_after_prefix, volume_to_image

from gmkit_core.data import Batch, DataSpec
from gmkit_core.registry import registry

T, H, W, K = 3, 2, 2, 5


def _prior() -> torch.nn.Module:
    torch.manual_seed(0)
    prior = registry.get(
        "model",
        "transformer",
        data=DataSpec("codes", "image", (1, T, H * W), levels=K),
        dim=16,
        layers=2,
        heads=2,
        dropout="0.0",
    ).eval()
    with torch.no_grad():  # far from the near-uniform start, so a leak would show
        for p in prior.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return prior


def _per_code_log_probs(prior: torch.nn.Module, volume: torch.Tensor) -> torch.Tensor:
    """log p(k_p | k_<p) ``(B, T, H, W)`` of code volumes ``(B, T, H, W)`` through the prior's public logits."""
    image = volume_to_image(volume)
    logits = prior.logits(image)  # (B, N, K) in raster order
    per = torch.log_softmax(logits.double(), -1).gather(-1, image.reshape(len(volume), -1, 1)).squeeze(-1)
    return per.reshape(volume.shape)


def test_layout_round_trip_and_time_major_order() -> None:
    volume = torch.arange(2 * T * H * W).reshape(2, T, H, W)
    image = volume_to_image(volume)
    assert image.shape == (2, 1, T, H * W)  # one row per time step
    assert torch.equal(image_to_volume(image, H), volume)
    assert torch.equal(image[:, 0, 1], volume[:, 1].reshape(2, -1))
    # raster order of the image visits time step 0 entirely, then 1, ...
    assert torch.equal(image.reshape(2, -1), volume.reshape(2, -1))


def test_changing_a_later_code_never_changes_earlier_log_probs() -> None:
    prior = _prior()
    g = torch.Generator().manual_seed(1)
    volume = torch.randint(K, (1, T, H, W), generator=g)
    base = _per_code_log_probs(prior, volume).flatten()
    assert torch.allclose(base.sum(), -prior.nll(Batch(volume_to_image(volume))).double(), atol=1e-4)
    n = T * H * W
    for p in range(n):
        changed = volume.clone().flatten()
        changed[p] = (changed[p] + 1 + int(torch.randint(K - 1, (), generator=g))) % K
        other = _per_code_log_probs(prior, changed.reshape(volume.shape)).flatten()
        assert torch.allclose(other[: p + 1][:p], base[:p], atol=1e-6), f"position {p} leaked backwards"
        if p + 1 < n:
            assert not torch.allclose(other[p + 1 :], base[p + 1 :]), f"position {p} does not reach later codes"
    # in volume terms: a change anywhere in time step 2 leaves every code of time steps 0 and 1 unchanged
    changed = volume.clone()
    changed[0, 2] = (changed[0, 2] + 1) % K
    assert torch.allclose(_per_code_log_probs(prior, changed)[:, :2], _per_code_log_probs(prior, volume)[:, :2])


def test_prefix_sampler_keeps_the_prefix_and_matches_the_prior_sampler() -> None:
    prior = _prior()
    empty = torch.zeros(4, 0, dtype=torch.long)
    ours = sample_after_prefix(prior, empty, torch.Generator().manual_seed(3))
    theirs = prior.sample(4, generator=torch.Generator().manual_seed(3), cache=False)
    assert torch.equal(ours, theirs)
    prefix = torch.randint(K, (4, H * W), generator=torch.Generator().manual_seed(4))
    drawn = sample_after_prefix(prior, prefix, torch.Generator().manual_seed(5))
    assert torch.equal(drawn.reshape(4, -1)[:, : H * W], prefix)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_prefix_sampler_draws_from_the_conditional(temperature: float) -> None:
    """One free position: the frequencies match p(k_last | prefix)^(1/temperature), normalised (binomial tolerance)."""
    torch.manual_seed(0)
    prior = registry.get(
        "model",
        "transformer",
        data=DataSpec("codes", "image", (1, 1, 2), levels=3),
        dim=8,
        layers=1,
        heads=2,
        dropout="0.0",
    ).eval()
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(0.3 * torch.randn_like(p))
    prefix = torch.full((4000, 1), 2, dtype=torch.long)
    drawn = sample_after_prefix(prior, prefix, torch.Generator().manual_seed(0), temperature)[:, 0, 0, 1]
    log_p = torch.log_softmax(prior.logits(torch.tensor([[[[2, 0]]]]))[0, 1].double(), -1)
    assert log_p.exp().max() < 0.8 and log_p.exp().min() > 0.05  # spread out, so every level is tested
    probs = torch.softmax(log_p / temperature, -1)
    if temperature != 1.0:  # far enough from the untempered conditional for the check to tell them apart
        assert (probs - log_p.exp()).abs().max() > 0.1
    freq = torch.bincount(drawn, minlength=3).double() / 4000
    assert torch.allclose(freq, probs.double(), atol=4 * (0.25 / 4000) ** 0.5)
