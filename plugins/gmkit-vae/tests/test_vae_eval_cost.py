"""``evaluate`` is fast by default (IWAE with k = 100) and says what it computed: ``iwae_k``,
``iwae_subset`` (examples used) and ``iwae_stderr`` (standard error over them)."""

from __future__ import annotations

import math

import pytest
import torch

from gmkit_core.data import Batch, Dataset
from gmkit_core.data import load as load_data
from gmkit_core.registry import registry

SMALL = {"latent_dim": 4, "hidden": (32,), "iwae_chunk": 5}


@pytest.fixture(scope="module")
def digits() -> Dataset:
    test = load_data("digits", "test")
    return Dataset(test.x[:30], test.y[:30], test.spec, "test")


def _model(data: Dataset, **options: object):
    torch.manual_seed(0)
    return registry.get("model", "vae", data=data.spec, **{**SMALL, **options})


def test_default_is_k_100_on_every_example(digits: Dataset) -> None:
    model = _model(digits)
    assert model.config.iwae_k == 100 and model.config.iwae_subset == 0
    report = model.evaluate(digits, batch_size=16)
    assert report["iwae_k"] == 100 and report["iwae_subset"] == 30
    assert report["iwae_nll_nats"] <= report["nll_nats"] + 1.0  # the IWAE bound is (in expectation) the tighter
    assert report["iwae_stderr"] > 0


def test_subset_mean_and_standard_error_are_those_of_the_chosen_examples(digits: Dataset) -> None:
    """With ``iwae_nll`` replaced by a known per-example value, the figures are its mean and s / sqrt(m)."""
    model = _model(digits, iwae_subset=12)
    seen: list[torch.Tensor] = []

    def known(batch: Batch, k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        seen.append(batch.x)
        return batch.x.flatten(1).double().sum(1)

    model.iwae_nll = known  # type: ignore[method-assign]
    report = model.evaluate(digits, batch_size=5)
    index = model.iwae_examples(len(digits))
    values = digits.x[index].flatten(1).double().sum(1)
    assert report["iwae_subset"] == 12 and len(index.unique()) == 12
    assert torch.equal(torch.cat(seen), digits.x[index])  # exactly the chosen examples, each once
    assert report["iwae_nll_nats"] == pytest.approx(float(values.mean()), rel=1e-12)
    s = math.sqrt(float(((values - values.mean()) ** 2).sum()) / 11)
    assert report["iwae_stderr"] == pytest.approx(s / math.sqrt(12), rel=1e-12)
    assert report["n"] == 30  # the ELBO still covers the whole split
    assert torch.equal(index, model.iwae_examples(len(digits)))  # a fixed subset, comparable across runs
    assert not torch.equal(index, torch.arange(12))  # a random subset, not the first examples


def test_a_subset_at_least_the_split_means_all(digits: Dataset) -> None:
    assert torch.equal(_model(digits, iwae_subset=500).iwae_examples(30), torch.arange(30))
