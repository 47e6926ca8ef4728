"""The pixel-level bound is a valid bound: on a tiny video space the masses exp(-bound) sum to at most 1."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from gmkit_core.data import Batch, DataSpec
from gmkit_core.registry import registry

TINY = DataSpec("tiny", "video", (2, 1, 2, 2), levels=2)  # T=2 frames of 1x2x2, 2 levels: 2^8 = 256 clips
SMALL = {
    "codebook_size": "3",
    "code_dim": "2",
    "hidden": "4",
    "res_blocks": "0",
    "mixtures": "2",
    "prior_options": "dim=8,layers=1,heads=2,dropout=0.0",
}


def _every_clip() -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(2), repeat=TINY.dims))).view(-1, *TINY.shape)


def _tiny_model(**options: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = registry.get("model", "videogpt", data=TINY, **{**SMALL, **options}).double().eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # sharp, non-uniform decoder and prior
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 1.5)
        model.quantizer.codebook.copy_(torch.randn(model.quantizer.codebook.shape, generator=g, dtype=torch.float64))
    model.prior_fitted.fill_(1)
    return model


@pytest.mark.parametrize(
    "options",
    [
        {"decoder": "categorical", "time_downsample": "2", "time_kernel": "3", "downsample": "2"},
        {"decoder": "logistic_mixture", "time_downsample": "2", "time_kernel": "3", "downsample": "2"},
        {"decoder": "categorical", "downsample": "2"},  # the defaults: a code per frame, the prior across frames
        {"decoder": "logistic", "temporal": "false", "time_downsample": "1", "downsample": "2"},
    ],
)
def test_bound_masses_sum_to_at_most_one_and_exceed_the_exact_nll(options: dict[str, str]) -> None:
    model = _tiny_model(**options)
    x = _every_clip()
    with torch.no_grad():
        bound = model.nll(Batch(x)).double()  # (256,)
        # the exact marginal P(x) = sum_k p(k) p(x | e_k) over every code volume k
        K, volume = model.config.codebook_size, model.volume
        volumes = torch.tensor(list(itertools.product(range(K), repeat=math.prod(volume)))).view(-1, *volume)
        prior_nats = model.code_nats(volumes).double()  # (K^n,)
        recon = torch.stack([model.recon_nats(x, k.expand(len(x), *volume)) for k in volumes], 1).double()
        exact = -torch.logsumexp(-(recon + prior_nats), dim=1)  # (256,)
    assert abs(float(torch.exp(-prior_nats).sum()) - 1) < 1e-9  # the prior is normalised over code volumes
    assert abs(float(torch.exp(-exact).sum()) - 1) < 1e-9  # so is the marginal over all 256 clips
    total = float(torch.exp(-bound).sum())
    assert total <= 1 + 1e-12
    assert bool((bound >= exact - 1e-9).all())
    assert total < 1  # strictly: the other code volumes carry some mass
    # the bound's code term is the prior's exact NLL of the clip's own code volume
    codes = model.encode(x)
    assert torch.allclose(bound, (model.recon_nats(x, codes) + model.code_nats(codes)).double())


def test_before_stage_two_the_code_term_is_the_uniform_prior() -> None:
    model = _tiny_model(decoder="categorical", time_downsample="2", time_kernel="3", downsample="2")
    model.prior_fitted.fill_(0)
    x = _every_clip()
    with torch.no_grad():
        codes = model.encode(x)
        bound = model.nll(Batch(x))
        gap = bound - model.recon_nats(x, codes)
    assert torch.allclose(gap, torch.full_like(gap, math.log(3)))
    assert float(torch.exp(-bound).sum()) <= 1 + 1e-12
