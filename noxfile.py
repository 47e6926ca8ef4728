"""Sessions: tests, lint, demo, bench, docs.

Every session installs the core, every plugin under plugins/ and the example
plugin into its own virtual environment, with torch pinned by constraints.txt
(a CPU build on the reference machine; package metadata keeps a range).
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = False

ROOT = Path(__file__).parent
PLUGINS = sorted(p for p in (ROOT / "plugins").glob("gmkit-*") if (p / "pyproject.toml").exists())


def install(session: nox.Session, *extra: str) -> None:
    editable = [arg for p in PLUGINS for arg in ("-e", str(p))]
    session.install("-c", "constraints.txt", "-e", ".[test]", *editable, "-e", "tests/example_plugin", *extra)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (core, plugins, example plugin); extra arguments go to pytest."""
    install(session, "pytest-xdist")
    # exit code 5 means "no tests collected": not a failure of the code under test
    session.run("pytest", "-n", "2", "--dist", "loadfile", *session.posargs, success_codes=[0, 5])


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole tree."""
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: train a VAE on digits, write a sample grid, print the test bits/dim."""
    install(session)
    out = ROOT / "runs"
    out.mkdir(exist_ok=True)
    model = "vae" if any(p.name == "gmkit-vae" for p in PLUGINS) else "independent"
    run = str(out / f"{model}-digits.h5")
    session.run("gmkit", "train", model, "--data", "digits", "--out", run)
    session.run("gmkit", "sample", run, "-n", "64", "--out", str(out / f"{model}-digits-samples.png"))
    session.run("gmkit", "eval", run)


BENCH_START, BENCH_END = "<!-- gmkit bench: start -->", "<!-- gmkit bench: end -->"


@nox.session
def bench(session: nox.Session) -> None:
    """Equal-budget comparison on digits and the trainer overhead, written into docs/benchmarks.md."""
    install(session)
    models = session.posargs or ["vae", "pixelcnn", "realnvp", "gmm", "ddpm"]
    table = session.run("gmkit", "bench", *models, "--data", "digits", "--budget", "180", "--overhead", "--markdown",
                        silent=True)
    page = ROOT / "docs" / "benchmarks.md"
    text = page.read_text()
    head, _, rest = text.partition(BENCH_START)
    _, _, tail = rest.partition(BENCH_END)
    page.write_text(f"{head}{BENCH_START}\n{table.strip()}\n{BENCH_END}{tail}")


@nox.session
def docs(session: nox.Session) -> None:
    """Run the documentation's examples and check the CLI reference is current."""
    install(session)
    session.run("pytest", "-p", "no:cacheprovider", "--doctest-glob=*.md", "docs", "-q", success_codes=[0, 5])
    session.run("python", "docs/cli_reference.py", "--check")
