"""Sample quality of runs end to end: eval --metrics, gmkit metrics, bench columns, conditional and likelihood-free models."""

import json
import sys

import attrs
import pytest
import torch
from torch import nn

import gmkit_core
from gmkit_core._version import API_VERSION
from gmkit_core.artifact import load as load_run
from gmkit_core.distributions import Categorical
from gmkit_core.evaluation import evaluate_metrics
from gmkit_core.metrics import compare_data, sample_quality
from gmkit_core.metrics.quality import draw_samples, parse_source_split
from gmkit_core.training import train

GMKIT_API = API_VERSION


@attrs.frozen
class Config:
    use_label: bool = True


class PixelMarginals(gmkit_core.interfaces.GenerativeModel):
    """Independent pixels (per class when conditional); no likelihood reported: what a GAN looks like to eval."""

    Config = Config
    likelihood = "none"

    def __init__(self, config, data):
        super().__init__(config, data)
        classes = data.num_classes if self.conditional else 1
        self.logits = nn.Parameter(torch.zeros(classes, *data.shape, data.levels))

    def _logits(self, condition, n):
        index = condition if self.conditional and self.config.use_label else torch.zeros(n, dtype=torch.long)
        return self.logits[index]

    def loss(self, batch):
        logits = self._logits(batch.y, len(batch))
        return {"loss": -Categorical(logits, event_dims=3).log_prob(batch.x).mean()}

    def sample(self, n, condition=None, generator=None):
        return Categorical(self._logits(condition, n)).sample(generator)


class ClassPixelMarginals(PixelMarginals):
    likelihood = "none"
    conditional = True


@gmkit_core.hookimpl
def gmkit_register_models(register):
    register("test_qnone", f"{__name__}:PixelMarginals", family="test", description="pixel marginals, no likelihood")
    register("test_qcond", f"{__name__}:ClassPixelMarginals", family="test", description="per-class pixel marginals")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from gmkit_core.registry import registry

    if "test_qnone" not in registry.names("model"):
        registry.add_plugin(sys.modules[__name__], name="gmkit-qualitymodels")
    folder = tmp_path_factory.mktemp("runs")
    fast = {"batch_size": 100, "lr": 0.1, "eval_every": 100, "threads": 1}
    for name, model, data in (
        ("none", "test_qnone", "digits"),
        ("cond", "test_qcond", "digits"),
        ("moons", "independent", "moons"),
    ):
        train(model, data, folder / f"{name}.h5", steps=100, quiet=True, pictures=False, train_overrides=fast)
    return folder


def _cli(capsys, *args):
    from gmkit_core.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_likelihood_free_model_gets_metrics_and_no_nll(runs):
    result = evaluate_metrics(load_run(runs / "none.h5"), "fd,kid,prdc", n=300, seed=1)
    assert result["likelihood"] == "none" and "nll_nats" not in result
    for key in ("fd", "kid", "kid_std", "precision", "recall", "density", "coverage"):
        assert isinstance(result[key], float), key
    assert result["feature_extractor"] == "digits-cnn" and result["n_samples"] == 300 and result["n_reference"] == 447
    assert "class_accuracy" not in result
    # independent pixels are poor digits: far above the real-vs-real floor (300 train images against test)
    floor = compare_data("digits", "digits", metrics="fd,prdc", n=300, seed=1)
    assert result["fd"] > 3 * floor["fd"] and result["precision"] < floor["precision"]


def test_conditional_model_gets_balanced_labels_and_class_accuracy(runs):
    run = load_run(runs / "cond.h5")
    samples, labels = draw_samples(run, 95, seed=0, batch_size=4)
    assert samples.shape == (95, 1, 8, 8) and torch.bincount(labels).tolist() == [10] * 5 + [9] * 5
    result = sample_quality(run, "fd", n=200, seed=0)
    assert result["class_accuracy"] > 0.6  # per-class pixel marginals are recognisable
    assert sample_quality(run, "fd", n=200, seed=0) == result  # fixed seed: repeatable
    blind = load_run(runs / "cond.h5", use_label=False)  # a sampler that ignores the label: chance level
    assert sample_quality(blind, "fd", n=200, seed=0)["class_accuracy"] < 0.3


def test_eval_cli_json_and_text(runs, capsys):
    code, out, err = _cli(
        capsys, "eval", str(runs / "none.h5"), "--metrics", "fd,kid,prdc", "--samples", "200", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert {
        "model",
        "dataset",
        "split",
        "n",
        "likelihood",
        "fd",
        "kid",
        "kid_std",
        "precision",
        "recall",
        "density",
        "coverage",
        "feature_extractor",
        "feature_sha256",
        "n_samples",
        "n_reference",
    } <= set(doc)
    assert doc["n_samples"] == 200 and doc["feature_sha256"] == gmkit_core.features.classifier.DIGITS_SHA256
    code, out, err = _cli(capsys, "eval", str(runs / "moons.h5"), "--metrics", "fd,prdc", "--samples", "300")
    assert code == 0, err
    assert "nll_nats" in out and "fd " in out and "coverage" in out and "feature_extractor      points" in out
    assert "kid" not in out


def test_metrics_cli_compares_two_data_sets(capsys):
    code, out, err = _cli(
        capsys, "metrics", "--data", "digits", "--split", "train", "--against", "digits:test", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["n_samples"] == 1000 and doc["n_reference"] == 447 and doc["reference"] == "digits (test)"
    assert doc["precision"] > 0.8 and doc["coverage"] > 0.8
    code, out, _ = _cli(
        capsys, "metrics", "--data", "moons", "--against", "moons", "--metrics", "fd", "--samples", "500"
    )
    assert code == 0 and "moons (train) against moons (test)" in out and "fd" in out
    assert parse_source_split("npz:/d/x.npz:validation") == ("npz:/d/x.npz", "validation")
    assert parse_source_split("npz:/d/x.npz") == ("npz:/d/x.npz", "test")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["metrics", "--data", "digits", "--against", "digits", "--metrics", "fd,fid"], "unknown metric 'fid'"),
        (["metrics", "--data", "digits", "--against", "digits", "--samples", "4"], "needs more than 5 examples"),
        (["metrics", "--data", "digits", "--against", "digits", "--features", "/nonexistent/f.h5"], "does not exist"),
        (["metrics", "--data", "moons", "--against", "moons", "--features", "digits"], "takes images (1, 8, 8)"),
        (["metrics", "--data", "digits", "--against", "moons"], "does not match"),
        (["features", "fit", "--data", "moons", "--out", "/tmp/never-written.h5"], "trained on images"),
        (["eval", "RUN", "--metrics", "fd,nope"], "unknown metric 'nope'"),
        (["eval", "RUN", "--metrics", "prdc", "--samples", "3"], "needs more than 5 examples"),
        (["eval", "RUN", "--metrics", "fd", "--features", "inception:/nonexistent.pth"], "never downloads"),
    ],
)
def test_user_errors_are_one_line(runs, capsys, args, message):
    args = [str(runs / "none.h5") if a == "RUN" else a for a in args]
    code, out, err = _cli(capsys, *args)
    assert code == 1 and err.startswith("error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and out == ""


def test_bench_gains_metric_columns(capsys):
    code, out, err = _cli(
        capsys, "bench", "independent", "--budget", "2", "--metrics", "fd,prdc", "--samples", "100", "--json"
    )
    assert code == 0, err
    row = json.loads(out)["results"][0]
    assert {"fd", "precision", "recall", "density", "coverage", "feature_extractor"} <= set(row)
    from gmkit_core.bench import format_table

    assert "FD" in format_table({"data": "digits", "budget_s": 2, "results": [row]})


def test_run_evaluate_takes_metrics(runs):
    from gmkit_core.errors import ConfigError

    run = load_run(runs / "moons.h5")
    result = run.evaluate(metrics="fd,kid", n=200, seed=3)
    assert {"nll_nats", "fd", "kid", "kid_std"} <= set(result) and "precision" not in result
    assert result["feature_extractor"] == "points" and result["n_samples"] == 200
    with pytest.raises(ConfigError, match="need metrics="):
        run.evaluate(n=200)


@pytest.mark.parametrize("args", [["metrics", "--help"], ["features", "fit", "--help"], ["features", "list"]])
def test_metric_commands_start_without_torch(args):
    import subprocess

    code = (
        f"import sys, runpy; sys.argv = ['gmkit', *{args!r}]\n"
        "try:\n    runpy.run_module('gmkit_core.cli', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
