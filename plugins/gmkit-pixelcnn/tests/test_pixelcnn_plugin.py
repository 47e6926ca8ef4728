"""Registration, the model contract (conformance kit), user errors and the benchmark command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from gmkit_core.data import DataSpec
from gmkit_core.errors import ConfigError, DataError
from gmkit_core.registry import registry


def test_registered_names():
    models = {e.name: e.model_traits() for e in registry.entries("model")}
    assert models["pixelcnn"]["likelihood"] == models["cpixelcnn"]["likelihood"] == "exact"
    assert not models["pixelcnn"]["conditional"] and models["cpixelcnn"]["conditional"]
    assert "pixelcnn" in registry.names("prior")
    assert {"pixelcnn_fast", "pixelcnn_naive"} <= set(registry.names("sampler"))
    assert all(p.error is None for p in registry.plugins() if p.name == "gmkit-pixelcnn")


def test_hook_and_command_modules_do_not_import_torch():
    code = "import sys, gmkit_pixelcnn.plugin, gmkit_pixelcnn.bench; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "name,options",
    [
        ("pixelcnn", {"hidden": 8, "layers": 2}),
        ("pixelcnn", {"hidden": 8, "layers": 2, "arch": "plain", "output": "logistic_mixture"}),
        ("cpixelcnn", {"hidden": 8, "layers": 2}),
    ],
)
def test_conformance(name, options, gmkit_check):  # noqa: ANN001
    gmkit_check(name, data="digits", **options)


def test_user_errors():
    digits = DataSpec("digits", "image", (1, 8, 8), levels=17, num_classes=10)
    with pytest.raises(ConfigError, match="arch"):
        registry.get("model", "pixelcnn", data=digits, arch="diagonal")
    with pytest.raises(ConfigError, match="kernel_size"):
        registry.get("model", "pixelcnn", data=digits, kernel_size=4)
    with pytest.raises(DataError, match="discrete images"):
        registry.get("model", "pixelcnn", data=DataSpec("moons", "vector", (2,)))
    with pytest.raises(DataError, match="labelled"):
        registry.get("model", "cpixelcnn", data=DataSpec("codes", "image", (1, 4, 4), levels=8))
    with pytest.raises(ConfigError, match="hidden"):
        registry.get("model", "pixelcnn", data=DataSpec("rgb", "image", (3, 4, 4), levels=8), hidden=2)
    model = registry.get("model", "pixelcnn", data=digits, hidden=4, layers=1)
    with pytest.raises(ConfigError, match="unconditional"):
        model.sample(2, condition=torch.tensor([1, 2]))


def test_codes_data_for_a_vqvae():
    """The model on DataSpec('codes', 'image', (1, H, W), levels=K), as a VQ-VAE fits it."""
    torch.manual_seed(0)
    spec = DataSpec("codes", "image", (1, 3, 4), levels=64)
    model = registry.get("model", "pixelcnn", data=spec, hidden=8, layers=2)
    x = model.sample(2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 1, 3, 4) and int(x.max()) < 64


def test_bench_command():
    from gmkit_pixelcnn.bench import bench_sampler_command

    result = CliRunner().invoke(
        bench_sampler_command, ["--sizes", "3,4", "-n", "2", "--hidden", "8", "--layers", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [r["size"] for r in report["results"]] == [3, 4]
    assert all(r["identical"] and r["naive_s"] > 0 and r["fast_s"] > 0 for r in report["results"])


def test_train_defaults_are_trainer_settings():
    from gmkit_pixelcnn.model import ConditionalPixelCNN, PixelCNN

    from gmkit_core.training import TrainConfig

    for cls in (PixelCNN, ConditionalPixelCNN):
        config = TrainConfig(**cls.train_defaults)
        assert config.ema > 0 and config.eval_every > 0  # best-on-validation of the EMA weights


def test_cpixelcnn_eval_reports_the_exact_marginal_and_the_conditional_figure(tmp_path):
    """`gmkit eval` of a briefly trained cpixelcnn: headline -log (1/K) sum_y p(x|y), recomputed here label by label."""
    import math

    from gmkit_core.artifact import load
    from gmkit_core.data import Batch
    from gmkit_core.data import load as load_data

    gmkit = [sys.executable, "-m", "gmkit_core.cli"]
    run = tmp_path / "c.h5"
    train = subprocess.run(
        [
            *gmkit,
            "train",
            "cpixelcnn",
            "--data",
            "digits",
            "--steps",
            "6",
            "--out",
            str(run),
            "--quiet",
            "--set",
            "hidden=8",
            "--set",
            "layers=2",
            "--set",
            "train.threads=1",
            "--set",
            "train.eval_every=3",
            "--set",
            "train.batch_size=16",
        ],
        capture_output=True,
        text=True,
    )
    assert train.returncode == 0, train.stderr
    evaluated = subprocess.run([*gmkit, "eval", str(run), "--json", "--device", "cpu"], capture_output=True, text=True)
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["conditional"] is True and report["exact"] is True
    model = load(run).model.double().eval()
    test = load_data("digits", "test")
    K = test.spec.num_classes
    with torch.no_grad():
        per_label = torch.stack([model.nll(Batch(test.x, torch.full((len(test),), y))) for y in range(K)], 1)  # (N, K)
        own = model.nll(Batch(test.x, test.y))
    # exp(-marginal) = (1/K) sum_y exp(-nll(x, y)), per example, in float64
    m = per_label.min(1, keepdim=True).values  # shift so that the largest term is exp(0)
    marginal = m.squeeze(1) - torch.log(torch.exp(-(per_label - m)).mean(1))
    assert report["nll_nats"] == pytest.approx(float(marginal.mean()), rel=1e-4)
    assert report["conditional_nll_nats"] == pytest.approx(float(own.mean()), rel=1e-4)
    assert abs(report["nll_nats"] - report["conditional_nll_nats"]) > 1e-6  # two figures, not one copied
    assert report["bits_per_dim"] == pytest.approx(report["nll_nats"] / (64 * math.log(2)))
    assert report["conditional_bits_per_dim"] == pytest.approx(report["conditional_nll_nats"] / (64 * math.log(2)))
