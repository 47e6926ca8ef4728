"""`gmkit sample` with a registered sampler: options validated like model options, and a sampler
that does not apply to the run's model refused in one `error:` line (never a traceback)."""

import subprocess
import sys

import attrs
import pytest
import torch

from gmkit_core.errors import ConfigError
from gmkit_core.registry import registry
from gmkit_core.sampling import ConfiguredSampler

GMKIT = [sys.executable, "-m", "gmkit_core.cli"]
QUIET = ["--quiet", "--no-pictures", "--set", "train.threads=1", "--device", "cpu"]


def gmkit(*args):
    return subprocess.run([*GMKIT, *args], capture_output=True, text=True, timeout=600)


def needs(*names):
    missing = [n for n in names if n not in registry.names("model") + registry.names("sampler")]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} installed")


def _one_error_line(proc, *words):
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr and "AttributeError" not in proc.stderr and "TypeError" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny VAE run and a tiny DDPM run on digits (a few steps: only their kinds matter here)."""
    folder = tmp_path_factory.mktemp("runs")
    out = {}
    if "vae" in registry.names("model"):
        out["vae"] = str(folder / "vae.h5")
        proc = gmkit(
            "train",
            "vae",
            "--data",
            "digits",
            "--steps",
            "2",
            "--out",
            out["vae"],
            "--set",
            "hidden=16",
            "--set",
            "latent_dim=2",
            "--set",
            "train.eval_every=2",
            *QUIET,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    if "ddpm" in registry.names("model"):
        out["ddpm"] = str(folder / "ddpm.h5")
        proc = gmkit(
            "train",
            "ddpm",
            "--data",
            "digits",
            "--steps",
            "2",
            "--out",
            out["ddpm"],
            "--set",
            "T=10",
            "--set",
            "channels=8",
            "--set",
            "mults=1",
            "--set",
            "attention=",
            "--set",
            "val_steps=2",
            "--set",
            "train.eval_every=2",
            *QUIET,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@needs("vae", "ddim")
def test_a_diffusion_sampler_on_a_vae_is_one_error_line(runs, tmp_path):
    proc = gmkit("sample", runs["vae"], "-n", "2", "--out", str(tmp_path / "s.npz"), "--sampler", "ddim")
    _one_error_line(proc, "ddim", "diffusion")


@needs("ddpm", "ddim")
def test_a_bad_sampler_option_is_one_error_line_naming_it(runs, tmp_path):
    proc = gmkit(
        "sample",
        runs["ddpm"],
        "-n",
        "2",
        "--out",
        str(tmp_path / "s.npz"),
        "--sampler",
        "ddim",
        "--option",
        "steps=abc",
    )
    _one_error_line(proc, "'steps'", "abc")
    unknown = gmkit(
        "sample", runs["ddpm"], "-n", "2", "--out", str(tmp_path / "s.npz"), "--sampler", "ddim", "--option", "stepz=3"
    )
    _one_error_line(unknown, "stepz", "steps")
    fine = gmkit(
        "sample",
        runs["ddpm"],
        "-n",
        "2",
        "--out",
        str(tmp_path / "s.npz"),
        "--sampler",
        "ddim",
        "--option",
        "steps=3",
        "--option",
        "eta=1",
    )  # eta=1 arrives as an int: read as a float
    assert fine.returncode == 0, fine.stderr[-2000:]


@needs("ddpm", "pixelcnn_fast", "gmm")
def test_other_samplers_refuse_models_they_do_not_apply_to(runs, tmp_path):
    for sampler, word in (("pixelcnn_fast", "pixelcnn"), ("gmm", "encode")):
        proc = gmkit("sample", runs["ddpm"], "-n", "2", "--out", str(tmp_path / "s.npz"), "--sampler", sampler)
        _one_error_line(proc, sampler, word)


class _Counting(ConfiguredSampler):
    name = "counting"

    @attrs.frozen
    class Options:
        steps: int = attrs.field(default=3, validator=attrs.validators.ge(1))
        scale: float = 1.0

    @staticmethod
    def applies_to(model):
        return None if isinstance(model, torch.nn.Linear) else "it draws from linear layers only"


def test_configured_sampler_validates_like_model_options():
    assert _Counting(steps="4", scale=2).options == _Counting.Options(4, 2.0)
    with pytest.raises(ConfigError, match="'steps'"):
        _Counting(steps=True)  # not an integer
    with pytest.raises(ConfigError, match="'steps'"):
        _Counting(steps=2.5)  # an int option is not truncated
    with pytest.raises(ConfigError, match="'steps'"):
        _Counting(steps=0)
    with pytest.raises(ConfigError, match="no option 'stride'"):
        _Counting(stride=1)
    assert _Counting.applies_to(torch.nn.Linear(1, 1)) is None
    assert _Counting.applies_to(torch.nn.ReLU()) == "it draws from linear layers only"
