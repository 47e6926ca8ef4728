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


@pytest.mark.parametrize(("model", "data", "options"), [
    ("gan", "moons:512", {"hidden": (16, 16), "latent_dim": 2, "n_critic": 2, "spectral_norm": True}),
    ("gan", "moons:512", {"hidden": (16,), "latent_dim": 2, "loss": "wgan_gp", "r1_gamma": 0.0}),
])
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
