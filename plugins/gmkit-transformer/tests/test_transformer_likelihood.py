"""The transformer's NLL is an exact, normalised likelihood over the discrete images."""

import math

import pytest
import torch

from gmkit_core.data import Batch, DataSpec
from gmkit_core.registry import registry

TINY = DataSpec("tiny", "image", (1, 2, 2), levels=3, num_classes=2)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_probabilities_of_all_81_images_sum_to_one(float64_default, every_image, scramble, positions):
    model = registry.get("model", "transformer", data=TINY, dim=8, layers=2, heads=2, positions=positions).eval()
    scramble(model, 1.0)
    with torch.no_grad():
        nll = model.nll(Batch(every_image(TINY)))  # (81,)
    p = torch.exp(-nll)
    assert nll.dtype == torch.float64
    assert abs(float(p.sum()) - 1.0) < 1e-12
    assert float(p.max() / p.min()) > 5  # far from uniform, so the sum is not 1 by symmetry


def test_conditional_model_normalises_for_every_label(float64_default, every_image, scramble):
    model = registry.get("model", "ctransformer", data=TINY, dim=8, layers=1, heads=2).eval()
    scramble(model, 1.0)
    xs = every_image(TINY)
    per_label = []
    for label in range(2):
        with torch.no_grad():
            nll = model.nll(Batch(xs, torch.full((len(xs),), label)))
        assert abs(float(torch.exp(-nll).sum()) - 1.0) < 1e-12
        per_label.append(nll)
    assert not torch.allclose(per_label[0], per_label[1])  # the label matters
    with torch.no_grad():
        marginal = model.marginal_nll(Batch(xs))  # the core's (1/K) sum_y p(x|y)
    assert abs(float(torch.exp(-marginal).sum()) - 1.0) < 1e-12


def test_nll_equals_the_chain_rule_from_prefix_passes(float64_default, scramble):
    spec = DataSpec("small", "image", (2, 2, 2), levels=4)
    model = registry.get("model", "transformer", data=spec, dim=8, layers=2, heads=2).eval()
    scramble(model, 0.7)
    x = torch.randint(4, (3, 2, 2, 2), generator=torch.Generator().manual_seed(0))
    s = model.to_sequence(x)
    start = torch.full((3, 1), model.net.start)
    log_p = torch.zeros(3)
    for p in range(s.shape[1]):  # one separate forward pass per prefix, no teacher forcing
        logits = model.net(torch.cat([start, s[:, :p]], dim=1))[:, p]
        log_p += torch.log_softmax(logits, -1).gather(1, s[:, p : p + 1]).squeeze(1)
    assert torch.allclose(model.nll(Batch(x)), -log_p, atol=1e-12)


def test_loss_is_mean_nll_and_bits_per_dim(float64_default):
    spec = DataSpec("small", "image", (1, 2, 3), levels=5)
    model = registry.get("model", "transformer", data=spec, dim=8, layers=1, heads=2, dropout=0.0)
    x = torch.randint(5, (4, 1, 2, 3))
    out = model.loss(Batch(x))
    assert torch.allclose(out["loss"], model.nll(Batch(x)).mean())
    assert math.isclose(float(out["bits_per_dim"]), float(out["loss"].detach()) / (6 * math.log(2)))
