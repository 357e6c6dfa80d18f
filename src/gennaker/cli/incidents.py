"""``gennaker incidents list|show|ack|resolve|note|assign|priority``.

With ``--server`` every command goes through the REST API (``/api/incidents``: scoped to the
caller's applications, role-checked and audit-logged there); without it, through the same store
functions on the local database, as the other commands' local client does.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Protocol

import typer
from rich.table import Table
from rich.text import Text

from gennaker.cli import options
from gennaker.cli.client import HttpClient
from gennaker.cli.render import console, plain, when
from gennaker.errors import InvalidInput
from gennaker.ops.incidents import store
from gennaker.ops.incidents.settings import PRIORITIES
from gennaker.runtime import Runtime, build_runtime

incidents_app = typer.Typer(no_args_is_help=True, help="Incidents: list, show, acknowledge, resolve, annotate.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
IdArg = Annotated[str, typer.Argument(parser=options.name, help="The incident's id.")]
STATUS_STYLE = {"triggered": "red", "acknowledged": "yellow", "resolved": "green"}
PRIORITY_STYLE = {"P1": "bold red", "P2": "red", "P3": "yellow", "P4": "cyan", "P5": "dim"}


def register(app: typer.Typer) -> None:
    app.add_typer(incidents_app, name="incidents")


class Incidents(Protocol):
    def list(self, status: str | None, priority: str | None, application: str | None, limit: int) -> Any: ...
    def show(self, incident_id: str) -> dict[str, Any]: ...
    def act(self, incident_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]: ...


class HttpIncidents:
    def __init__(self, client: HttpClient):
        self.client = client

    def list(self, status: str | None, priority: str | None, application: str | None, limit: int) -> Any:
        params = {k: v for k, v in {"status": status, "priority": priority, "application": application}.items() if v}
        return self.client._call("GET", "/api/incidents", params={**params, "limit": limit})

    def show(self, incident_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.client._call("GET", f"/api/incidents/{incident_id}")
        return result

    def act(self, incident_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.client._call("POST", f"/api/incidents/{incident_id}/{action}", json=body)
        return result


class LocalIncidents:
    """The local database, as its owner: every application, acting as ``--user``."""

    def __init__(self, runtime: Runtime, actor: str):
        self.rt, self.actor = runtime, actor

    def list(self, status: str | None, priority: str | None, application: str | None, limit: int) -> Any:
        with self.rt.db.read() as conn:
            return store.list_incidents(
                conn, None, status=status, priority=priority, application=application, limit=limit
            )

    def show(self, incident_id: str) -> dict[str, Any]:
        with self.rt.db.read() as conn:
            inc = store.get(conn, incident_id)
            inc["alarm_states"] = store.alarms_of(conn, incident_id)
            inc["timeline"] = store.timeline(conn, incident_id)
        return inc

    def act(self, incident_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.rt.db.begin() as conn:
            if action == "ack":
                store.ack(conn, incident_id, self.actor)
            elif action == "resolve":
                text = f"resolved by {self.actor}: {body['note']}" if body.get("note") else None
                store.resolve(conn, incident_id, self.actor, text=text, link_base=self.rt.incidents.link_base)
            elif action == "note":
                store.note(conn, incident_id, self.actor, body["text"])
            elif action == "assign":
                store.assign(conn, incident_id, self.actor, body.get("assignee"))
            elif action == "priority":
                store.set_priority(conn, incident_id, self.actor, body["priority"])
        return self.show(incident_id)


def _client(ctx: typer.Context) -> Incidents:
    o = ctx.obj
    if o.server:
        return HttpIncidents(HttpClient(o.server, o.user, o.token))
    return LocalIncidents(build_runtime(o.db, o.config), o.user)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def _list_table(rows: list[dict[str, Any]]) -> Table:
    t = Table(show_edge=False)
    for col in ("Id", "Pri", "Status", "Application", "Title", "Alarms", "Assignee", "Opened"):
        t.add_column(col, overflow="fold")
    for r in rows:
        alarms = r.get("alarms") or {}
        t.add_row(
            plain(r["id"]),
            Text(r["priority"], style=PRIORITY_STYLE.get(r["priority"], "")),
            Text(r["status"], style=STATUS_STYLE.get(r["status"], "")),
            plain(r["application"] or "-"),
            plain(r["title"]),
            plain(f"{alarms.get('not_ok', 0)}/{alarms.get('total', 0)} firing" if alarms else "-"),
            plain(r["assignee"] or "-"),
            plain(when(r["created_at"])),
        )
    return t


def _show(inc: dict[str, Any]) -> None:
    out = console()
    head = Text.assemble(
        (inc["priority"], PRIORITY_STYLE.get(inc["priority"], "")),
        " ",
        (inc["status"], STATUS_STYLE.get(inc["status"], "")),
        " ",
        (inc["title"], "bold"),
    )
    out.print(head)
    facts = [
        ("id", inc["id"]),
        ("application", inc["application"] or "-"),
        ("dedup key", inc["dedup_key"]),
        ("rule", inc["rule"] or "-"),
        ("escalation", f"{inc['escalation_policy'] or '-'} (level {inc['escalation_level'] + 1})"),
        ("assignee", inc["assignee"] or "-"),
        ("opened", when(inc["created_at"])),
    ]
    for label, value in facts:
        out.print(Text.assemble((f"{label:>12}: ", "dim"), str(value)))
    alarms = Table(title="Alarms", title_justify="left", show_edge=False)
    for col in ("Alarm", "Account/Region", "State", "Since", "Reason"):
        alarms.add_column(col, overflow="fold")
    for a in inc.get("alarm_states", []):
        style = "red" if a["state"] == "ALARM" else "green" if a["state"] == "OK" else "yellow"
        where = f"{a['account'] or '-'}/{a['region'] or '-'}"
        alarms.add_row(
            plain(a["alarm"]),
            plain(where),
            Text(a["state"], style=style),
            plain(when(a["changed_at"])),
            plain(a["reason"]),
        )
    out.print(alarms)
    tl = Table(title="Timeline", title_justify="left", show_edge=False)
    for col in ("When", "Event", "Who", "What"):
        tl.add_column(col, overflow="fold")
    for e in inc.get("timeline", []):
        what = e["text"]
        for d in e.get("deliveries") or []:
            what += f"\n  {d['channel']}: {d['status']}" + (f" ({d['last_error']})" if d.get("last_error") else "")
        tl.add_row(plain(when(e["at"])), plain(e["kind"]), plain(e["actor"] or "-"), plain(what))
    out.print(tl)


@incidents_app.command("list")
def list_cmd(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="open, triggered, acknowledged or resolved.")] = None,
    priority: Annotated[str | None, typer.Option(help="P1 … P5.")] = None,
    application: Annotated[str | None, typer.Option(parser=options.name, help="Only this application's.")] = None,
    limit: Annotated[int, typer.Option(parser=options.int_range(1, store.LIST_MAX))] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Incidents, newest first."""
    rows = _client(ctx).list(status, priority, application, limit)
    if as_json:
        _print_json(rows)
    elif not rows:
        console().print("no incidents")
    else:
        console().print(_list_table(rows))


@incidents_app.command("show")
def show_cmd(ctx: typer.Context, incident_id: IdArg, as_json: JsonOpt = False) -> None:
    """An incident: its alarms and its timeline (with each notification's delivery)."""
    inc = _client(ctx).show(incident_id)
    _print_json(inc) if as_json else _show(inc)


def _act(ctx: typer.Context, incident_id: str, action: str, body: dict[str, Any], as_json: bool) -> None:
    inc = _client(ctx).act(incident_id, action, body)
    if as_json:
        _print_json(inc)
    else:
        console().print(
            Text.assemble(
                plain(inc["id"]),
                " ",
                (inc["status"], STATUS_STYLE.get(inc["status"], "")),
                f" {inc['priority']} ",
                plain(inc["title"]),
            )
        )


@incidents_app.command("ack")
def ack_cmd(ctx: typer.Context, incident_id: IdArg, as_json: JsonOpt = False) -> None:
    """Acknowledge: you own it; escalation stops."""
    _act(ctx, incident_id, "ack", {}, as_json)


@incidents_app.command("resolve")
def resolve_cmd(
    ctx: typer.Context,
    incident_id: IdArg,
    note: Annotated[str | None, typer.Option(parser=options.text, help="What fixed it.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Resolve (the incident's channels are told)."""
    _act(ctx, incident_id, "resolve", {"note": note} if note else {}, as_json)


@incidents_app.command("note")
def note_cmd(
    ctx: typer.Context,
    incident_id: IdArg,
    text: Annotated[str, typer.Argument(parser=options.text, help="The note.")],
    as_json: JsonOpt = False,
) -> None:
    """Add a note to the timeline."""
    _act(ctx, incident_id, "note", {"text": text}, as_json)


@incidents_app.command("assign")
def assign_cmd(
    ctx: typer.Context,
    incident_id: IdArg,
    assignee: Annotated[str, typer.Argument(parser=options.name, help="Who owns it ('-' to unassign).")],
    as_json: JsonOpt = False,
) -> None:
    """Assign to a person."""
    _act(ctx, incident_id, "assign", {"assignee": None if assignee == "-" else assignee}, as_json)


@incidents_app.command("priority")
def priority_cmd(
    ctx: typer.Context,
    incident_id: IdArg,
    priority: Annotated[str, typer.Argument(help="P1 … P5.")],
    as_json: JsonOpt = False,
) -> None:
    """Change the priority (a person's choice wins over the rules')."""
    value = priority.strip().upper()
    if value not in PRIORITIES:
        raise InvalidInput(f"unknown priority '{priority[:10]}' ({', '.join(PRIORITIES)})")
    _act(ctx, incident_id, "priority", {"priority": value}, as_json)
