"""The CLI contract: fast listings without torch, JSON purity, exit codes, one-line errors."""

import json
import subprocess
import sys

import h5py
import pytest

GMKIT = [sys.executable, "-m", "gmkit_core.cli"]


def run(*args, cwd=None):
    return subprocess.run([*GMKIT, *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("args", [["--help"], ["plugins"], ["datasets", "--json"], ["train", "--help"]])
def test_listings_do_not_import_torch(args):
    code = (
        f"import sys, runpy; sys.argv = ['gmkit', *{args!r}]\n"
        "try:\n    runpy.run_module('gmkit_core.cli', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_models_lists_the_likelihood_each_class_declares():
    listed = {m["name"]: m for m in json.loads(run("models", "--json").stdout)}
    assert listed["independent"]["likelihood"] == "exact" and listed["independent"]["conditional"] is False
    assert listed["independent"]["plugin"] == "gmkit-example"


@pytest.mark.parametrize("command", ["plugins", "models", "datasets"])
def test_json_outputs_are_one_document(command):
    proc = run(command, "--json")
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    assert isinstance(doc, list) and doc
    if command == "datasets":
        names = {d["name"] for d in doc}
        assert {"digits", "moons", "circles", "checkerboard", "8gaussians", "spiral"} <= names


def test_errors_are_one_line_with_exit_codes(tmp_path):
    unknown = run("train", "nosuchmodel", "--data", "digits", "--out", str(tmp_path / "r.h5"))
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: no model named 'nosuchmodel'")
    assert unknown.stderr.count("\n") == 1 and "Traceback" not in unknown.stderr
    no_prior = run("sample", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "s.png"))
    assert no_prior.returncode == 1 and "missing.h5: no such run file" in no_prior.stderr
    usage = run("train", "independent", "--out", str(tmp_path / "r.h5"))
    assert usage.returncode == 2 and "Missing option '--data'" in usage.stderr
    bad_opt = run("train", "independent", "--data", "digits", "--out", str(tmp_path / "r.h5"), "--set", "smoothing=abc")
    assert bad_opt.returncode == 1 and "invalid value 'abc' for 'smoothing'" in bad_opt.stderr
    bad_data = run("train", "independent", "--data", "nosuch", "--out", str(tmp_path / "r.h5"))
    assert bad_data.returncode == 1 and "unknown data 'nosuch'" in bad_data.stderr
    (tmp_path / "t.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 40)
    for command in (
        ["eval", str(tmp_path / "t.h5")],
        ["info", str(tmp_path / "t.h5")],
        ["sample", str(tmp_path / "t.h5"), "--out", str(tmp_path / "s.png")],
    ):
        proc = run(*command)
        assert proc.returncode == 1 and "not a gmkit run file" in proc.stderr and "Traceback" not in proc.stderr
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["data"] = [1.0]
    proc = run("eval", str(tmp_path / "foreign.h5"), "--json")
    assert proc.returncode == 1 and proc.stdout == "" and "format mark" in proc.stderr


def test_train_sample_eval_info_end_to_end(tmp_path):
    out = tmp_path / "run.h5"
    proc = run(
        "train", "independent", "--data", "digits", "--steps", "40", "--out", str(out), "--set", "train.eval_every=20"
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run.loss.png").exists() and (tmp_path / "run.samples.png").exists()
    ev = run("eval", str(out), "--json")
    doc = json.loads(ev.stdout)
    assert {"model", "dataset", "split", "n", "nll_nats", "bits_per_dim", "exact"} <= set(doc)
    assert doc["exact"] is True and doc["n"] == 447 and doc["split"] == "test"
    assert run("sample", str(out), "-n", "16", "--out", str(tmp_path / "s.png")).returncode == 0
    assert run("sample", str(out), "-n", "16", "--out", str(tmp_path / "s.h5")).returncode == 0
    with h5py.File(tmp_path / "s.h5") as f:
        assert f["samples"].shape == (16, 1, 8, 8)
    label = run("sample", str(out), "-n", "4", "--label", "3", "--out", str(tmp_path / "l.png"))
    assert label.returncode == 1 and "not conditional" in label.stderr
    info = json.loads(run("info", str(out), "--json").stdout)
    assert info["model"] == "independent" and info["step"] == 40 and info["plugin"] == "gmkit-example"
    cont = run("train", "independent", "--data", "digits", "--steps", "60", "--out", str(out), "--resume", str(out))
    assert cont.returncode == 0, cont.stderr
    assert json.loads(run("info", str(out), "--json").stdout)["step"] == 60


def test_config_file_and_options(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("smoothing = 3.0\n[train]\nlr = 0.01\nsteps = 5\n")
    out = tmp_path / "c.h5"
    assert (
        run("train", "independent", "--data", "moons", "--out", str(out), "--config", str(cfg), "--quiet").returncode
        == 0
    )
    info = json.loads(run("info", str(out), "--json").stdout)
    assert info["config"]["smoothing"] == 3.0 and info["train_config"]["lr"] == 0.01 and info["step"] == 5
    opts = json.loads(run("options", "independent", "--json").stdout)
    assert {o["name"] for o in opts["model"]} == {"init_from_data", "smoothing"}
    assert any(o["name"] == "train.lr" for o in opts["train"])


def test_datasets_export(tmp_path):
    out = tmp_path / "d.npz"
    proc = run("datasets", "export", "digits", "--split", "test", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    import numpy as np

    with np.load(out) as f:
        assert f["x_test"].shape == (447, 1, 8, 8) and int(f["levels"]) == 17
    bad = run("datasets", "export", "digits", "--out", str(tmp_path / "d.csv"))
    assert bad.returncode == 1 and "writes .npz or .h5" in bad.stderr


def test_bench_runs_and_prints_json(tmp_path):
    proc = run("bench", "independent", "--data", "moons:1000", "--budget", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)["results"][0]
    assert row["model"] == "independent" and row["nll_nats"] > 0 and row["parameters"] == 4
    assert row["train_cpu_s"] >= 0 and (row["peak_mib"] is None or row["peak_mib"] > 0)
