"""``gennaker alarms plan|apply``: the recommended CloudWatch alarms for the inventory, as a diff, and
carrying it out (idempotent; only alarms Gennaker created are changed or deleted)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from gennaker.cli.ops import ConfigOpt, JsonOpt, ListOpt, _global, _print_json, _setup, _split, err, out
from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.alarms.aws import Outcome
from gennaker.ops.alarms.plan import AlarmPlan
from gennaker.ops.alarms.service import apply_plan, plan_alarms
from gennaker.ops.alarms.settings import alarm_settings
from gennaker.spec.config import load_config

EXIT_PARTIAL = 1  # something could not be planned or carried out (the reason is printed)
STYLE = {
    "create": "green",
    "update": "yellow",
    "stale": "red",
    "enable-metrics": "yellow",
    "conflict": "magenta",
    "covered": "dim",
    "unchanged": "dim",
}

AppOpt = Annotated[str | None, typer.Option("--application", help="Only resources of this application.")]
TopicOpt = Annotated[
    str | None, typer.Option("--topic", help="SNS topic ARN for alarm actions ({region}, {account_id} allowed).")
]
AccountOpt = Annotated[list[str] | None, typer.Option("--account", help="Account name (repeatable).")]


def _table(rows: list[dict[str, Any]], with_result: bool = False) -> Table:
    t = Table(show_edge=False)
    for col in (
        "Action",
        "Account/Region",
        "Alarm",
        "Resource",
        "Tier",
        "Detail",
        *(["Result"] if with_result else []),
    ):
        t.add_column(col, overflow="fold")
    for r in rows:
        cells = [
            Text(r["action"], style=STYLE.get(r["action"], "")),
            Text(f"{r['account']}/{r['region']}"),
            Text(r["alarm"]),
            Text(r["resource"] or ""),
            Text(r["tier"] or ""),
            Text(r["detail"]),
        ]
        if with_result:
            cells.append(Text(r["message"], style="green" if r["ok"] else "red"))
        t.add_row(*cells)
    return t


def _summary(plan: AlarmPlan) -> str:
    counts = plan.counts()
    order = ("create", "update", "stale", "enable-metrics", "unchanged", "covered", "conflict")
    return ", ".join(f"{counts.get(a, 0)} {a}" for a in order)


def _problems(plan: AlarmPlan) -> None:
    for w in plan.warnings:
        err().print(Text.assemble(("warning", "yellow"), " ", w), soft_wrap=True)
    for p in plan.problems:
        err().print(Text.assemble(("not planned", "yellow"), " ", p), soft_wrap=True)


def register(app: typer.Typer) -> None:
    alarms = typer.Typer(
        help="Recommended CloudWatch alarms per resource and business tier, wired to Gennaker's SNS topic.",
        no_args_is_help=True,
    )
    app.add_typer(alarms, name="alarms")

    def _plan(
        ctx: typer.Context,
        config: str | None,
        application: str | None,
        topic: str | None,
        accounts: list[str] | None,
        regions: list[str] | None,
    ) -> tuple[AlarmPlan, AwsSessions]:
        cfg = load_config(_global(ctx, "config", config))
        settings = alarm_settings(cfg.alarms)  # before collecting: a bad section should cost nothing
        _, ops, sessions = _setup(ctx, config, _split(regions))
        found = plan_alarms(
            sessions,
            ops,
            settings,
            topic=topic,
            application=application,
            accounts=_split(accounts),
            regions=_split(regions),
        )
        return found, sessions

    @alarms.command("plan")
    def plan_cmd(
        ctx: typer.Context,
        application: AppOpt = None,
        topic: TopicOpt = None,
        account: AccountOpt = None,
        region: ListOpt = None,
        as_json: JsonOpt = False,
        config: ConfigOpt = None,
    ) -> None:
        """Show what apply would do: create / update / unchanged / covered (a user's alarm) / stale (ours)."""
        result, _ = _plan(ctx, config, application, topic, account, region)
        if as_json:
            _print_json(result.to_json())
        else:
            out().print(_table([r.to_dict() for r in result.rows]))
            out().print(_summary(result))
        _problems(result)
        if result.problems:
            raise typer.Exit(EXIT_PARTIAL)

    @alarms.command("apply")
    def apply_cmd(
        ctx: typer.Context,
        application: AppOpt = None,
        topic: TopicOpt = None,
        account: AccountOpt = None,
        region: ListOpt = None,
        as_json: JsonOpt = False,
        config: ConfigOpt = None,
    ) -> None:
        """Create and update the recommended alarms, delete our stale ones; never touches a user's alarm."""
        result, sessions = _plan(ctx, config, application, topic, account, region)
        outcomes: list[Outcome] = apply_plan(sessions, result) if result.changes else []
        failed = [o for o in outcomes if not o.ok]
        if as_json:
            _print_json({**result.to_json(), "outcomes": [o.to_dict() for o in outcomes]})
        elif outcomes:
            out().print(_table([o.to_dict() for o in outcomes], with_result=True))
            out().print(f"{len(outcomes) - len(failed)} change(s) made, {len(failed)} failed; {_summary(result)}")
        else:
            out().print(f"nothing to change: {_summary(result)}")
        _problems(result)
        for o in failed:
            err().print(Text.assemble(("failed", "red"), f" {o.row.action} {o.row.alarm}: {o.message}"), soft_wrap=True)
        if failed or result.problems:
            raise typer.Exit(EXIT_PARTIAL)
