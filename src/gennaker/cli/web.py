"""``gennaker users`` and ``gennaker tokens``: console users and API tokens.

Users live in the configuration file (``auth.users``): ``users add`` prints the entry to paste there
(the file stays the one source of truth, reviewed like the rest of the config). Tokens live in the
database: made and revoked here, on the local database, or on a server with ``--server``/``--token``.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from gennaker.cli.client import HttpClient
from gennaker.cli.render import console
from gennaker.errors import GennakerError

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


def register(app: typer.Typer) -> None:
    users_app = typer.Typer(help="Console users (kept in the configuration file, auth: users:).", no_args_is_help=True)
    tokens_app = typer.Typer(
        help="API tokens for machines (stored hashed; the secret is shown once).", no_args_is_help=True
    )
    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")

    @users_app.command("add")
    def users_add(
        name: Annotated[str, typer.Argument(help="User name (what people type to sign in).")],
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
        user: Annotated[str | None, typer.Option(help="Whose token (default: you).")] = None,
        role: RoleOpt = None,
        days: Annotated[float | None, typer.Option(help="Expire after this many days.")] = None,
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

            rt = runtime_from(ctx)
            token = store.create_token(
                rt.db, name, user or ctx.obj.user, role or [], ctx.obj.user, days * 86400 if days else None
            )
        if as_json:
            sys.stdout.write(json.dumps(token, indent=2) + "\n")
            return
        err.print(
            f"Token [bold]{token['name']}[/bold] for {token['user']} (roles: "
            f"{', '.join(token['roles']) or 'none'}). Copy it now, it is not shown again:",
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
