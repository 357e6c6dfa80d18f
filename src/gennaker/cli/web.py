"""``gennaker server`` and ``gennaker worker``, ``gennaker users`` and ``gennaker tokens``.

A server without an ``auth:`` section is not open: on start it makes sure of a local admin
credential (``gennaker.web.credentials``), prints a one-time login link for the browser and leaves
the token where this machine's CLI finds it. ``--insecure-no-auth`` (loopback only) turns access
control off.

Users live in the configuration file (``auth.users``): ``users add`` prints the entry to paste there
(the file stays the one source of truth, reviewed like the rest of the config). Tokens live in the
database: made and revoked here, on the local database, or on a server with ``--server``/``--token``.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from gennaker.cli import options
from gennaker.cli.client import HttpClient
from gennaker.cli.render import console
from gennaker.errors import ConfigError, GennakerError
from gennaker.web.settings import is_loopback

if TYPE_CHECKING:
    from gennaker.runtime import Runtime

out = console()
err = console(stderr=True)
RoleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--role", "-r", help="A role (repeatable): admin, operator, viewer, <application>:<level>, or a judgment role."
    ),
]


def users_entry(name: str, password_hash: str, roles: list[str]) -> str:
    """The YAML to put under ``auth: users:`` in gennaker.yml."""
    return yaml.safe_dump({name: {"password_hash": password_hash, "roles": roles}}, sort_keys=False)


def _when(ts: float | None) -> str:
    from gennaker.web.filters import when

    return when(ts)


def _url_host(host: str) -> str:
    """The host as a URL spells it: a wildcard bind is reached on loopback, IPv6 in brackets."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _listen(host: str, port: int) -> socket.socket:
    """Bind before anything else happens, so a taken port is one clear line (and no race with uvicorn)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets that say they are TCP, and with it
    # on every keep-alive response after the first waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise GennakerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def access_options(rt: Runtime, host: str, port: int, insecure_no_auth: bool) -> None:
    """Check --insecure-no-auth against the bind address and hand both to the app's access control
    (the server section of the configuration, which the Host allow-list starts from)."""
    if insecure_no_auth and not is_loopback(host):
        raise ConfigError(f"--insecure-no-auth listens only on a loopback address (127.0.0.1, ::1), not '{host}'")
    server = {**rt.config.server, "host": host, "port": port}
    if insecure_no_auth:
        server["insecure_no_auth"] = True
    rt.config.server = server


def announce_access(rt: Runtime, mode: str, host: str, port: int) -> None:
    """Tell the person who started the server how to get in (and, without access control, the risk)."""
    from gennaker.web.credentials import credential_file, ensure_admin_token, local_urls, login_link

    base = f"http://{_url_host(host)}:{port}"
    if mode == "local":
        urls = local_urls(host, port)
        ensure_admin_token(rt.db, urls)
        _say("No auth: section in the configuration: changes need the local admin credential.")
        _say(f"Sign in to the console with this link (it works once): {login_link(rt.db, base)}")
        _say(f"The CLI on this machine finds the admin token in {credential_file(urls[0])}")
    elif mode == "off":
        _say(
            f"WARNING: --insecure-no-auth: no access control; anyone who can reach {base} can run "
            "commands as this user."
        )


def _say(line: str) -> None:
    err.print(line, highlight=False, markup=False, soft_wrap=True)


def serve(rt: Runtime, host: str, port: int, worker_threads: int, insecure_no_auth: bool = False) -> None:
    import uvicorn

    from gennaker.api.app import create_app

    access_options(rt, host, port, insecure_no_auth)
    sock = _listen(host, port)
    try:
        app = create_app(rt, with_worker=worker_threads > 0, worker_threads=max(worker_threads, 1))
        _say(f"Gennaker server on http://{_url_host(host)}:{port} (API docs at /docs)")
        announce_access(rt, app.state.web.mode, host, port)
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    finally:
        sock.close()


def register(app: typer.Typer) -> None:
    @app.command()
    def server(
        ctx: typer.Context,
        host: Annotated[
            str | None,
            typer.Option(parser=options.host, help="Address to listen on (default server.host or 127.0.0.1)."),
        ] = None,
        port: Annotated[
            int | None, typer.Option(parser=options.port, help="Port (default server.port or 8080).")
        ] = None,
        workers: Annotated[
            int,
            typer.Option(
                parser=options.int_range(0, options.MAX_THREADS),
                help="Task threads of the in-process worker (0: none).",
            ),
        ] = 4,
        insecure_no_auth: Annotated[
            bool,
            typer.Option(
                "--insecure-no-auth",
                help="No access control at all (callers name themselves); loopback addresses only.",
            ),
        ] = False,
    ) -> None:
        """Run the API (and console) with workers in one process."""
        from gennaker.cli.core import runtime_from
        from gennaker.web.settings import server_settings

        if insecure_no_auth and host is not None and not is_loopback(host):  # before opening the database
            raise ConfigError(f"--insecure-no-auth listens only on a loopback address (127.0.0.1, ::1), not '{host}'")
        rt = runtime_from(ctx)
        configured = server_settings(rt.config.server)
        serve(rt, host or configured.host, port or configured.port, workers, insecure_no_auth)

    @app.command()
    def worker(
        ctx: typer.Context,
        threads: Annotated[
            int, typer.Option(parser=options.int_range(1, options.MAX_THREADS), help="Task threads.")
        ] = 4,
    ) -> None:
        """Run a worker only (start as many as you like against one PostgreSQL database)."""
        from gennaker.cli.core import runtime_from

        rt = runtime_from(ctx)
        w = rt.worker(threads=threads)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        w.start()
        err.print(
            f"worker {w.id} running against {rt.db.engine.url.render_as_string(hide_password=True)}",
            highlight=False,
            markup=False,
        )
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            w.stop()

    users_app = typer.Typer(help="Console users (kept in the configuration file, auth: users:).", no_args_is_help=True)
    tokens_app = typer.Typer(
        help="API tokens for machines (stored hashed; the secret is shown once).", no_args_is_help=True
    )
    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")

    @users_app.command("add")
    def users_add(
        name: Annotated[str, typer.Argument(parser=options.name, help="User name (what people type to sign in).")],
        role: RoleOpt = None,
        password_stdin: Annotated[
            bool, typer.Option("--password-stdin", help="Read the password from standard input.")
        ] = False,
    ) -> None:
        """Hash a password (argon2) and print the users entry to add under auth: users: in gennaker.yml."""
        from gennaker.web.security import hash_password

        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        if len(password) < 8:
            raise GennakerError("the password must have at least 8 characters")
        err.print("Add this under [bold]auth: users:[/bold] in gennaker.yml:", highlight=False)
        sys.stdout.write(users_entry(name, hash_password(password), role or ["viewer"]))

    def _remote(ctx: typer.Context) -> HttpClient | None:
        o = ctx.obj
        return HttpClient(o.server, o.user, o.token) if o.server else None

    @tokens_app.command("create")
    def tokens_create(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="What the token is for, e.g. jenkins.")],
        user: Annotated[str | None, typer.Option(parser=options.name, help="Whose token (default: you).")] = None,
        role: RoleOpt = None,
        days: Annotated[float | None, typer.Option(parser=options.days, help="Expire after this many days.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Create a token and print its secret (once)."""
        remote = _remote(ctx)
        if remote:
            body: dict[str, Any] = {"name": name, "user": user, "roles": role, "expires_in_days": days}
            token = remote._call("POST", "/api/tokens", json={k: v for k, v in body.items() if v is not None})
        else:
            from gennaker.cli.core import runtime_from
            from gennaker.web import store
            from gennaker.web.credentials import LOCAL_ADMIN

            rt = runtime_from(ctx)
            # Without an auth: section the server knows one user, its local admin: a token for anyone
            # else would be refused there.
            owner = user or (ctx.obj.user if rt.config.auth else LOCAL_ADMIN)
            token = store.create_token(rt.db, name, owner, role or [], ctx.obj.user, days * 86400 if days else None)
        if as_json:
            sys.stdout.write(json.dumps(token, indent=2) + "\n")
            return
        err.print(
            f"Token [bold]{escape(token['name'])}[/bold] for {escape(token['user'])} (roles: "
            f"{escape(', '.join(token['roles']) or 'none')}). Copy it now, it is not shown again:",
            highlight=False,
        )
        sys.stdout.write(token["token"] + "\n")

    @tokens_app.command("list")
    def tokens_list(
        ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
    ) -> None:
        """List tokens (never their secrets)."""
        remote = _remote(ctx)
        if remote:
            rows = remote._call("GET", "/api/tokens")
        else:
            from gennaker.cli.core import runtime_from
            from gennaker.web import store

            with runtime_from(ctx).db.read() as conn:
                rows = store.list_tokens(conn)
        if as_json:
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
            return
        table = Table("ID", "Name", "Prefix", "User", "Roles", "Created", "Last used", "Expires", "Revoked")
        for t in rows:
            table.add_row(
                t["id"],
                t["name"],
                t["prefix"] + "…",
                t["user"],
                ", ".join(t["roles"]),
                _when(t["created_at"]),
                _when(t["last_used_at"]),
                _when(t["expires_at"]),
                _when(t["revoked_at"]),
            )
        out.print(table)

    @tokens_app.command("revoke")
    def tokens_revoke(ctx: typer.Context, token_id: Annotated[str, typer.Argument(help="The token's ID.")]) -> None:
        """Revoke a token: it stops working at once."""
        remote = _remote(ctx)
        if remote:
            remote._call("POST", f"/api/tokens/{token_id}/revoke")
        else:
            from gennaker.cli.core import runtime_from
            from gennaker.web import store

            store.revoke_token(runtime_from(ctx).db, token_id)
        err.print(f"revoked {token_id}")
