"""ebm and jem: conformance, bit-exact resume with the replay buffer, divergence stops, the image likelihood."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from gmkit_ebm.objectives import GaussianNoise, contrastive_divergence

from gmkit_core.artifact import read_run
from gmkit_core.data import Batch, Dataset, DataSpec, load
from gmkit_core.errors import DataError, TrainingError
from gmkit_core.registry import registry
from gmkit_core.training import train

VECTOR = {"hidden": 16, "depth": 2, "grid": 16, "buffer_size": 128, "sgld_steps": 3}
IMAGE = {
    "channels": 8,
    "buffer_size": 64,
    "sgld_steps": 3,
    "sample_steps": 5,
    "ais_chains": 8,
    "ais_steps": 10,
    "nll_samples": 2,
}


@pytest.mark.parametrize(
    "options", [{}, {"objective": "cd"}, {"objective": "dsm"}, {"objective": "cd", "sampler": "short_run"}]
)
def test_conformance_on_vectors(options: dict, gmkit_check) -> None:  # type: ignore[no-untyped-def]
    gmkit_check("ebm", data="moons", **VECTOR, **options)


@pytest.mark.parametrize(
    "name,options",
    [
        ("ebm", {}),
        ("ebm", {"objective": "nce", "spectral_norm": True}),
        ("jem", {}),
        ("jem", {"sampler": "persistent"}),
    ],
)
def test_conformance_on_digits(name: str, options: dict, gmkit_check) -> None:  # type: ignore[no-untyped-def]
    gmkit_check(name, data="digits", **IMAGE, **options)


def test_likelihood_kinds() -> None:
    cls = registry.entry("model", "ebm").load()
    assert cls.likelihood_kind(DataSpec("v", "vector", (2,))) == "exact"
    assert cls.likelihood_kind(DataSpec("v", "vector", (3,))) == "estimate"
    assert cls.likelihood_kind(load("digits").spec) == "estimate"


def test_resume_with_replay_buffer_is_bit_exact(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # constant learning rate: a cosine decay spans the run's total steps, which differ between the two halves
    settings = {"batch_size": 32, "checkpoint_every": 0, "eval_every": 0, "schedule": "constant"}
    kw = {"overrides": {**VECTOR, "objective": "cd"}, "train_overrides": settings, "quiet": True, "pictures": False}
    train("ebm", "moons:500", tmp_path / "full.h5", steps=6, **kw)
    train("ebm", "moons:500", tmp_path / "half.h5", steps=3, **kw)
    train("ebm", "moons:500", tmp_path / "half.h5", steps=6, resume=tmp_path / "half.h5", quiet=True, pictures=False)
    full, resumed = read_run(tmp_path / "full.h5"), read_run(tmp_path / "half.h5")
    assert int(resumed.trainer["step"]) == 6
    assert {"buffer.samples", "buffer.age"} <= set(full.weights)
    assert int(full.weights["buffer.age"].max()) > 0
    for key in full.weights:
        assert torch.equal(full.weights[key], resumed.weights[key]), key
    state_full, state_resumed = full.optimizer["energy"]["state"], resumed.optimizer["energy"]["state"]
    assert set(state_full) == set(state_resumed)
    for index, key in itertools.product(state_full, ("exp_avg", "exp_avg_sq", "step")):
        assert torch.equal(torch.as_tensor(state_full[index][key]), torch.as_tensor(state_resumed[index][key]))
    assert {"e_data", "e_sample", "buffer_age"} <= set(full.history["train"])


def test_saturating_samples_stop_training_naming_the_step_size(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TrainingError, match=r"box bounds.*--set step_size="):
        train(
            "ebm",
            "moons:500",
            tmp_path / "sat.h5",
            steps=5,
            overrides={**VECTOR, "objective": "cd", "step_size": 1e4, "noise": 0.0},
            train_overrides={"batch_size": 32},
            quiet=True,
            pictures=False,
        )


def test_exploding_energies_stop_training_naming_alpha(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TrainingError, match=r"energies exploded.*--set alpha="):
        train(
            "ebm",
            "moons:500",
            tmp_path / "big.h5",
            steps=5,
            overrides={**VECTOR, "energy_limit": 1e-9},
            train_overrides={"batch_size": 32},
            quiet=True,
            pictures=False,
        )


def test_default_objective_is_nce_on_vectors_and_cd_on_images() -> None:
    vector, image = load("moons").spec, load("digits").spec
    assert registry.get("model", "ebm", data=vector, **VECTOR).objective == "nce"
    assert registry.get("model", "ebm", data=image, **IMAGE).objective == "cd"
    assert registry.get("model", "ebm", data=vector, **VECTOR, objective="cd").objective == "cd"
    jem = registry.get("model", "jem", data=image, **IMAGE)
    assert jem.objective == "cd" and len(jem.buffer) == 0  # jem: short-run negatives by default
    cls = registry.entry("model", "ebm").load()
    assert cls.defaults_for(vector)["steps"] > cls.defaults_for(image)["steps"]


def test_jem_validation_ranks_errors_first_then_cross_entropy() -> None:
    torch.manual_seed(0)
    data = load("digits", "validation")
    small = Dataset(data.x[:50], data.y[:50], data.spec, "validation")
    model = registry.get("model", "jem", data=data.spec, **IMAGE).eval()
    logits = model.logits(model.continuous(small.x)).detach()
    wrong = int((logits.argmax(1) != small.y).sum())
    ce = float(torch.nn.functional.cross_entropy(logits.double(), small.y))
    score = model.validation_score(small, batch_size=16)
    assert math.isclose(score, (wrong + ce / (1 + ce)) / 50, rel_tol=1e-5)
    assert wrong / 50 <= score < (wrong + 1) / 50


def test_jem_cross_entropy_sees_translated_images() -> None:
    from gmkit_ebm.translate import random_translate

    data = load("digits", "train")
    batch = Batch(data.x[:32], data.y[:32])
    for shift in (0, 2):
        model = registry.get("model", "jem", data=data.spec, **IMAGE, shift=shift)
        torch.manual_seed(3)
        model.continuous(batch.x, model.config.dequant_noise)  # the generative term's draw comes first
        moved = model.continuous(random_translate(batch.x, shift), model.config.dequant_noise)
        expected = torch.nn.functional.cross_entropy(model.logits(moved), batch.y)
        torch.manual_seed(3)
        out = model.loss(batch)
        assert torch.allclose(out["cross_entropy"], expected.detach()), shift
    torch.manual_seed(3)
    unmoved = torch.nn.functional.cross_entropy(model.logits(model.continuous(batch.x, 0.02)), batch.y)
    assert not torch.allclose(out["cross_entropy"], unmoved.detach())  # shift 2 does move the images


def test_jem_needs_labels() -> None:
    with pytest.raises(DataError, match="labelled"):
        registry.get("model", "jem", data=load("moons").spec)


def test_image_bin_probabilities_sum_to_one() -> None:
    """On 2-pixel images with 3 levels the 9 bin masses P(x) = (1/Z) int_bin exp(-E) must sum to one."""
    spec = DataSpec("tiny", "image", (1, 1, 2), levels=3)
    torch.manual_seed(0)
    model = registry.get(
        "model", "ebm", data=spec, channels=4, ais_chains=128, ais_steps=100, ais_step_size=0.01, nll_samples=128
    )
    with torch.no_grad():
        for p in model.parameters():  # a non-flat energy
            p.mul_(8.0)
    model.eval()
    x = torch.tensor(list(itertools.product(range(3), repeat=2))).reshape(9, 1, 1, 2)
    total = torch.exp(-model.nll(Batch(x, None)).double()).sum()
    stderr = model.partition().stderr
    assert abs(float(total) - 1) < 4 * stderr + 0.03, (float(total), stderr)
    e = model.energy(model.continuous(x)).detach()
    assert float(e.max() - e.min()) > 1  # the test is not about a flat energy


def test_cd_loss_formula() -> None:
    e_pos, e_neg = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0])
    assert math.isclose(float(contrastive_divergence(e_pos, e_neg, 0.5)), 2 - (-1) + 0.5 * (1 + 9 + 4 + 0) / 2)


def test_nce_noise_is_the_fitted_gaussian() -> None:
    torch.manual_seed(0)
    x = (
        torch.randn(5000, 3, dtype=torch.float64)
        @ torch.tensor([[1.0, 0.5, 0], [0, 1.0, 0.3], [0, 0, 0.5]], dtype=torch.float64)
        + 2
    )
    noise = GaussianNoise(3, jitter=0.0).double()
    noise.fit(x)
    ref = torch.distributions.MultivariateNormal(x.mean(0), torch.cov(x.T))
    y = torch.randn(10, 3, dtype=torch.float64)
    assert torch.allclose(noise.log_prob(y), ref.log_prob(y))
    draws = noise.sample(20000)
    assert torch.allclose(draws.mean(0), x.mean(0), atol=0.05)


def test_jem_accuracy_is_the_share_of_correct_predictions() -> None:
    torch.manual_seed(0)
    data = load("digits", "test")
    small = Dataset(data.x[:40], data.y[:40], data.spec, "test")
    model = registry.get("model", "jem", data=data.spec, **IMAGE).eval()
    out = model.evaluate(small)
    expected = float((model.predict(small.x) == small.y).double().mean())
    assert out["accuracy"] == expected and out["likelihood"] == "estimate"
    assert {"log_z", "log_z_stderr", "ais_acceptance", "nll_nats", "bits_per_dim"} <= set(out)
