"""``gennaker notifications channels|list|show|test``.

With ``--server`` every command goes through the REST API (``/api/notifications``: scoped to the
caller's applications, role-checked and audit-logged there); without it, through the local
database as its owner. ``test`` sends at once from this process when local (no worker needed), or
asks the server and waits for its workers to send it.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from gennaker.cli import options
from gennaker.cli.client import HttpClient
from gennaker.cli.render import console, plain, when
from gennaker.engine import jobs
from gennaker.engine.jobs import JobRunner
from gennaker.errors import NotFound
from gennaker.ops.notifications import get_delivery, list_deliveries
from gennaker.ops.notifications.channels import describe
from gennaker.runtime import Runtime, build_runtime

notifications_app = typer.Typer(no_args_is_help=True, help="Notifications: channels, deliveries, a test notice.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
STATUS_STYLE = {"pending": "yellow", "sent": "green", "failed": "red"}


def register(app: typer.Typer) -> None:
    app.add_typer(notifications_app, name="notifications")


def _http(ctx: typer.Context) -> HttpClient | None:
    o = ctx.obj
    return HttpClient(o.server, o.user, o.token) if o.server else None


def _runtime(ctx: typer.Context) -> Runtime:
    return build_runtime(ctx.obj.db, ctx.obj.config)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def _local_detail(rt: Runtime, delivery_id: str) -> dict[str, Any]:
    with rt.db.read() as conn:
        d = get_delivery(conn, delivery_id)
        if d is None:
            raise NotFound(f"no delivery '{delivery_id}'")
        job = jobs.get(conn, d["job_key"]) if d["job_key"] else None
        d["attempt_log"] = jobs.attempts_of(conn, job["id"]) if job else []
    d.pop("job_key", None)
    return d


@notifications_app.command("channels")
def channels_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The channels gennaker.yml declares (never a secret)."""
    http = _http(ctx)
    if http is not None:
        rows = http._call("GET", "/api/notifications/channels")
    else:
        cfg = _runtime(ctx).config.notifications.channels
        rows = [{"name": n, **describe(ch)} for n, ch in sorted(cfg.items())]
    if as_json:
        _print_json(rows)
        return
    t = Table(show_edge=False)
    for col in ("Channel", "Type", "Target"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(plain(r["name"]), plain(r["type"]), plain(r["target"]))
    console().print(t)


@notifications_app.command("list")
def list_cmd(
    ctx: typer.Context,
    channel: Annotated[str | None, typer.Option(parser=options.name, help="Only this channel.")] = None,
    status: Annotated[str | None, typer.Option(help="pending, sent or failed.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Deliveries, newest first, with their status and attempts."""
    if status is not None and status not in STATUS_STYLE:
        raise typer.BadParameter(f"{status!r} is not pending, sent or failed", param_hint="'--status'")
    http = _http(ctx)
    if http is not None:
        params = {k: v for k, v in {"channel": channel, "status": status}.items() if v}
        rows = http._call("GET", "/api/notifications/deliveries", params={**params, "limit": limit})
    else:
        with _runtime(ctx).db.read() as conn:
            rows = list_deliveries(conn, None, channel=channel, status=status, limit=limit)
        for r in rows:
            r.pop("job_key", None)
    if as_json:
        _print_json(rows)
        return
    t = Table(show_edge=False)
    for col in ("Delivery", "Channel", "Event", "Application", "Status", "Tries", "Created", "Last error"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(
            plain(r["id"]),
            plain(r["channel"]),
            plain(r["event"]),
            plain(r["application"] or "-"),
            Text(r["status"], style=STATUS_STYLE.get(r["status"], "")),
            plain(str(r["attempts"])),
            plain(when(r["created_at"])),
            plain(r["last_error"] or ""),
        )
    console().print(t)


def _show(d: dict[str, Any]) -> None:
    out = console()
    out.print(Text.assemble((d["status"], STATUS_STYLE.get(d["status"], "")), " ", (d["notice"]["title"], "bold")))
    for label, value in (
        ("delivery", d["id"]),
        ("channel", d["channel"]),
        ("event", d["event"]),
        ("application", d["application"] or "-"),
        ("attempts", str(d["attempts"])),
        ("last error", d["last_error"] or "-"),
    ):
        out.print(Text.assemble((f"{label:>12}  ", "dim"), value))
    for a in d.get("attempt_log", []):
        line = f"  #{a['attempt']} {when(a['started_at'])} {a['worker_id']}: {a['outcome'] or 'running'}"
        out.print(plain(line + (f" — {a['error']}" if a.get("error") else "")))


@notifications_app.command("show")
def show_cmd(
    ctx: typer.Context,
    delivery_id: Annotated[str, typer.Argument(parser=options.name, help="The delivery's id.")],
    as_json: JsonOpt = False,
) -> None:
    """One delivery and every attempt at sending it."""
    http = _http(ctx)
    d = (
        http._call("GET", f"/api/notifications/deliveries/{delivery_id}")
        if http is not None
        else _local_detail(_runtime(ctx), delivery_id)
    )
    if as_json:
        _print_json(d)
    else:
        _show(d)


@notifications_app.command("test")
def test_cmd(
    ctx: typer.Context,
    channel: Annotated[str, typer.Argument(parser=options.name, help="A channel declared in gennaker.yml.")],
    wait: Annotated[float, typer.Option(min=0, max=300, help="With --server: seconds to wait for the send.")] = 30,
    as_json: JsonOpt = False,
) -> None:
    """Send a test notice to CHANNEL and say how it went (exit 1 unless it was sent)."""
    http = _http(ctx)
    if http is not None:
        delivery_id = http._call("POST", "/api/notifications/test", json={"channel": channel})["delivery_id"]
        deadline = time.monotonic() + wait
        d = http._call("GET", f"/api/notifications/deliveries/{delivery_id}")
        while d["status"] == "pending" and d["attempts"] == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            d = http._call("GET", f"/api/notifications/deliveries/{delivery_id}")
    else:
        rt = _runtime(ctx)
        delivery_id = rt.notifications.send_test(channel, ctx.obj.user)
        with rt.db.read() as conn:
            job_key = (get_delivery(conn, delivery_id) or {}).get("job_key")
        JobRunner(rt.db, rt.job_handlers, f"cli-{ctx.obj.user}"[:64], rt.job_settings).run_key(str(job_key))
        d = _local_detail(rt, delivery_id)
    if as_json:
        _print_json(d)
    else:
        _show(d)
        if d["status"] == "pending":
            console().print(plain("not sent yet: a worker retries it with backoff (see 'notifications show')"))
    if d["status"] != "sent":
        raise typer.Exit(1)
