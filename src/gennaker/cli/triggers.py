"""``gennaker triggers deliveries``: every push, webhook and firing, and why it started nothing.

With ``--server`` through ``/api/triggers/deliveries`` (scoped to the caller's applications there);
without it, from the local database.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from gennaker.cli.client import HttpClient
from gennaker.cli.render import console, plain, when
from gennaker.runtime import build_runtime
from gennaker.triggers.fire import list_deliveries

triggers_app = typer.Typer(no_args_is_help=True, help="Triggers: the deliveries that started pipelines, or did not.")
OUTCOME_STYLE = {"started": "green", "duplicate": "cyan", "refused": "red", "skipped": "yellow", "ignored": "dim"}


def register(app: typer.Typer) -> None:
    app.add_typer(triggers_app, name="triggers")


@triggers_app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="git, webhook, cron, pipeline or image.")] = None,
    outcome: Annotated[str | None, typer.Option(help="started, duplicate, refused, skipped or ignored.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Trigger deliveries, newest first: what each started, or why it was refused."""
    o = ctx.obj
    if o.server:
        params: dict[str, Any] = {
            "limit": limit,
            **({"kind": kind} if kind else {}),
            **({"outcome": outcome} if outcome else {}),
        }
        rows = list(HttpClient(o.server, o.user, o.token)._call("GET", "/api/triggers/deliveries", params=params))
    else:
        rt = build_runtime(o.db, o.config)
        with rt.db.read() as conn:
            rows = list_deliveries(conn, kind=kind, outcome=outcome, limit=limit)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table("received", "kind", "source", "outcome", "why / started")
    for r in rows:
        started = ", ".join(f"{e['pipeline']} {e['execution_id']}" for e in r["executions"] if e.get("execution_id"))
        style = OUTCOME_STYLE.get(r["outcome"], "")
        code = f" {r['http_status']}" if r.get("http_status") else ""
        table.add_row(
            when(r["received_at"]),
            r["kind"],
            plain(r["source"]),
            Text(f"{r['outcome']}{code}", style=style),
            plain(r.get("reason") or started or ""),
        )
    console().print(table)
