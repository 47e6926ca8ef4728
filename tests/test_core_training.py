"""The trainer and the run file: resume, atomicity, NaN guard, Ctrl-C, best weights, accumulation."""

import json

import h5py
import pytest
import torch

from gmkit_core.artifact import read_run, write_run
from gmkit_core.errors import ArtifactError, ConfigError, TrainingError
from gmkit_core.training import TrainConfig, train

FAST = {"eval_every": 10, "checkpoint_every": 20, "batch_size": 64, "lr": 0.01}


def _weights(path):
    rec = read_run(path)
    return rec.weights, rec


def test_resumed_run_is_bitwise_equal_to_uninterrupted(tmp_path, test_models):
    train("test_noisy", "moons:2000", tmp_path / "full.h5", steps=60, train_overrides=FAST, quiet=True, pictures=False)
    train("test_noisy", "moons:2000", tmp_path / "half.h5", steps=30, train_overrides=FAST, quiet=True, pictures=False)
    train(
        "test_noisy",
        "moons:2000",
        tmp_path / "half.h5",
        steps=60,
        resume=tmp_path / "half.h5",
        quiet=True,
        pictures=False,
    )
    full, rec_full = _weights(tmp_path / "full.h5")
    resumed, rec_resumed = _weights(tmp_path / "half.h5")
    assert set(full) == set(resumed)
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    assert int(rec_resumed.trainer["step"]) == 60
    for key in rec_full.optimizer["model"]["state"][0]:
        assert torch.equal(
            rec_full.optimizer["model"]["state"][0][key], rec_resumed.optimizer["model"]["state"][0][key]
        )
    assert len(rec_resumed.history["train"]["step"]) == len(rec_full.history["train"]["step"])


def test_resume_refuses_other_model_or_data(tmp_path, test_models):
    train(
        "test_noisy",
        "moons:500",
        tmp_path / "r.h5",
        steps=5,
        quiet=True,
        pictures=False,
        train_overrides={"batch_size": 50},
    )
    with pytest.raises(ConfigError, match="holds a 'test_noisy' run"):
        train("test_diverging", "moons:500", tmp_path / "r.h5", resume=tmp_path / "r.h5", quiet=True)
    with pytest.raises(ConfigError, match="trained on 'moons:500'"):
        train("test_noisy", "circles", tmp_path / "r.h5", resume=tmp_path / "r.h5", quiet=True)


def test_interrupted_write_keeps_previous_file(tmp_path, test_models, monkeypatch):
    path = tmp_path / "run.h5"
    train("test_noisy", "moons:500", path, steps=5, quiet=True, pictures=False, train_overrides={"batch_size": 50})
    before = read_run(path)

    import gmkit_core.artifact as artifact

    def crash(group, state):
        raise OSError("disk vanished midway")

    monkeypatch.setattr(artifact, "_put_state", crash)
    with pytest.raises(OSError, match="disk vanished"):
        write_run(path, before)
    monkeypatch.undo()
    after = read_run(path)
    assert all(torch.equal(before.best[k], after.best[k]) for k in before.best)
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path, test_models):
    path = tmp_path / "div.h5"
    with pytest.raises(TrainingError, match="diverged at step 30.*last good checkpoint"):
        train(
            "test_diverging",
            "moons:2000",
            path,
            steps=100,
            quiet=True,
            pictures=False,
            train_overrides={**FAST, "log_every": 10},
        )
    rec = read_run(path)
    assert int(rec.trainer["step"]) == 20
    assert all(torch.isfinite(v).all() for v in rec.best.values())


def test_ctrl_c_writes_a_checkpoint(tmp_path, test_models):
    path = tmp_path / "int.h5"
    result = train("test_interrupted", "moons:2000", path, steps=50, quiet=True, pictures=False, train_overrides=FAST)
    assert result.outcome.interrupted
    assert int(read_run(path).trainer["step"]) == 7


def test_best_validation_weights_are_kept(tmp_path, test_models):
    result = train(
        "test_noisy",
        "moons:2000",
        tmp_path / "b.h5",
        steps=60,
        quiet=True,
        pictures=False,
        train_overrides={**FAST, "lr": 0.5},
    )
    rec = read_run(tmp_path / "b.h5")
    scores = rec.history["validation"]["score"]
    steps = rec.history["validation"]["step"]
    best = int(steps[int(scores.argmin())])
    assert result.outcome.best_step == best == int(rec.trainer["best_step"])
    val = __import__("gmkit_core").data.load("moons:2000", "validation")
    assert result.run.model.validation_score(val) == pytest.approx(float(scores.min()), rel=1e-6)


def test_gradient_accumulation_equals_a_larger_batch(test_models):
    from gmkit_core.data import load
    from gmkit_core.registry import registry
    from gmkit_core.training import DefaultTrainer

    data = {"train": load("digits", "train")}

    def weights(**cfg):
        torch.manual_seed(0)
        model = registry.get("model", "independent", data=data["train"].spec)
        DefaultTrainer().fit(
            model,
            data,
            TrainConfig(steps=3, eval_every=0, checkpoint_every=0, quiet=True, device="cpu", lr=0.05, **cfg),
        )
        return model.logits.detach()

    assert torch.allclose(weights(batch_size=100, accumulate=2), weights(batch_size=200), atol=1e-6)
    assert not torch.allclose(weights(batch_size=100), weights(batch_size=200), atol=1e-6)


def test_ema_weights_are_what_evaluation_uses(tmp_path, test_models):
    result = train(
        "test_noisy",
        "moons:2000",
        tmp_path / "e.h5",
        steps=30,
        quiet=True,
        pictures=False,
        train_overrides={**FAST, "ema": 0.9},
    )
    rec = read_run(tmp_path / "e.h5")
    assert rec.ema is not None
    assert not torch.equal(rec.ema["loc"], rec.weights["loc"])
    assert torch.equal(rec.best["loc"], rec.ema["loc"]) or int(rec.trainer["best_step"]) < 30
    assert result.outcome.step == 30


def test_bad_files_give_clear_errors(tmp_path):
    (tmp_path / "trunc.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 50)
    with pytest.raises(ArtifactError, match="trunc.h5: not a gmkit run file"):
        read_run(tmp_path / "trunc.h5")
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = [1, 2, 3]
    with pytest.raises(ArtifactError, match="without the 'gmkit-run' format mark"):
        read_run(tmp_path / "foreign.h5")
    with pytest.raises(ArtifactError, match="no such run file"):
        read_run(tmp_path / "missing.h5")


def test_trainer_option_validation(tmp_path, test_models):
    with pytest.raises(
        ConfigError, match="trainer: invalid value 'lbfgs' for 'optimizer': must be one of adam, adamw, sgd"
    ):
        train("test_noisy", "moons:500", tmp_path / "x.h5", train_overrides={"optimizer": "lbfgs"}, quiet=True)
    with pytest.raises(ConfigError, match="trainer has no option 'lrr'"):
        train("test_noisy", "moons:500", tmp_path / "x.h5", train_overrides={"lrr": 1}, quiet=True)


def test_config_for_sets_options_per_data_and_given_options_win(tmp_path, monkeypatch):
    from gmkit_core.data import load
    from gmkit_core.registry import registry

    cls = registry.entry("model", "independent").load()
    scaled = classmethod(lambda c, data: {"smoothing": 2.5} if data.kind == "image" else {})
    monkeypatch.setattr(cls, "config_for", scaled)
    quick = {"steps": 2, "quiet": True, "pictures": False, "train_overrides": {"eval_every": 0}}
    run = train("independent", "digits", tmp_path / "a.h5", **quick).run
    assert run.model.config.smoothing == 2.5 and read_run(tmp_path / "a.h5").config["smoothing"] == 2.5
    mine = train("independent", "digits", tmp_path / "b.h5", overrides={"smoothing": 0.5}, **quick).run
    assert mine.model.config.smoothing == 0.5
    assert train("independent", "moons:200", tmp_path / "c.h5", **quick).run.model.config.smoothing == 1.0
    built = registry.get("model", "independent", data=load("digits", "train").spec)
    assert built.config.smoothing == 2.5
    resumed = train("independent", "digits", resume=tmp_path / "b.h5", **{**quick, "steps": 3}).run
    assert resumed.model.config.smoothing == 0.5  # a resumed run keeps the options it was trained with


def test_options_with_data_show_the_defaults_a_model_takes_there(monkeypatch, capsys):
    from gmkit_core.cli import main
    from gmkit_core.registry import registry

    cls = registry.entry("model", "independent").load()
    monkeypatch.setattr(
        cls, "config_for", classmethod(lambda c, data: {"smoothing": 2.5} if data.kind == "image" else {})
    )
    monkeypatch.setattr(cls, "defaults_for", classmethod(lambda c, data: {"steps": 7 if data.kind == "image" else 9}))

    def shown(*data: str) -> tuple[float, int]:
        with pytest.raises(SystemExit) as done:
            main(["options", "independent", "--json", *data])
        assert done.value.code == 0
        out = json.loads(capsys.readouterr().out)
        smoothing = next(r["default"] for r in out["model"] if r["name"] == "smoothing")
        return smoothing, next(r["default"] for r in out["train"] if r["name"] == "train.steps")

    assert shown("--data", "digits") == (2.5, 7)
    assert shown("--data", "moons") == (1.0, 9)
    assert shown()[0] == 1.0  # without --data: the Config's own defaults
    with pytest.raises(SystemExit) as exit_:
        main(["options", "independent", "--data", "no-such-data"])
    assert exit_.value.code == 1 and "unknown data 'no-such-data'" in capsys.readouterr().err
