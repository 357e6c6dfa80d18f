"""``gennaker costs``: spend by account, service, region, application, environment or tag, with the
change against the previous period, a sparkline per row, the untagged share and the top movers.

With ``--server`` (and ``--token``) the report is read from the server's ``GET /api/costs`` instead of
computed here (scoped there to the caller's applications; the server's cache and credentials), and
printed the same way."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gennaker.cli import options
from gennaker.cli.client import HttpClient
from gennaker.cloud.aws.session import AwsSessions
from gennaker.errors import GennakerError, InvalidInput
from gennaker.ops.costs import CostQuery, CostReport, budgets, get_costs
from gennaker.ops.costs.deploys import DeployCost, deploy_costs
from gennaker.ops.costs.query import DIMENSIONS, Period
from gennaker.ops.costs.report import CostRow
from gennaker.spec.config import Config, load_config
from gennaker.store.db import open_database

ConfigOpt = Annotated[str | None, typer.Option("--config", parser=options.path, help="gennaker.yml")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class Granularity(StrEnum):
    daily = "daily"
    monthly = "monthly"


class Metric(StrEnum):
    unblended = "unblended"
    amortized = "amortized"


def money(value: float) -> str:
    return f"{value:,.2f}"


def change_text(change: float, ratio: float | None) -> Text:
    style = "red" if change > 0.005 else "green" if change < -0.005 else "dim"
    pct = "new" if ratio is None and change > 0.005 else "" if ratio is None else f"{ratio:+.1%}"
    return Text(f"{change:+,.2f} {pct}".rstrip(), style=style)


def table(report: CostReport) -> Table:
    q, p = report.query, report.period
    title = (
        f"{q.metric} cost by {q.group_by}, {p.start}..{p.end} (end exclusive) "
        f"vs {p.previous_start}..{p.previous_end}, {report.currency}"
    )
    t = Table(title=title, show_footer=True, title_justify="left")
    total = report.total
    t.add_column(q.group_by, footer="total", overflow="fold")
    t.add_column("cost", justify="right", footer=money(total))
    t.add_column("previous", justify="right", footer=money(report.previous_total))
    t.add_column("change", justify="right", footer=change_text(total - report.previous_total, _ratio(report)))
    t.add_column("share", justify="right", footer="100%" if total else "")
    t.add_column(q.granularity, footer="")
    for row in report.rows:
        label = Text(row.label, style="yellow" if row.key == "" else "")
        share = f"{row.total / total:.1%}" if total else ""
        t.add_row(
            label,
            money(row.total),
            money(row.previous),
            change_text(row.change, row.change_ratio),
            share,
            row.sparkline(),
        )
    return t


def _ratio(report: CostReport) -> float | None:
    prev = report.previous_total
    return None if prev == 0 else (report.total - prev) / prev


def csv_text(report: CostReport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([report.query.group_by, "cost", "previous", "change", *[str(b) for b in report.buckets]])
    for r in report.rows:
        w.writerow([r.label, f"{r.total:.6f}", f"{r.previous:.6f}", f"{r.change:.6f}", *[f"{v:.6f}" for v in r.series]])
    return buf.getvalue()


def print_report(console: Console, report: CostReport) -> None:
    console.print(table(report))
    share = report.untagged_share
    if share is not None:
        console.print(f"untagged: {money(report.untagged or 0.0)} ({share:.1%} of the total)")
    movers = report.movers()
    if movers:
        console.print(
            "top movers: " + ", ".join(f"{m.label} {m.change:+,.2f}" for m in movers), highlight=False, soft_wrap=True
        )
    if report.source == "cost_explorer":
        how = "from the cache (--refresh to ask again)" if report.cached else "made now"
        console.print(f"Cost Explorer requests: {report.requests} ({how})", highlight=False)
    for note in report.notes:
        console.print(note, highlight=False)


def report_from_dict(data: dict[str, Any]) -> CostReport:
    """The report a server answered (``CostReport.as_dict``), rebuilt to print as a local one."""
    try:
        q = data["query"]
        query = CostQuery(group_by=q["group_by"], period=q["period"], granularity=q["granularity"], metric=q["metric"])
        day = date.fromisoformat
        period = Period(day(data["start"]), day(data["end"]), day(data["previous_start"]), day(data["previous_end"]))
        rows = [
            CostRow(str(r["key"]), float(r["total"]), float(r["previous"]), [float(v) for v in r["series"]])
            for r in data["rows"]
        ]
        return CostReport(
            query,
            str(data["source"]),
            period,
            [day(b) for b in data["buckets"]],
            rows,
            tagged_grouping=query.group_by not in DIMENSIONS,
            requests=int(data["requests"]),
            cached=bool(data["cached"]),
            fetched_at=data.get("fetched_at"),
            currency=str(data.get("currency") or "USD"),
            notes=[str(n) for n in data.get("notes") or []],
        )
    except (KeyError, TypeError, ValueError) as exc:  # not a Gennaker server, or another version
        raise GennakerError(
            f"the server's /api/costs answer is not a cost report: {type(exc).__name__}: {exc}"
        ) from None


def server_costs(server: HttpClient, query: CostQuery, refresh: bool) -> dict[str, Any]:
    params: dict[str, Any] = {
        "by": query.group_by,
        "period": query.period,
        "granularity": query.granularity,
        "metric": query.metric,
    }
    if refresh:
        params["refresh"] = "true"
    data = server._call("GET", "/api/costs", params=params)
    if not isinstance(data, dict):
        raise GennakerError("the server's /api/costs answer is not a cost report")
    return data


def budget_table(rows: list[budgets.Budget]) -> Table:
    t = Table(title="budgets (actual and forecast against the limit)", title_justify="left")
    for col in ("budget", "period", "limit", "actual", "used", "forecast", "ours"):
        t.add_column(col, justify="right" if col in ("limit", "actual", "used", "forecast") else "left")
    for b in rows:
        used = b.used
        style = "red" if used is not None and used >= 1 else "yellow" if used is not None and used >= 0.8 else ""
        forecast = "" if b.forecast is None else money(b.forecast)
        t.add_row(
            b.name,
            b.time_unit.lower(),
            money(b.limit),
            money(b.actual),
            Text("" if used is None else f"{used:.0%}", style=style),
            Text(forecast, style="red" if b.forecast is not None and b.forecast > b.limit else ""),
            "yes" if b.owned else "",
        )
    return t


def change_table(changes: list[budgets.BudgetChange], errors: dict[str, str | None] | None = None) -> Table:
    t = Table(title_justify="left")
    for col in ("action", "budget", "limit", "filter", "why", *(["result"] if errors is not None else [])):
        t.add_column(col)
    for c in changes:
        cells = [c.action, c.name, "" if c.limit is None else money(c.limit), json.dumps(c.filters), c.reason]
        if errors is not None:
            cells.append("ok" if errors.get(c.name) is None else f"failed: {errors[c.name]}")
        t.add_row(*cells)
    return t


def print_deploy_costs(rows: list[DeployCost], fmt: Format) -> None:
    if fmt is Format.json:
        typer.echo(json.dumps([r.as_dict() for r in rows], indent=2))
        return
    if fmt is Format.csv:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["stage", "previous_server_group", "instance_type", "instances", "instance_hours", "rate", "cost"])
        for r in rows:
            w.writerow(
                [r.stage_id, r.previous_server_group, r.instance_type, r.instances, r.instance_hours, r.rate, r.cost]
            )
        typer.echo(buf.getvalue(), nl=False)
        return
    if not rows:
        typer.echo("no deploy in this execution kept a previous server group")
        return
    t = Table(title="extra server groups kept by deploys (priced by costs.rates)", title_justify="left")
    for col in ("stage", "kept group", "type", "instances", "kept until", "instance-hours", "rate", "cost"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r.stage_id,
            r.previous_server_group,
            r.instance_type or "?",
            str(r.instances),
            r.released_by,
            f"{r.instance_hours:.2f}",
            "no rate" if r.rate is None else f"{r.rate:g}",
            "" if r.cost is None else money(r.cost),
        )
    Console().print(t)


def register(app: typer.Typer) -> None:
    @app.command()
    def costs(
        ctx: typer.Context,
        by: Annotated[
            str, typer.Option("--by", help="account, service, region, application, environment or tag:KEY.")
        ] = "service",
        period: Annotated[str, typer.Option(help="30d (any Nd), month (to date) or YYYY-MM.")] = "30d",
        granularity: Annotated[Granularity, typer.Option(help="Buckets of the sparkline and CSV.")] = Granularity.daily,
        metric: Annotated[Metric, typer.Option(help="unblended (billed) or amortized (effective).")] = Metric.unblended,
        fmt: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
        refresh: Annotated[
            bool, typer.Option("--refresh", help="Ask Cost Explorer again (each request costs $0.01).")
        ] = False,
        db: Annotated[
            str | None, typer.Option("--db", parser=options.database, help="Database URL or SQLite path.")
        ] = None,
        config: Annotated[str | None, typer.Option("--config", parser=options.path, help="gennaker.yml")] = None,
        execution: Annotated[
            str | None,
            typer.Option("--execution", parser=options.name, help="Instead: what a deploy's extra group cost."),
        ] = None,
        with_budgets: Annotated[
            bool, typer.Option("--budgets", help="Also show the budgets (actual and forecast against the limit).")
        ] = False,
    ) -> None:
        """Spend by a dimension or tag over a period, against the period before (or, with --execution,
        the instance-hours and cost of the extra group its red/black deploys kept). With the global
        --server (and --token), read from that server's API instead of computed here."""
        o = ctx.obj
        if getattr(o, "server", None):
            client = HttpClient(o.server, o.user, o.token)
            if execution is not None:
                answer = client._call("GET", f"/api/executions/{execution}/cost")
                try:
                    rows = [DeployCost(**r) for r in answer or []]
                except TypeError as exc:  # not a Gennaker server, or another version
                    raise GennakerError(f"the server's execution cost answer is not understood: {exc}") from None
                print_deploy_costs(rows, fmt)
                return
            if with_budgets:  # the API has no budgets endpoint: say so rather than mix sources
                raise InvalidInput("--budgets reads AWS Budgets here: it cannot be combined with --server")
            query = CostQuery(group_by=by, period=period, granularity=granularity.value, metric=metric.value)
            data = server_costs(client, query, refresh)
            if fmt is Format.json:  # the server's answer as it came: the same document as a local run
                typer.echo(json.dumps(data, indent=2))
                return
            report = report_from_dict(data)
            if fmt is Format.csv:
                typer.echo(csv_text(report), nl=False)
            else:
                print_report(Console(), report)
            return
        if execution is not None:
            cfg = load_config(config or getattr(ctx.obj, "config", None))
            rows = deploy_costs(open_database(db or getattr(ctx.obj, "db", None)), execution, cfg.costs.rates)
            print_deploy_costs(rows, fmt)
            return
        query = CostQuery(group_by=by, period=period, granularity=granularity.value, metric=metric.value)
        cfg = load_config(config or getattr(ctx.obj, "config", None))
        database = open_database(db or getattr(ctx.obj, "db", None))
        report = get_costs(database, cfg, AwsSessions(cfg, max_attempts=3), query, refresh=refresh)
        if fmt is Format.json:
            typer.echo(json.dumps(report.as_dict(), indent=2))
        elif fmt is Format.csv:
            typer.echo(csv_text(report), nl=False)
        else:
            print_report(Console(), report)
        if with_budgets and fmt is Format.table:
            found = budgets.list_budgets(AwsSessions(cfg, max_attempts=3), cfg)
            Console().print(budget_table(found) if found else "no budgets")

    group = typer.Typer(help="AWS Budgets: read them; keep one monthly budget per account and application.")
    app.add_typer(group, name="budgets", no_args_is_help=True)

    def _cfg(ctx: typer.Context, config: str | None) -> tuple[Config, AwsSessions]:
        cfg = load_config(config or getattr(ctx.obj, "config", None))
        return cfg, AwsSessions(cfg, max_attempts=3)

    @group.command("list")
    def list_cmd(ctx: typer.Context, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
        """Every budget of the cost account: limit, actual and forecast spend, and whether it is ours."""
        cfg, sessions = _cfg(ctx, config)
        rows = budgets.list_budgets(sessions, cfg)
        if as_json:
            typer.echo(json.dumps([b.as_dict() for b in rows], indent=2))
        elif rows:
            Console().print(budget_table(rows))
        else:
            typer.echo("no budgets (gennaker budgets plan shows what apply would create)")

    @group.command("plan")
    def plan_cmd(ctx: typer.Context, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
        """What apply would create, update or delete (only budgets named gennaker-…)."""
        cfg, sessions = _cfg(ctx, config)
        changes = budgets.plan(sessions, cfg)
        if as_json:
            typer.echo(json.dumps([c.as_dict() for c in changes], indent=2))
        else:
            Console().print(change_table(changes))

    @group.command("apply")
    def apply_cmd(ctx: typer.Context, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
        """Create the missing budgets, update changed limits, delete ours no longer configured."""
        cfg, sessions = _cfg(ctx, config)
        changes = budgets.plan(sessions, cfg)
        done = budgets.apply(sessions, cfg, changes)
        errors = {c.name: e for c, e in done}
        failed = [c for c, e in done if e]
        if as_json:
            typer.echo(json.dumps([{**c.as_dict(), "error": e} for c, e in done], indent=2))
        elif done:
            Console().print(change_table([c for c, _ in done], errors))
            typer.echo(f"{len(done) - len(failed)} change(s) made, {len(failed)} failed")
        else:
            typer.echo("nothing to change")
        if failed:
            raise typer.Exit(1)
