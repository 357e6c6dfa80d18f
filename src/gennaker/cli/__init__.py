"""The ``gennaker`` command. Global options pick the database, config, server and acting user;
each command module adds its commands with ``register(app)``."""

from __future__ import annotations

import getpass
import logging
import os
import sys
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import typer
import typer.main
from rich.console import Console
from rich.text import Text
from typer import _click as click  # Typer vendors Click
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup, TyperOption

from gennaker import __version__
from gennaker.cli import logformat, options
from gennaker.errors import GennakerError, ValidationFailed

app = typer.Typer(
    name="gennaker",
    no_args_is_help=True,
    add_completion=False,
    help="Gennaker: continuous delivery and operations readiness for AWS.",
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


class LogFormat(StrEnum):
    text = "text"
    json = "json"


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
    db: Annotated[
        str | None, typer.Option(envvar="GENNAKER_DB", parser=options.database, help="Database URL or SQLite path.")
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(envvar="GENNAKER_CONFIG", parser=options.path, help="Configuration file (gennaker.yml)."),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(envvar="GENNAKER_SERVER", parser=options.server_url, help="Talk to this Gennaker server."),
    ] = None,
    user: Annotated[
        str | None, typer.Option(envvar="GENNAKER_USER", parser=options.name, help="Who is acting (recorded).")
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="GENNAKER_TOKEN", parser=options.token, help="API token for --server.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what the engine does.")] = False,
    log_format: Annotated[
        LogFormat, typer.Option(envvar="GENNAKER_LOG_FORMAT", help="text, or json (one object a line, with ids).")
    ] = LogFormat.text,
) -> None:
    logformat.configure(logging.INFO if verbose else logging.WARNING, log_format.value)
    acting = user or _default_user()
    if server and not acting.isascii():  # it travels in an HTTP header, which is ASCII
        raise typer.BadParameter(f"with --server the user name must be ASCII, not {acting!r}", param_hint="'--user'")
    ctx.obj = Options(db=db, config=config, server=server, user=acting, token=token)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def _register_all() -> None:
    # Imported here, not at the top: each module imports this one's helpers (a cycle otherwise).
    from gennaker.cli import accounts as accounts_commands
    from gennaker.cli import alarms, canary, cloud, core, costs, demo, dr, incidents, notifications, ops, triggers, web

    for module in (core, cloud, ops, web, demo, canary, alarms, costs, incidents, notifications, triggers, dr):
        module.register(app)
    accounts_commands.register(app)


_register_all()


# What str.splitlines() breaks on: a value the user typed with one of these must not split a message.
_LINE_BREAKS = {ord(ch): ch.encode("unicode_escape").decode() for ch in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def _error(label: str, message: str) -> None:
    # The message quotes what the user typed: print it as text, never as Rich markup ("[/x]" would
    # raise), on one line however wide.
    line = message.translate(_LINE_BREAKS)
    err.print(Text.assemble((label, "red"), " ", line), highlight=False, soft_wrap=True)


# The global options (``_global`` above) and whether each takes a value.
_GLOBAL_OPTIONS = {
    "--db": True,
    "--config": True,
    "--server": True,
    "--user": True,
    "--token": True,
    "--log-format": True,
    "--verbose": False,
    "-v": False,
}


def hoist_global_options(cli: click.Command, args: list[str]) -> list[str]:
    """Move global options that stand after the command to before it, so ``gennaker run p.yml --config
    ci.yml`` means what it says. A command's own option of that name stays (``audit --db``), option
    values are skipped as values, and nothing after ``--`` moves."""
    i, path = 0, []
    while i < len(args) and args[i].partition("=")[0] in _GLOBAL_OPTIONS:  # those already in front
        i += 1 if "=" in args[i] or not _GLOBAL_OPTIONS[args[i]] else 2
    command = cli
    ctx = click.Context(cli)
    while isinstance(command, TyperGroup) and i < len(args):
        sub = command.get_command(ctx, args[i])
        if sub is None:
            break
        path.append(i)
        command, i = sub, i + 1
    if not path:
        return args
    own: dict[str, bool] = {}
    for param in command.params:
        if isinstance(param, TyperOption):
            for name in (*param.opts, *param.secondary_opts):
                own[name] = not param.is_flag and not param.count
    head, rest = args[:i], args[i:]
    kept: list[str] = []
    moved: list[str] = []
    j = 0
    while j < len(rest):
        arg = rest[j]
        if arg == "--":
            kept.extend(rest[j:])
            break
        name, eq, _ = arg.partition("=")
        takes = own.get(name) if name in own else _GLOBAL_OPTIONS.get(name)
        width = 2 if takes and not eq and j + 1 < len(rest) else 1
        (moved if name in _GLOBAL_OPTIONS and name not in own else kept).extend(rest[j : j + width])
        j += width
    first = path[0]
    return [*head[:first], *moved, *head[first:], *kept]


def run(args: list[str] | None = None, command: click.Command | None = None) -> int:
    """Run the command line ``args`` (default: sys.argv) and return its exit code; every error the
    user can cause is printed as one line here, so none reaches Python as a traceback. ``command``:
    the app already built (``typer.main.get_command(app)``), for callers that run many."""
    cli = command or typer.main.get_command(app)
    args = hoist_global_options(cli, list(sys.argv[1:] if args is None else args))
    try:
        rc = cli.main(args=args, prog_name="gennaker", standalone_mode=False)  # returns typer.Exit's code
        return rc if isinstance(rc, int) else 0
    except GennakerError as exc:
        if isinstance(exc, ValidationFailed):
            for p in exc.problems:
                _error("error", str(p))
        else:
            _error("error:", str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:  # a prompt got end of input or Ctrl-C: say so, not a silent exit 1
        _error("error:", "aborted")
        return 1
    except NoArgsIsHelpError as exc:  # a group without its command: the help was printed, as asked
        exc.show()
        return exc.exit_code
    except UsageError as exc:  # a bad option or argument: one line, and where to read more
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _error("error:", exc.format_message() + hint)
        return exc.exit_code
    except ClickException as exc:  # other Click errors carry their own message and exit code
        exc.show()
        return exc.exit_code


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
