"""``gennaker dr drill APPLICATION`` and ``gennaker dr drills [APPLICATION]``.

A drill runs here, in this process, through the very tasks of the ``dr_drill`` stage (the same
row in ``dr_drills``, the same tear-down; Ctrl-C tears down too). With ``--server`` it is started
on the server's workers instead (``POST /api/applications/<app>/dr/drills``), and ``drills`` reads
``/api/dr/drills`` (scoped to the caller's applications).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from gennaker.cli import options
from gennaker.cli.client import HttpClient
from gennaker.cli.render import console as make_console
from gennaker.errors import ConfigError, InvalidInput
from gennaker.ops.dr import store
from gennaker.ops.dr.service import check_account, drill_config, run_in_process
from gennaker.runtime import build_runtime
from gennaker.spec.config import Config
from gennaker.spec.durations import format_duration

dr_app = typer.Typer(no_args_is_help=True, help="DR drills: rehearse a recovery, measure RTO and RPO.")
AppArg = Annotated[str, typer.Argument(parser=options.name, help="The application.")]


class Format(StrEnum):
    table = "table"
    json = "json"


class Scenario(StrEnum):
    region_loss = "region_loss"
    restore_data = "restore_data"
    failover_dns = "failover_dns"


def register(app: typer.Typer) -> None:
    app.add_typer(dr_app, name="dr")


def _figure(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(round(seconds, 1) if seconds >= 1 else round(seconds, 3))


def _defaults(config: Config, account: str | None, frm: str | None, to: str | None) -> tuple[str, str, str]:
    """The account (the only AWS one if not named), the primary (its first region) and the DR region
    (its dr_region, else its other region)."""
    if account is None:
        aws = sorted(n for n, a in config.accounts.items() if a.kind == "aws")
        if len(aws) != 1:
            raise ConfigError(f"name the account with --account ({', '.join(aws) or 'no AWS account configured'})")
        account = aws[0]
    acct = config.account(account)
    frm = frm or acct.regions[0]
    others = [r for r in acct.regions if r != frm]
    to = to or acct.dr_region or (others[0] if others else None)
    if to is None:
        raise ConfigError(f"account {account} has one region and no dr_region: name one with --to-region")
    return account, frm, to


def _report(row: dict[str, Any]) -> None:
    console = make_console()
    report = row.get("report") or {}
    t = Table(title=f"DR drill {row['id']}: {row['scenario']} of {row['application']}, "
              f"{row['from_region']} -> {row['to_region']}", title_justify="left", show_edge=False)  # fmt: skip
    for col in ("Step", "Status", "Took", "Detail"):
        t.add_column(col, overflow="fold")
    style = {"PASS": "green", "FAIL": "red", "UNKNOWN": "yellow", "SKIPPED": "dim"}
    for s in report.get("steps", []):
        t.add_row(s["name"], f"[{style.get(s['status'], '')}]{s['status']}[/]", _figure(s.get("duration_s")),
                  s.get("detail") or "")  # fmt: skip
    console.print(t)
    obj = row.get("objectives") or {}
    console.print(
        f"RTO {_figure(row.get('rto_s'))} (objective {_figure(obj.get('rto_s'))}), "
        f"RPO {_figure(row.get('rpo_s'))} (objective {_figure(obj.get('rpo_s'))}); "
        f"objectives met: {report.get('met_objectives')}; status {row['status']}",
        highlight=False,
        markup=False,
    )
    for m in report.get("missing", []):
        console.print(f"missing: {m}", highlight=False, markup=False)


@dr_app.command("drill")
def drill(
    ctx: typer.Context,
    application: AppArg,
    account: Annotated[str | None, typer.Option("--account", help="Default: the only AWS account.")] = None,
    from_region: Annotated[str | None, typer.Option("--from-region", help="The primary region.")] = None,
    to_region: Annotated[str | None, typer.Option("--to-region", help="The DR region.")] = None,
    scenario: Annotated[Scenario, typer.Option("--scenario")] = Scenario.region_loss,
    rto: Annotated[str | None, typer.Option("--rto", help="Objective, e.g. 30m.")] = None,
    rpo: Annotated[str | None, typer.Option("--rpo", help="Objective, e.g. 15m.")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Leave what the drill built.")] = False,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Run a DR drill now and print its report; exit 1 when it failed or missed an objective."""
    o = ctx.obj
    console = make_console()
    rt = build_runtime(o.db, o.config)
    account, frm, to = _defaults(rt.config, account, from_region, to_region)
    try:
        cfg = drill_config(account=account, application=application, from_region=frm, to_region=to,
                           scenario=scenario.value, rto=rto, rpo=rpo, keep=keep)  # fmt: skip
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from None
    if not o.server:  # the server checks against its own configuration
        check_account(rt.config, cfg)
    if o.server:
        body = {"account": account, "from_region": frm, "to_region": to, "scenario": scenario.value,
                "rto": rto, "rpo": rpo, "keep": keep}  # fmt: skip
        started = HttpClient(o.server, o.user, o.token)._call(
            "POST", f"/api/applications/{application}/dr/drills", json=body
        )
        typer.echo(json.dumps(started) if fmt is Format.json else f"started execution {started['execution_id']}")
        return
    row = run_in_process(
        rt.services,
        cfg,
        log=lambda line: (
            console.print(line, style="dim", highlight=False, markup=False) if fmt is Format.table else None
        ),
    )
    if fmt is Format.json:
        typer.echo(json.dumps(row, indent=2, default=str))
    else:
        _report(row)
    if row["status"] != "SUCCEEDED":
        raise typer.Exit(1)


@dr_app.command("teardown")
def teardown(
    ctx: typer.Context,
    drill_id: Annotated[str, typer.Argument(parser=options.name, help="The drill's id.")],
) -> None:
    """Destroy what a drill left (one run with --keep, or an interrupted tear-down), by its tag."""
    from gennaker.cloud import registry
    from gennaker.cloud.aws.dr import AwsDrSite

    o = ctx.obj
    rt = build_runtime(o.db, o.config)
    with rt.db.read() as conn:
        row = store.get_drill(conn, drill_id)
    site = AwsDrSite(rt.services.aws, row["account"], row["to_region"])
    provider = registry.provider_for(rt.services, row["account"], row["to_region"])
    done = site.tear_down(drill_id, provider.destroy_server_group) + site.restore_health_checks(drill_id)
    for line in done or ["nothing tagged with this drill is left"]:
        typer.echo(line)
    left = site.drill_resources(drill_id)
    if left:
        typer.echo("still there (being deleted?): " + ", ".join(left))
        raise typer.Exit(1)


@dr_app.command("drills")
def drills(
    ctx: typer.Context,
    application: Annotated[str | None, typer.Argument(parser=options.name, help="Only this application.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=store.LIST_MAX)] = 20,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Past drills, newest first, with the RTO/RPO trend (against the previous drill of the same kind)."""
    o = ctx.obj
    if o.server:
        params: dict[str, Any] = {"limit": limit, **({"application": application} if application else {})}
        rows = HttpClient(o.server, o.user, o.token)._call("GET", "/api/dr/drills", params=params)
    else:
        rt = build_runtime(o.db, o.config)
        with rt.db.read() as conn:
            rows = store.recent_drills(conn, application, limit)
    if fmt is Format.json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    console = make_console()
    t = Table(show_edge=False)
    for col in ("Started", "Application", "Scenario", "Regions", "Status", "RTO", "RPO", "Trend"):
        t.add_column(col, overflow="fold")
    for i, r in enumerate(rows):
        prev = next((p for p in rows[i + 1 :] if (p["application"], p["scenario"]) == (r["application"], r["scenario"])
                     and p["status"] != "RUNNING"), None)  # fmt: skip
        t.add_row(
            datetime.fromtimestamp(r["started_at"] or 0, UTC).strftime("%Y-%m-%d %H:%M"),
            r["application"], r["scenario"], f"{r['from_region']} -> {r['to_region']}", r["status"],
            _figure(r["rto_s"]), _figure(r["rpo_s"]), _trend(r, prev),
        )  # fmt: skip
    console.print(t)


def _trend(row: dict[str, Any], prev: dict[str, Any] | None) -> str:
    if prev is None:
        return "first"
    parts = []
    for key, label in (("rto_s", "RTO"), ("rpo_s", "RPO")):
        a, b = row.get(key), prev.get(key)
        if a is not None and b is not None:
            parts.append(f"{label} {'+' if a >= b else '-'}{_figure(abs(a - b))}")
    return ", ".join(parts) or "-"
