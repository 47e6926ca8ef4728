"""Two processes with DDP (gloo, CPU) match one process with the same global batch; resume works under DDP."""

import socket
import subprocess
import sys

import torch

from gmkit_core.artifact import read_run

COMMON = ["--data", "digits", "--set", "train.batch_size=100", "--set", "train.eval_every=10",
          "--set", "train.lr=0.05", "--device", "cpu", "--quiet", "--no-pictures"]


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _gmkit(*args, procs=1):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs),
                "--master-addr", "127.0.0.1", "--master-port", _port()] if procs > 1 else [sys.executable]
    proc = subprocess.run([*launcher, "-m", "gmkit_core.cli", "train", "independent", *args, *COMMON],
                          capture_output=True, text=True, timeout=600)
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
