"""Regression tests for faults a new user hit: each gives one clear line, and nothing is lost."""

import os
import subprocess
import sys

import click
import h5py
import numpy as np
import pytest
import torch

from gmkit_core.errors import ConfigError
from gmkit_core.runfile import lock
from gmkit_core.training.run import train

GMKIT = [sys.executable, "-m", "gmkit_core.cli"]
QUICK = ["--steps", "10", "--quiet", "--no-pictures"]


def gmkit(*args, cwd=None):
    return subprocess.run([*GMKIT, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def one_error_line(proc, rc=1):
    assert proc.returncode == rc, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_run_files_end_in_h5(tmp_path):
    assert "run files end in .h5" in one_error_line(
        gmkit("train", "independent", "--data", "moons", "--out", str(tmp_path / "x.txt"), *QUICK)
    )
    assert not (tmp_path / "x.txt").exists()


def test_an_unwritable_folder_fails_before_training(tmp_path, monkeypatch):
    import gmkit_core.runfile as runfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(runfile.tempfile, "mkstemp", refuse)
    trained = []
    monkeypatch.setattr("gmkit_core.training.run._fit", lambda *a, **k: trained.append(1))
    with pytest.raises(ConfigError, match="cannot write in .*Permission denied"):
        train("independent", "moons", tmp_path / "r.h5", steps=5)
    assert not trained


def test_an_existing_run_is_not_replaced_without_force(tmp_path):
    out = str(tmp_path / "r.h5")
    assert gmkit("train", "independent", "--data", "moons", "--out", out, *QUICK).returncode == 0
    before = (tmp_path / "r.h5").read_bytes()
    line = one_error_line(gmkit("train", "independent", "--data", "moons", "--out", out, *QUICK))
    assert "exists; pass --force" in line and (tmp_path / "r.h5").read_bytes() == before
    assert gmkit("train", "independent", "--data", "moons", "--out", out, "--force", *QUICK).returncode == 0


def test_a_second_writer_fails_at_once(tmp_path):
    out = tmp_path / "r.h5"
    with lock(out):  # held here as a running training would hold it
        line = one_error_line(gmkit("train", "independent", "--data", "moons", "--out", str(out), *QUICK))
    assert f"another gmkit train is writing this run (pid {os.getpid()})" in line
    assert not out.exists()
    assert gmkit("train", "independent", "--data", "moons", "--out", str(out), *QUICK).returncode == 0
    assert not (tmp_path / ".r.h5.lock").exists()


def test_resume_defaults_out_and_says_when_there_is_nothing_to_do(tmp_path):
    out = str(tmp_path / "r.h5")
    assert gmkit("train", "independent", "--data", "moons", "--out", out, *QUICK).returncode == 0
    proc = gmkit("train", "independent", "--data", "moons", "--resume", out, "--steps", "10")
    assert proc.returncode == 0 and "already reached step 10" in proc.stderr and "0.0s" not in proc.stdout
    proc = gmkit(
        "train", "independent", "--data", "moons", "--resume", out, "--steps", "20", "--quiet", "--no-pictures"
    )
    assert proc.returncode == 0
    from gmkit_core.artifact import read_run

    assert int(read_run(out).trainer["step"]) == 20
    proc = gmkit("train", "independent", "--data", "moons", "--steps", "3")
    assert proc.returncode == 2 and "--out RUN.h5 is required (or --resume" in proc.stderr


def test_extending_a_finished_cosine_run_is_flagged(tmp_path):
    out = tmp_path / "r.h5"
    train("independent", "moons", out, steps=10, train_overrides={"schedule": "cosine"}, quiet=True, pictures=False)
    result = train("independent", "moons", None, steps=20, resume=out, quiet=True, pictures=False)
    assert any("not bit-identical" in n for n in result.notices)


def test_relative_data_sources_are_stored_absolute(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "v.npz", x=np.random.RandomState(0).randn(400, 2).astype("float32"))
    assert (
        gmkit("train", "independent", "--data", "npz:data/v.npz", "--out", "r.h5", *QUICK, cwd=tmp_path).returncode == 0
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert gmkit("eval", str(tmp_path / "r.h5"), cwd=elsewhere).returncode == 0
    (data / "v.npz").rename(data / "moved.npz")
    line = one_error_line(gmkit("eval", str(tmp_path / "r.h5"), cwd=elsewhere))
    assert str(data / "v.npz") in line and "--data" in line


def test_training_from_in_memory_arrays(tmp_path):
    rng = np.random.RandomState(0)
    arrays = {"x_train": rng.randn(300, 2).astype("float32"), "x_validation": rng.randn(50, 2).astype("float32")}
    result = train("independent", arrays, tmp_path / "r.h5", steps=5, quiet=True, pictures=False)
    assert result.run.record.data["source"] == "<in-memory arrays>"
    assert torch.isfinite(
        result.run.model.nll(next(iter(__import__("gmkit_core").data.load("moons", "test").batches(8))))
    ).all()


@pytest.mark.parametrize(
    "device, expected",
    [("cuda", "this torch build has no CUDA"), ("tpu", "unknown device"), ("meta", "gmkit runs on cpu, cuda or mps")],
)
def test_unusable_devices_list_what_is_available(tmp_path, device, expected):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    line = one_error_line(
        gmkit("train", "independent", "--data", "moons", "--out", str(tmp_path / "r.h5"), "--device", device, *QUICK)
    )
    assert expected in line and "available here: cpu" in line


def test_sample_and_eval_default_to_the_best_device_like_train():
    from gmkit_core.cli.runs import evaluate, sample
    from gmkit_core.cli.runs import train as train_command

    defaults = {c.name: {p.name: p.default for p in c.params}["device"] for c in (sample, evaluate)}
    assert defaults == {"sample": "auto", "eval": "auto"}
    # train passes no device unless asked, so a resumed run keeps its own; a new run picks the best available
    assert "best available" in {p.name: p.help for p in train_command.params if isinstance(p, click.Option)}["device"]


def test_ctrl_c_before_training_exits_130(monkeypatch, capsys):
    from gmkit_core.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("gmkit_core.training.train", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "independent", "--data", "moons", "--out", "never.h5"])
    assert exit_info.value.code == 130 and "error: interrupted" in capsys.readouterr().err


def test_flipped_bytes_in_stored_weights_are_an_error(tmp_path):
    out = tmp_path / "r.h5"
    train("independent", "moons", out, steps=5, quiet=True, pictures=False)
    with h5py.File(out, "r") as f:
        name = next(iter(f["best"]))
        offset = f["best"][name].id.get_chunk_info(0).byte_offset
    raw = bytearray(out.read_bytes())
    raw[offset] ^= 0xFF
    out.write_bytes(bytes(raw))
    line = one_error_line(gmkit("eval", str(out)))
    assert "damaged run file" in line


def test_plugins_listing_says_entry_or_entries():
    out = gmkit("plugins").stdout
    assert "1 entries" not in out


def test_bench_checks_every_model_before_training_any(tmp_path):
    line = one_error_line(
        gmkit("bench", "independent", "nosuch", "--data", "moons", "--budget", "5", "--out-dir", str(tmp_path))
    )
    assert "no model named 'nosuch'" in line and not list(tmp_path.glob("*.h5"))
    assert "glow cannot be benchmarked on moons" in one_error_line(
        gmkit("bench", "independent", "glow", "--data", "moons", "--budget", "5")
    )


@pytest.mark.parametrize("budget", ["0", "-1"])
def test_bench_budget_must_be_positive(budget):
    assert f"--budget must be a positive number of seconds, got {budget}" in one_error_line(
        gmkit("bench", "independent", "--data", "moons", "--budget", budget)
    )


def test_bench_keeps_finished_results_when_a_later_model_fails(test_models):
    from gmkit_core.bench import benchmark

    rows = benchmark(
        ["test_noisy", "test_diverging"],
        "moons:2000",
        budget=60,
        assignments=("train.steps=40", "train.eval_every=10", "train.batch_size=64"),
    )
    assert rows[0]["model"] == "test_noisy" and rows[0]["steps"] == 40 and "error" not in rows[0]
    assert rows[1]["model"] == "test_diverging" and "diverged" in rows[1]["error"]


def test_label_on_a_run_trained_without_labels_says_so(tmp_path):
    pytest.importorskip("gmkit_diffusion")
    out = str(tmp_path / "d.h5")
    assert (
        gmkit(
            "train",
            "ddpm",
            "--data",
            "moons",
            "--out",
            out,
            "--steps",
            "2",
            "--set",
            "T=20",
            "--quiet",
            "--no-pictures",
        ).returncode
        == 0
    )
    line = one_error_line(gmkit("sample", out, "-n", "4", "--label", "1", "--out", str(tmp_path / "s.png")))
    assert "this run's data (moons) had no labels" in line and "sample without --label" in line


def test_eval_names_the_likelihood_kind(tmp_path):
    out = str(tmp_path / "r.h5")
    assert gmkit("train", "independent", "--data", "moons", "--out", out, *QUICK).returncode == 0
    assert "likelihood: exact" in gmkit("eval", out).stdout


def test_a_fit_outside_the_steps_is_reported_and_drawn(tmp_path):
    pytest.importorskip("gmkit_gmm")
    out = tmp_path / "g.h5"
    proc = gmkit("train", "gmm", "--data", "moons", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "EM: " in proc.stdout and "iterations, log-likelihood" in proc.stdout
    assert "to step 0 in 0.0s" not in proc.stdout
    from gmkit_core.artifact import read_run

    em = read_run(out).history["em"]
    assert len(em["iteration"]) == len(em["log_likelihood"]) > 2
    assert (tmp_path / "g.loss.png").exists()


def test_training_pictures_say_how_their_samples_were_drawn(tmp_path):
    pytest.importorskip("gmkit_diffusion")
    proc = gmkit("train", "ddpm", "--data", "moons", "--out", str(tmp_path / "d.h5"), "--steps", "2", "--set", "T=20")
    assert proc.returncode == 0, proc.stderr
    assert "d.samples.png (samples drawn with sampler=ddim" in proc.stdout


def test_an_optional_choice_lists_its_choices_and_accepts_none():
    from typing import Literal

    import attrs

    from gmkit_core.config import describe_options, make_config

    @attrs.frozen
    class Config:
        mode: Literal["a", "b"] | None = None

    (row,) = describe_options(Config)
    assert row["choices"] == ["a", "b"]
    assert make_config(Config, {"mode": "b"}, owner="m").mode == "b"
    assert make_config(Config, {"mode": "none"}, owner="m").mode is None
    with pytest.raises(ConfigError, match="must be one of a, b"):
        make_config(Config, {"mode": "c"}, owner="m")
