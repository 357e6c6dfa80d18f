"""``gennaker accounts list|show``: the organization tree, which accounts Gennaker can reach, and per
account its regions, applications and readiness score (see ``gennaker.ops.accounts``).

With the global ``--server`` (and ``--token``) the answer is the server's ``GET /api/accounts``
(scoped there to the caller's applications), printed the same way."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gennaker.cli import options
from gennaker.cli.client import HttpClient
from gennaker.errors import GennakerError
from gennaker.ops.accounts import accounts_view
from gennaker.ops.findings import score_text
from gennaker.spec.config import load_config
from gennaker.store.db import open_database


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOpt = Annotated[Format, typer.Option("--format", help="table or json.")]
TagOpt = Annotated[str, typer.Option("--environment-tag", help="The account tag naming its environment.")]
DbOpt = Annotated[str | None, typer.Option("--db", parser=options.database, help="Database URL or SQLite path.")]
ConfigOpt = Annotated[str | None, typer.Option("--config", parser=options.path, help="gennaker.yml")]


def reach_text(a: dict[str, Any]) -> Text:
    if a["reachable"]:
        return Text("✓", style="green")
    mark = "✗" if a["reachable"] is False else "-"
    reason = a["reach_error"] or ""
    if len(reason) > 90:  # the whole line is in 'gennaker accounts show'
        reason = reason[:89] + "…"
    return Text(f"{mark} {reason}".rstrip(), style="red" if a["reachable"] is False else "dim")


def table(data: dict[str, Any]) -> Table:
    org = data.get("organization_id")
    title = f"accounts of organization {org} (payer {data.get('payer_id')})" if org else "accounts"
    t = Table(title=title, title_justify="left")
    for col in ("OU", "account", "id", "environment", "payer", "reachable", "regions", "apps", "score"):
        t.add_column(col, overflow="fold", justify="right" if col in ("apps", "score") else "left")
    for a in data["accounts"]:
        shown = a["name"] if not a.get("org_name") or a["org_name"] == a["name"] else f"{a['name']} ({a['org_name']})"
        t.add_row(
            a["ou_path"] or Text("not in the organization", style="dim"),
            shown,
            a["account_id"] or "?",
            a["environment"] or "",
            "★" if a["payer"] else "",
            reach_text(a),
            ", ".join(a["regions"]),
            str(len(a["applications"])),
            score_text(a["score"]),
        )
    return t


def print_list(data: dict[str, Any]) -> None:
    console = Console()
    console.print(table(data))
    if data.get("organization_error"):
        console.print(Text(data["organization_error"], style="yellow"), highlight=False)


def print_account(a: dict[str, Any]) -> None:
    console = Console()
    rows = [
        ("account", a["name"]),
        ("id", a["account_id"] or "unknown"),
        ("in the organization as", a["org_name"] or ""),
        ("email", a["email"] or ""),
        ("OU", a["ou_path"] or "not in the organization"),
        ("status", a["status"] or ""),
        ("configured", "gennaker.yml" if a["configured"] else "discovered through the organization"),
        ("payer", "yes (management account)" if a["payer"] else "no"),
        (
            "environment",
            f"{a['environment'] or 'unknown'}" + (f" ({a['environment_source']})" if a["environment_source"] else ""),
        ),
        (
            "reachable",
            "yes"
            if a["reachable"]
            else f"no: {a['reach_error']}"
            if a["reachable"] is False
            else f"not tried: {a['reach_error']}",
        ),
        ("regions", ", ".join(a["regions"])),
        ("regions in use", ", ".join(a["active_regions"]) or "none in the snapshot"),
        ("applications", ", ".join(a["applications"]) or "none tagged"),
        ("snapshot", f"{a['snapshot_id']} ({a['snapshot_at']})" if a["snapshot_id"] else "none stored"),
        (
            "last audit",
            f"{a['audit_id']} at {a['audit_at']}: score {score_text(a['score'])} over {a['findings']} finding(s) "
            f"(/api/audits/{a['audit_id']}?format=html)"
            if a["audit_id"]
            else "none stored (gennaker audit)",
        ),
    ]
    t = Table(show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)


def _data(ctx: typer.Context, db: str | None, config: str | None, environment_tag: str, name: str | None) -> Any:
    o = ctx.obj
    if getattr(o, "server", None):
        client = HttpClient(o.server, o.user, o.token)
        path = "/api/accounts" if name is None else f"/api/accounts/{name}"
        data = client._call("GET", path, params={"environment_tag": environment_tag})
        if not isinstance(data, dict) or ("accounts" not in data and "name" not in data):
            raise GennakerError(f"the server's {path} answer is not an accounts view")
        return data
    cfg = load_config(config or getattr(o, "config", None))
    view = accounts_view(open_database(db or getattr(o, "db", None)), cfg, environment_tag=environment_tag)
    return view.as_dict() if name is None else view.find(name).as_dict()


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The organization's accounts: OUs, payer, reachability, regions, applications, score.")
    app.add_typer(group, name="accounts", no_args_is_help=True)

    @group.command("list")
    def list_cmd(
        ctx: typer.Context,
        fmt: FormatOpt = Format.table,
        environment_tag: TagOpt = "environment",
        db: DbOpt = None,
        config: ConfigOpt = None,
    ) -> None:
        """Every account: OU path, environment, payer, reachable (with the reason when not), regions,
        applications and readiness score. Unreachable accounts are listed, not an error."""
        data = _data(ctx, db, config, environment_tag, None)
        if fmt is Format.json:
            typer.echo(json.dumps(data, indent=2))
        else:
            print_list(data)

    @group.command("show")
    def show_cmd(
        ctx: typer.Context,
        account: Annotated[str, typer.Argument(parser=options.name, help="Account name or id.")],
        fmt: FormatOpt = Format.table,
        environment_tag: TagOpt = "environment",
        db: DbOpt = None,
        config: ConfigOpt = None,
    ) -> None:
        """One account in full: organization facts, reachability error, regions, applications, last audit."""
        data = _data(ctx, db, config, environment_tag, account)
        if fmt is Format.json:
            typer.echo(json.dumps(data, indent=2))
        else:
            print_account(data)
