"""The ``gmkit`` command line.

Listing commands and ``--help`` import neither torch nor model code. Errors a
user can cause print one ``error: ...`` line and exit 1 (usage errors: 2);
``--debug`` shows tracebacks instead.
"""

from __future__ import annotations

import sys

import click

from .._version import __version__
from ..errors import GmkitError

__all__ = ["cli", "main"]

_DEBUG = {"on": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="gmkit")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """gmkit: train, sample, evaluate and compare deep generative models."""
    _DEBUG["on"] = debug


def _register() -> None:
    from . import listing, metrics, runs

    for command in (*listing.COMMANDS, *runs.COMMANDS, *metrics.COMMANDS):
        cli.add_command(command)
    from ..registry import registry

    registry.add_commands(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    _register()
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="gmkit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:  # click's form of Ctrl-C (and of end of input at a prompt)
        if isinstance(exc.__context__, KeyboardInterrupt):
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        # a user's mistake reads as itself; anything else is named, with the way to see more
        text = (
            str(exc)
            if isinstance(exc, GmkitError)
            else f"{type(exc).__name__}: {exc} (run with --debug for the traceback)"
        )
        click.echo(f"error: {text}", err=True)
        sys.exit(1)
    sys.exit(0)
