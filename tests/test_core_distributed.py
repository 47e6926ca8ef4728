"""Two processes with DDP (gloo, CPU) match one process with the same global batch; resume works under DDP."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from gmkit_core.artifact import read_run

COMMON = [
    "--data",
    "digits",
    "--set",
    "train.batch_size=100",
    "--set",
    "train.eval_every=10",
    "--set",
    "train.lr=0.05",
    "--device",
    "cpu",
    "--quiet",
    "--no-pictures",
]


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _gmkit(*args, procs=1):
    launcher = (
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            str(procs),
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            _port(),
        ]
        if procs > 1
        else [sys.executable]
    )
    proc = subprocess.run(
        [*launcher, "-m", "gmkit_core.cli", "train", "independent", *args, *COMMON],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_process_ddp_equals_one_process_and_resumes(tmp_path):
    single, ddp = tmp_path / "single.h5", tmp_path / "ddp.h5"
    _gmkit("--out", str(single), "--steps", "20")
    _gmkit("--out", str(ddp), "--steps", "10", procs=2)
    assert not list(tmp_path.glob("*.tmp-*"))
    _gmkit("--out", str(ddp), "--steps", "20", "--resume", str(ddp), procs=2)
    a, b = read_run(single), read_run(ddp)
    assert int(b.trainer["step"]) == 20
    assert torch.allclose(a.weights["logits"], b.weights["logits"], atol=1e-5)
    assert torch.allclose(a.best["logits"], b.best["logits"], atol=1e-5)
    assert int(a.trainer["best_step"]) == int(b.trainer["best_step"])


# Runs the CLI with the core's test models registered (they are not an installed distribution).
_WITH_TEST_MODELS = (
    "import sys, gmkit_testmodels\n"
    "from gmkit_core.registry import registry\n"
    "from gmkit_core.cli import main\n"
    "registry.add_plugin(gmkit_testmodels, name='gmkit-testmodels')\n"
    "main(sys.argv[1:])\n"
)


def test_owned_step_under_ddp_equals_one_process(tmp_path):
    """Two optimiser groups stepped by the model: gradients are averaged over processes like DDP's."""
    script = tmp_path / "with_test_models.py"
    script.write_text(_WITH_TEST_MODELS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    args = [
        "train",
        "test_twogroups",
        "--data",
        "moons:2000",
        "--steps",
        "15",
        "--set",
        "train.batch_size=100",
        "--set",
        "train.eval_every=5",
        "--set",
        "train.lr=0.05",
        "--device",
        "cpu",
        "--quiet",
        "--no-pictures",
    ]
    for procs, out in ((1, tmp_path / "one.h5"), (2, tmp_path / "two.h5")):
        launcher = (
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc-per-node",
                "2",
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                _port(),
            ]
            if procs == 2
            else [sys.executable]
        )
        proc = subprocess.run(
            [*launcher, str(script), *args, "--out", str(out)], capture_output=True, text=True, timeout=600, env=env
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = read_run(tmp_path / "one.h5"), read_run(tmp_path / "two.h5")
    for key in ("loc", "log_scale"):
        assert torch.allclose(a.weights[key], b.weights[key], atol=1e-5), key
        assert not torch.equal(a.weights[key], torch.zeros_like(a.weights[key]))
    assert set(b.optimizer) == {"loc", "scale"}
