"""The ``gennaker`` command. Global options pick the database, config, server and acting user;
each command module adds its commands with ``register(app)``."""

from __future__ import annotations

import getpass
import logging
import os
import sys
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console
from typer._click.exceptions import ClickException  # Typer vendors Click; its usage errors are these

from gennaker import __version__
from gennaker.errors import GennakerError, ValidationFailed

app = typer.Typer(
    name="gennaker",
    no_args_is_help=True,
    add_completion=False,
    help="Gennaker: continuous delivery and operations readiness for AWS.",
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


@dataclass
class Options:
    db: str | None
    config: str | None
    server: str | None
    user: str
    token: str | None


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@app.callback()
def _global(
    ctx: typer.Context,
    db: Annotated[str | None, typer.Option(envvar="GENNAKER_DB", help="Database URL or SQLite path.")] = None,
    config: Annotated[
        str | None, typer.Option(envvar="GENNAKER_CONFIG", help="Configuration file (gennaker.yml).")
    ] = None,
    server: Annotated[str | None, typer.Option(envvar="GENNAKER_SERVER", help="Talk to this Gennaker server.")] = None,
    user: Annotated[str | None, typer.Option(envvar="GENNAKER_USER", help="Who is acting (recorded).")] = None,
    token: Annotated[str | None, typer.Option(envvar="GENNAKER_TOKEN", help="API token for --server.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what the engine does.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    ctx.obj = Options(db=db, config=config, server=server, user=user or _default_user(), token=token)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def _register_all() -> None:
    # Imported here, not at the top: each module imports this one's helpers (a cycle otherwise).
    from gennaker.cli import cloud, core, demo, ops, web

    for module in (core, cloud, ops, web, demo):
        module.register(app)


_register_all()


def main() -> None:
    try:
        rc = app(standalone_mode=False)  # returns the code of typer.Exit instead of raising it
        sys.exit(rc if isinstance(rc, int) else 0)
    except GennakerError as exc:
        if isinstance(exc, ValidationFailed):
            for p in exc.problems:
                err.print(f"[red]error[/red] {p}", highlight=False, soft_wrap=True)
        else:
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except ClickException as exc:  # usage errors carry their own message and exit code
        exc.show()
        sys.exit(exc.exit_code)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
