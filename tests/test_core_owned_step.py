"""A model that owns its optimisation step: two optimisers, alternating updates, its own state, bit-exact resume."""

import pytest
import torch

from gmkit_core.artifact import read_run
from gmkit_core.data import Batch, DataSpec
from gmkit_core.errors import ConfigError, NotRegisteredError
from gmkit_core.training.config import TrainConfig
from gmkit_core.training.run import train
from gmkit_core.training.trainer import DefaultTrainer, _Loop

FAST = {"eval_every": 10, "checkpoint_every": 20, "batch_size": 64, "ema": 0.9}


def _run(tmp_path, name, steps, resume=None, overrides=FAST):
    return train(
        "test_twoplayer",
        "moons:2000",
        tmp_path / name,
        steps=steps,
        train_overrides=None if resume else overrides,
        resume=resume,
        quiet=True,
        pictures=False,
    )


def test_two_optimisers_resume_bit_exactly(tmp_path, test_models):
    _run(tmp_path, "full.h5", 40)
    _run(tmp_path, "half.h5", 20)
    _run(tmp_path, "half.h5", 40, resume=tmp_path / "half.h5")
    full, resumed = read_run(tmp_path / "full.h5"), read_run(tmp_path / "half.h5")
    for state in ("weights", "ema", "best"):
        a, b = getattr(full, state), getattr(resumed, state)
        assert set(a) == set(b)
        for key in a:
            assert torch.equal(a[key], b[key]), (state, key)
    assert int(full.weights["critic_updates"]) == 2 * 40  # the model's own state, two critic steps per step
    assert set(full.optimizer) == {"generator", "critic"}
    for group in ("generator", "critic"):
        for index, per_param in full.optimizer[group]["state"].items():
            for key, value in per_param.items():
                assert torch.equal(value, resumed.optimizer[group]["state"][index][key]), (group, index, key)
        assert full.optimizer[group]["param_groups"] == resumed.optimizer[group]["param_groups"]
    assert full.history["train"]["d_loss"].shape == resumed.history["train"]["d_loss"].shape


def test_each_update_steps_only_its_own_group(test_models):
    from gmkit_core.registry import registry

    torch.manual_seed(0)
    spec = DataSpec("moons", "vector", (2,))
    model = registry.get("model", "test_twoplayer", data=spec)
    config = TrainConfig(steps=1, batch_size=8, device="cpu", quiet=True)
    from gmkit_core.data import Dataset

    data = Dataset(torch.randn(64, 2), None, spec, "train")
    loop = _Loop(DefaultTrainer(), model, {"train": data}, config, None)
    loop._setup()
    from gmkit_core.training.trainer import _OwnedStep

    step = _OwnedStep(loop)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    step.update("critic", model._critic_loss(data.x[:8]))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("generator."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("critic."))
    before = {k: v.clone() for k, v in after.items()}
    g_loss = torch.nn.functional.softplus(-model.critic(model._fake(8))).mean()
    step.update("generator", g_loss)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("critic."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("generator."))
    # group settings reach the optimisers: own learning rates and betas
    assert loop.optimizers["critic"].param_groups[0]["betas"] == (0.0, 0.9)
    assert loop.optimizers["generator"].param_groups[0]["lr"] == pytest.approx(2e-3)
    with pytest.raises(KeyError, match="no optimizer group 'nope'"):
        step.update("nope", g_loss)
    assert isinstance(step.next_batch(), Batch)


def test_owned_step_refuses_accumulation(tmp_path, test_models):
    with pytest.raises(ConfigError, match="accumulate=2.*own training step"):
        _run(tmp_path, "acc.h5", 4, overrides={**FAST, "accumulate": 2})


def test_a_plugin_trainer_is_selected_by_name(tmp_path, test_models):
    result = train(
        "test_noisy",
        "moons:2000",
        tmp_path / "short.h5",
        steps=20,
        quiet=True,
        pictures=False,
        train_overrides={**FAST, "trainer": "test_short"},
    )
    assert result.outcome.step == 10  # the plugin's trainer ran (it stops at half the steps)
    with pytest.raises(NotRegisteredError, match="no trainer named 'nope'; available: default, test_short"):
        train(
            "test_noisy",
            "moons:2000",
            tmp_path / "x.h5",
            steps=2,
            quiet=True,
            pictures=False,
            train_overrides={"trainer": "nope"},
        )


def test_the_progress_bar_shows_the_models_own_figures():
    from gmkit_core.training.trainer import _postfix

    line = _postfix({"loss": 0.7, "d_loss": 1.4, "d_real_acc": 0.5, "d_fake_acc": 0.25}, 1000.0)
    assert line == "loss 0.7  d_loss 1.4  d_real_acc 0.5  d_fake_acc 0.25  1,000 ex/s"
