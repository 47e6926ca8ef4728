"""Sessions: tests, lint, typecheck, docs, demo, bench.

Every session runs in ONE shared environment, ``.nox/gmkit``: the core, every
plugin under plugins/ and the example plugin, editable, with torch and the
tools pinned by constraints.txt (a CPU build of torch on the reference
machine; the package metadata keeps ranges). It is built on first use and
reinstalled only when a pyproject.toml or constraints.txt changes, so running
several sessions installs torch once.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]

ROOT = Path(__file__).parent
ENV = ROOT / ".nox" / "gmkit"
PLUGINS = sorted(p for p in (ROOT / "plugins").glob("gmkit-*") if (p / "pyproject.toml").exists())
TOOLS = ["pytest-xdist", "ruff", "mypy"]


def _fingerprint() -> str:
    files = [
        ROOT / "constraints.txt",
        ROOT / "pyproject.toml",
        *(p / "pyproject.toml" for p in PLUGINS),
        ROOT / "tests" / "example_plugin" / "pyproject.toml",
    ]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


BIN = ENV / ("Scripts" if sys.platform == "win32" else "bin")


def tool(name: str) -> str:
    """The shared environment's executable ``name`` (by full path: nox looks programs up on its own PATH)."""
    return str(BIN / (f"{name}.exe" if sys.platform == "win32" else name))


def use_env(session: nox.Session) -> None:
    """Create or refresh the shared environment and run this session's commands in it."""
    python = tool("python")
    stamp = ENV / "gmkit-installed.sha256"
    if not Path(python).exists():
        session.run(sys.executable, "-m", "venv", str(ENV), external=True)
    if not stamp.exists() or stamp.read_text() != _fingerprint():
        editable = [arg for p in PLUGINS for arg in ("-e", str(p))]
        session.run(
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "-c",
            "constraints.txt",
            "-e",
            ".[test]",
            *editable,
            "-e",
            "tests/example_plugin",
            *TOOLS,
            external=True,
        )
        stamp.write_text(_fingerprint())
    session.env["VIRTUAL_ENV"] = str(ENV)
    session.env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    session.env["OMP_NUM_THREADS"] = "1"  # one torch thread per process; test workers run side by side


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The test suite (core, plugins, example plugin), two workers; extra arguments go to pytest."""
    use_env(session)
    session.run(tool("pytest"), "-n", "2", "--dist", "loadfile", *session.posargs, external=True)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff: lint rules and the formatter, over the whole tree."""
    use_env(session)
    session.run(tool("ruff"), "check", ".", external=True)
    session.run(tool("ruff"), "format", "--check", ".", external=True)


@nox.session(venv_backend="none")
def typecheck(session: nox.Session) -> None:
    """mypy over the core and every plugin's source."""
    use_env(session)
    session.run(tool("mypy"), "gmkit_core", *(str(p / "src") for p in PLUGINS), external=True)


@nox.session(venv_backend="none")
def docs(session: nox.Session) -> None:
    """Run the documentation's examples and check the CLI reference is current."""
    use_env(session)
    session.run(tool("pytest"), "-p", "no:cacheprovider", "--doctest-glob=*.md", "docs", "-q", external=True)
    session.run(tool("python"), "docs/cli_reference.py", "--check", external=True)


@nox.session(venv_backend="none")
def demo(session: nox.Session) -> None:
    """The main job: train a VAE on digits, write a sample grid, print the test bits/dim (safe to run again)."""
    use_env(session)
    out = ROOT / "runs"
    out.mkdir(exist_ok=True)
    model = "vae" if any(p.name == "gmkit-vae" for p in PLUGINS) else "independent"
    run = str(out / f"{model}-digits.h5")
    session.run(tool("gmkit"), "train", model, "--data", "digits", "--out", run, "--force", external=True)
    session.run(
        tool("gmkit"), "sample", run, "-n", "64", "--out", str(out / f"{model}-digits-samples.png"), external=True
    )
    session.run(tool("gmkit"), "eval", run, external=True)


BENCH_START, BENCH_END = "<!-- gmkit bench: start -->", "<!-- gmkit bench: end -->"


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Equal-budget comparison on digits and the trainer overhead, written into docs/benchmarks.md."""
    use_env(session)
    models = session.posargs or ["vae", "pixelcnn", "realnvp", "gmm", "ddpm"]
    table = session.run(
        "gmkit",
        "bench",
        *models,
        "--data",
        "digits",
        "--budget",
        "180",
        "--overhead",
        "--markdown",
        silent=True,
        external=True,
    )
    page = ROOT / "docs" / "benchmarks.md"
    text = page.read_text()
    head, _, rest = text.partition(BENCH_START)
    _, _, tail = rest.partition(BENCH_END)
    page.write_text(f"{head}{BENCH_START}\n{str(table).strip()}\n{BENCH_END}{tail}")
