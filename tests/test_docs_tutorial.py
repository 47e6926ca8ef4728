"""The plugin author guide's tutorial (docs/plugins.md, section 6) runs as written.

Every code block of the page whose first line is ``# file: PATH`` is written to a temporary folder. The
distribution is built from that ``pyproject.toml`` by pip with its setuptools backend (``--no-index
--no-build-isolation``: nothing is downloaded) and installed into a private folder put on ``PYTHONPATH``, so the
entry point gmkit finds is the one pip wrote from the documented pyproject, while the shared environment, and the
registry of every other test, never sees the plugin (the one difference from the page's ``pip install -e``).
Then the page's command block (first line ``# tutorial:``) is run in order, each command in a subprocess: the gmkit
commands with ``--json`` or quiet flags added so their results can be checked, and pytest on the tutorial's own
test file, which uses the ``gmkit_check`` fixture.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "plugins.md"
#: pip without the network: no index, the environment's setuptools as build backend, no dependencies resolved.
PIP_OFFLINE = ("install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index")
FENCE = re.compile(r"^```[\w-]*\n(.*?)^```", re.MULTILINE | re.DOTALL)

pytestmark = pytest.mark.slow  # builds a distribution and trains in subprocesses: about 20 s of CPU time


def blocks() -> list[str]:
    return FENCE.findall(PAGE.read_text(encoding="utf-8"))


def tutorial_files() -> dict[str, str]:
    """``{relative path: text}`` of the blocks that start with ``# file: PATH`` (the marker line stays in the file)."""
    files = {}
    for text in blocks():
        first = text.splitlines()[0]
        if first.startswith("# file: "):
            path = first.removeprefix("# file: ").strip()
            assert path not in files, f"{path} appears twice in {PAGE.name}"
            files[path] = text
    return files


def tutorial_commands() -> list[list[str]]:
    """The command lines of the block that starts with ``# tutorial:``."""
    found = [text for text in blocks() if text.startswith("# tutorial:")]
    assert len(found) == 1, f"{PAGE.name} must have exactly one '# tutorial:' command block"
    return [shlex.split(line) for line in found[0].splitlines()[1:] if line.strip()]


def gmkit_executable() -> list[str]:
    """The ``gmkit`` console script of this interpreter's environment (the module if there is none)."""
    script = Path(sys.executable).with_name("gmkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gmkit_core.cli"]


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        f"{shlex.join(args)} exited {done.returncode}\nstdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    )
    return done


def gmkit_json(args: list[str], cwd: Path, env: dict[str, str]) -> Any:
    """``gmkit ARGS --json``, its one JSON document parsed."""
    return json.loads(run([*gmkit_executable(), *args, "--json"], cwd, env).stdout)


def gaussian_nll_bounds(source: str) -> tuple[float, float]:
    """Mean test NLL (nats) of the split's own maximum-likelihood Gaussian (no Gaussian does better) and of N(0, I)."""
    from gmkit_core.data import load

    x = load(source, "test").x.double()
    r = x - x.mean(0)
    dims = x.shape[1]
    best = 0.5 * (dims * (1 + math.log(2 * math.pi)) + float(torch.logdet(r.T @ r / len(x))))
    standard = float((0.5 * x.square().sum(1)).mean()) + 0.5 * dims * math.log(2 * math.pi)
    return best, standard


def test_the_page_has_the_tutorial_files_and_commands() -> None:
    files = tutorial_files()
    package = {path.split("/")[0] for path in files}
    assert len(package) == 1, f"the tutorial's files must share one top folder, got {sorted(package)}"
    top = package.pop()
    assert {f"{top}/pyproject.toml", f"{top}/tests/test_{top.removeprefix('gmkit-')}.py"} <= set(files)
    assert 'entry-points."gmkit.plugins"' in files[f"{top}/pyproject.toml"]
    trees = [text.split() for text in blocks() if text.startswith(f"{top}/\n")]
    assert len(trees) == 1, f"the page must show the layout of {top}/ once"
    assert {f"{top}/{path}" for path in trees[0][1:]} == set(files), "the layout shown differs from the files"
    programs = [c[0] for c in tutorial_commands()]
    assert programs[0] == "pip" and {"gmkit", "pytest"} <= set(programs)


def test_tutorial_runs_as_written(tmp_path: Path) -> None:
    files = tutorial_files()
    for path, text in files.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    site = tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])]),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    dist = module = model = data = ""  # filled in by the commands, in the page's order
    for command in tutorial_commands():
        program, args = command[0], command[1:]
        if program == "pip":
            assert args[:2] == ["install", "-e"] and (tmp_path / args[2] / "pyproject.toml").exists(), command
            run(
                [sys.executable, "-m", "pip", *PIP_OFFLINE, "--target", str(site), str(tmp_path / args[2])],
                tmp_path,
                env,
            )
            points = [p.read_text() for p in site.glob("*.dist-info/entry_points.txt")]
            assert len(points) == 1 and "[gmkit.plugins]" in points[0], points
            dist, _, module = points[0].split("[gmkit.plugins]")[1].strip().splitlines()[0].partition(" = ")
        elif program == "pytest":
            done = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], tmp_path, env)
            tests = sum(text.count("\ndef test_") for path, text in files.items() if "/tests/" in path)
            passed = re.search(r"(\d+) passed", done.stdout)
            assert passed and int(passed.group(1)) >= tests, done.stdout[-2000:]
            assert not re.search(r"\d+ (failed|error)", done.stdout), done.stdout[-2000:]
        elif program == "gmkit" and args[0] == "plugins":
            listed = {p["name"]: p for p in gmkit_json(args, tmp_path, env)}
            ours = listed[dist]
            assert ours["error"] is None and ours["api"] == 2 and ours["module"] == module, ours
            assert ours["conflicts"] == [] and len(ours["registers"]) >= 1, ours
            model = next(r.removeprefix("model:") for r in ours["registers"] if r.startswith("model:"))
        elif program == "gmkit" and args[0] == "models":
            listed = {m["name"]: m for m in gmkit_json(args, tmp_path, env)}
            ours = listed[model]
            assert ours["plugin"] == dist and "error" not in ours, ours
            assert ours["likelihood"] == "exact" and ours["conditional"] is False, ours
        elif program == "gmkit" and args[0] == "train":
            assert args[1] == model, f"the tutorial trains '{args[1]}' but its plugin registers '{model}'"
            run([*gmkit_executable(), *args, "--quiet", "--no-pictures", "--set", "train.threads=1"], tmp_path, env)
            out = tmp_path / args[args.index("--out") + 1]
            data = args[args.index("--data") + 1]
            assert out.exists()
        elif program == "gmkit" and args[0] == "eval":
            result = gmkit_json(args, tmp_path, env)
            assert (result["model"], result["dataset"], result["split"]) == (model, data, "test"), result
            assert result["likelihood"] == "exact" and result["exact"] is True, result
            best, standard = gaussian_nll_bounds(data)
            # no Gaussian beats the test split's own fit; 50 steps from N(0, I) must have moved towards it
            assert best - 1e-6 <= result["nll_nats"] < standard, (result["nll_nats"], best, standard)
        else:
            raise AssertionError(f"the tutorial's command {shlex.join(command)} is not one this test knows how to run")
    assert model and data, "the tutorial's commands must list the plugins and train a model"
