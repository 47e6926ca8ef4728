"""Plugins composing through the registry by name, end to end from the CLI."""

import json
import subprocess
import sys

import h5py
import pytest

from gmkit_core.registry import registry

GMKIT = [sys.executable, "-m", "gmkit_core.cli"]
SMALL_VAE = [
    "--set",
    "hidden=32",
    "--set",
    "latent_dim=4",
    "--set",
    "train.batch_size=50",
    "--set",
    "train.eval_every=10",
    "--set",
    "warmup_steps=0",
    "--quiet",
    "--no-pictures",
]


def needs(*names):
    missing = [
        n for n in names if n not in registry.names("model") + registry.names("prior") + registry.names("sampler")
    ]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} installed")


def gmkit(*args):
    proc = subprocess.run([*GMKIT, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@needs("vae", "maf")
def test_vae_with_a_flow_prior_trains_end_to_end(tmp_path):
    run = str(tmp_path / "vae_maf.h5")
    gmkit("train", "vae", "--data", "digits", "--out", run, "--steps", "20", "--set", "prior=maf", *SMALL_VAE)
    doc = json.loads(gmkit("eval", run, "--json", "--set", "iwae_k=4", "--set", "iwae_chunk=4"))
    assert doc["exact"] is False and 0 < doc["bits_per_dim"] < 10
    assert doc["iwae_nll_nats"] <= doc["nll_nats"] + 1.0
    gmkit("sample", run, "-n", "8", "--out", str(tmp_path / "s.png"))


@needs("vae", "gmm")
def test_vae_with_a_mixture_prior_and_the_gmm_latent_sampler(tmp_path):
    run = str(tmp_path / "vae_gmm.h5")
    gmkit("train", "vae", "--data", "digits", "--out", run, "--steps", "20", "--set", "prior=gmm", *SMALL_VAE)
    out = tmp_path / "latent.h5"
    gmkit("sample", run, "-n", "12", "--out", str(out), "--sampler", "gmm", "--option", "components=3")
    with h5py.File(out) as f:
        samples = f["samples"][()]
    assert samples.shape == (12, 1, 8, 8) and samples.min() >= 0 and samples.max() < 17
