"""Trainer speed options on the CPU: mixed precision, compilation, channels-last, the thread policy."""

import pytest
import torch

from gmkit_core.artifact import read_run
from gmkit_core.errors import ConfigError
from gmkit_core.training.run import train
from gmkit_core.training.trainer import default_threads

FAST = {"eval_every": 10, "checkpoint_every": 10, "batch_size": 64, "lr": 0.01}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_like_fp32_and_keeps_full_precision_weights(tmp_path, test_models, precision):
    runs = {
        p: train(
            "test_noisy",
            "moons:2000",
            tmp_path / f"{p}.h5",
            steps=40,
            quiet=True,
            pictures=False,
            train_overrides={**FAST, "lr": 0.05, "precision": p},
        )
        for p in ("fp32", precision)
    }
    weights = read_run(tmp_path / f"{precision}.h5").weights
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())
    start = train(
        "test_noisy", "moons:2000", tmp_path / "start.h5", steps=0, quiet=True, pictures=False, train_overrides=FAST
    ).outcome.best_score
    fp32, mixed = runs["fp32"].outcome.best_score, runs[precision].outcome.best_score
    assert mixed < start - 0.2 and abs(mixed - fp32) < 0.05, (start, fp32, mixed)


def test_autocast_reaches_the_loss(test_models, monkeypatch):
    """The loss is computed under autocast: a matmul inside it runs in bfloat16."""
    import gmkit_testmodels

    seen = []
    original = gmkit_testmodels.Noisy.loss

    def spy(self, batch):
        seen.append(self.net[0](batch.x.float()).dtype)
        return original(self, batch)

    monkeypatch.setattr(gmkit_testmodels.Noisy, "loss", spy)
    from gmkit_core.data import load
    from gmkit_core.registry import registry
    from gmkit_core.training.config import TrainConfig
    from gmkit_core.training.trainer import DefaultTrainer

    data = load("moons:2000", "train")
    model = registry.get("model", "test_noisy", data=data.spec)
    DefaultTrainer().fit(
        model,
        {"train": data},
        TrainConfig(steps=2, batch_size=64, precision="bf16", quiet=True, eval_every=0, checkpoint_every=0),
    )
    assert seen and all(dtype == torch.bfloat16 for dtype in seen)


def test_fp16_loss_scaler_state_resumes_bit_exactly(tmp_path, test_models):
    settings = {**FAST, "precision": "fp16"}
    train(
        "test_noisy", "moons:2000", tmp_path / "full.h5", steps=30, train_overrides=settings, quiet=True, pictures=False
    )
    train(
        "test_noisy", "moons:2000", tmp_path / "half.h5", steps=10, train_overrides=settings, quiet=True, pictures=False
    )
    train("test_noisy", "moons:2000", None, steps=30, resume=tmp_path / "half.h5", quiet=True, pictures=False)
    full, half = read_run(tmp_path / "full.h5"), read_run(tmp_path / "half.h5")
    assert "loss_scaler" in full.trainer
    for key in full.weights:
        assert torch.equal(full.weights[key], half.weights[key]), key


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compile_gives_the_eager_result(tmp_path, test_models, capsys, precision):
    """With dropout and noise in the loss: compiled random operations draw what eager ones draw.

    (A different draw moves the weights by about lr = 1e-2 per Adam step; bf16 rounding by 1e-4.)
    """
    runs = {}
    for compiled in (False, True):
        runs[compiled] = train(
            "test_noisy",
            "moons:2000",
            tmp_path / f"{compiled}.h5",
            steps=3,
            pictures=False,
            train_overrides={**FAST, "eval_every": 0, "compile": compiled, "precision": precision},
        ).run.model.state_dict()
    assert "compiled" in capsys.readouterr().err  # the run header says so
    for key, value in runs[False].items():
        assert torch.isfinite(runs[True][key]).all(), key
        assert torch.allclose(value, runs[True][key], atol=1e-5 if precision == "fp32" else 1e-3), key


def test_compile_falls_back_to_eager_with_a_message(tmp_path, test_models, monkeypatch, capsys):
    def broken(module, options=None):
        def call(*args):
            raise RuntimeError("no C++ compiler found")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    result = train(
        "test_noisy",
        "moons:2000",
        tmp_path / "c.h5",
        steps=5,
        pictures=False,
        train_overrides={**FAST, "compile": True},
    )
    assert result.outcome.step == 5
    err = capsys.readouterr().err
    assert (
        err.count("train.compile: cannot compile this model (RuntimeError: no C++ compiler found); training eagerly")
        == 1
    )


def test_owned_steps_refuse_what_they_cannot_do(tmp_path, test_models):
    for option, match in (("compile", "runs its own training step"), ("precision", "use train.precision=bf16")):
        value = True if option == "compile" else "fp16"
        with pytest.raises(ConfigError, match=match):
            train(
                "test_twoplayer",
                "moons:2000",
                tmp_path / "r.h5",
                steps=2,
                quiet=True,
                pictures=False,
                train_overrides={option: value},
            )


def test_channels_last_conv_weights(tmp_path, test_models):
    pytest.importorskip("gmkit_vae")
    result = train(
        "vae",
        "digits",
        tmp_path / "r.h5",
        steps=2,
        quiet=True,
        pictures=False,
        overrides={"network": "conv"},
        train_overrides={"channels_last": True, "eval_every": 0, "batch_size": 32},
    )
    convs = [m.weight for m in result.run.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)


def test_thread_policy_divides_the_cpus_among_local_processes(monkeypatch, tmp_path, test_models, capsys):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    alone = default_threads()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert default_threads() == max(1, alone // 2)
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    before = torch.get_num_threads()
    try:
        train("test_noisy", "moons:2000", tmp_path / "r.h5", steps=1, pictures=False, train_overrides={"threads": 1})
        assert "cpu, 1 CPU thread," in capsys.readouterr().err and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
