"""Resuming a GAN run is bit-exact: weights, EMA, best weights and both optimisers' states."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from gmkit_core.artifact import read_run
from gmkit_core.training import train

FAST = {"eval_every": 5, "checkpoint_every": 10, "batch_size": 64, "threads": 1}


def _assert_tree_equal(a: Any, b: Any, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            _assert_tree_equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_tree_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.parametrize(
    ("model", "data", "options"),
    [
        (
            "gan",
            "moons:512",
            {"hidden": (16, 16), "latent_dim": 2, "n_critic": 2, "spectral_norm": True, "eval_samples": 100},
        ),
        (
            "gan",
            "moons:512",
            {"hidden": (16,), "latent_dim": 2, "loss": "wgan_gp", "r1_gamma": 0.0, "eval_samples": 100},
        ),
    ],
)
def test_resumed_run_is_bitwise_equal_to_uninterrupted(tmp_path, model: str, data: str, options: dict) -> None:
    common = {"train_overrides": FAST, "overrides": options, "quiet": True, "pictures": False}
    train(model, data, tmp_path / "full.h5", steps=20, **common)
    train(model, data, tmp_path / "half.h5", steps=10, **common)
    train(model, data, tmp_path / "half.h5", steps=20, resume=tmp_path / "half.h5", quiet=True, pictures=False)
    full, resumed = read_run(tmp_path / "full.h5"), read_run(tmp_path / "half.h5")
    assert int(resumed.trainer["step"]) == 20
    assert set(full.optimizer) == {"generator", "discriminator"}
    _assert_tree_equal(full.weights, resumed.weights, "weights")
    _assert_tree_equal(full.ema, resumed.ema, "ema")
    _assert_tree_equal(full.best, resumed.best, "best")
    _assert_tree_equal(full.optimizer, resumed.optimizer, "optimizer")
    assert full.history["validation"]["score"].tolist() == resumed.history["validation"]["score"].tolist()
    assert not torch.equal(full.weights["generator.net.0.weight"], full.ema["generator.net.0.weight"])


def test_conditional_conv_run_resumes_exactly_and_samples_a_label(tmp_path) -> None:
    """cgan on digits: conditional batch norm, projection, spectral norm, DiffAugment; then ``--label``."""
    import gmkit_core as gm

    options = {
        "channels": 4,
        "features": 8,
        "latent_dim": 4,
        "spectral_norm": True,
        "eval_samples": 40,
        "augment": "color,translation,cutout",
    }
    common = {
        "train_overrides": {**FAST, "batch_size": 32, "eval_every": 3},
        "overrides": options,
        "quiet": True,
        "pictures": False,
    }
    train("cgan", "digits", tmp_path / "full.h5", steps=6, **common)
    train("cgan", "digits", tmp_path / "half.h5", steps=3, **common)
    train("cgan", "digits", tmp_path / "half.h5", steps=6, resume=tmp_path / "half.h5", quiet=True, pictures=False)
    full, resumed = read_run(tmp_path / "full.h5"), read_run(tmp_path / "half.h5")
    for what in ("weights", "ema", "best", "optimizer"):
        _assert_tree_equal(getattr(full, what), getattr(resumed, what), what)
    assert any("running_mean" in k for k in full.weights) and any("_u" in k for k in full.weights)
    run = gm.load(tmp_path / "half.h5")
    x = run.sample(5, label=3, seed=1)
    assert x.shape == (5, 1, 8, 8) and x.dtype == torch.int64 and torch.equal(x, run.sample(5, label=3, seed=1))
