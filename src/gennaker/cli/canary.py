"""``gennaker canary analyze``: judge a canary again over a stored or a given window (retroactive
analysis), print the per-metric table, exit 0 when it passes and 1 when it does not.

- ``--analysis ID [--interval N]``: the series stored with judgement N (default: the last) of a
  stored analysis, judged again with its stored configuration; nothing is fetched;
- ``--config FILE --baseline SG --canary SG --start T --end T``: the analysis block in FILE, with
  samples fetched now from its metric sources for that window (``--account`` names the account
  whose load balancer or CloudWatch is read; a lone local account is used by default).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gennaker.cli import options
from gennaker.cloud import registry
from gennaker.errors import InvalidInput, NotFound, ValidationFailed
from gennaker.metrics import store as canary_store
from gennaker.metrics.config import AnalysisConfig
from gennaker.metrics.judge import Judgement, fetch_interval, judge
from gennaker.metrics.sources import MetricError, Scope, Series, SourceSettings, build_sources
from gennaker.spec.config import Config, load_config
from gennaker.spec.validation import pydantic_problems
from gennaker.spec.yamlload import load_yaml_file
from gennaker.store.db import open_database

canary_app = typer.Typer(no_args_is_help=True, help="Canary analyses: judge a window again.")


def register(app: typer.Typer) -> None:
    app.add_typer(canary_app, name="canary")


def _when(value: Any) -> datetime:
    """An ISO 8601 time (UTC when it names no zone) or seconds since the epoch."""
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise typer.BadParameter(
                f"not a time: {text!r} (ISO 8601, e.g. 2026-12-01T10:00:00Z, or epoch seconds)"
            ) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if not math.isfinite(seconds) or not 0 <= seconds < 1e11:
        raise typer.BadParameter(f"not a time: {text!r}")
    return datetime.fromtimestamp(seconds, UTC)


def _series(stored: Any) -> Series | MetricError:
    if not isinstance(stored, dict) or "error" in stored:
        return MetricError(str((stored or {}).get("error", "not stored")))
    values = tuple(math.nan if v is None else float(v) for v in stored.get("v", []))
    return Series(tuple(float(t) for t in stored.get("t", [])), values)


def _load_analysis_config(path: str) -> AnalysisConfig:
    if not Path(path).is_file():
        raise NotFound(f"analysis configuration not found: {path}")
    located = load_yaml_file(path)
    value: Any = located.value
    prefix: tuple[str, ...] = ()
    if isinstance(value, dict) and "analysis" in value:
        value, prefix = value["analysis"], ("analysis",)
    if not isinstance(value, dict):
        raise ValidationFailed([located.problem(prefix, "the analysis configuration must be a mapping")])
    try:
        return AnalysisConfig.model_validate(value)
    except ValidationError as exc:
        raise ValidationFailed(pydantic_problems(exc, located, prefix)) from None


def _settings(config: Config, account: str | None) -> tuple[SourceSettings, str, str | None]:
    """Sources for a window fetched now: the account's load balancer (local) or CloudWatch (aws)."""
    if account is None:
        local = [name for name, a in config.accounts.items() if a.kind == "local"]
        account = local[0] if len(local) == 1 else None
    if account is None:
        return SourceSettings(), "local", None
    if account not in config.accounts:
        raise NotFound(f"account {account} is not configured")

    class Services:  # what the registry builds providers from
        def __init__(self) -> None:
            self.config = config
            self._aws: Any = None

        @property
        def aws(self) -> Any:
            if self._aws is None:
                from gennaker.cloud.aws.session import AwsSessions

                self._aws = AwsSessions(config)
            return self._aws

    services = Services()
    provider = registry.provider_for(services, account)
    kind = config.accounts[account].kind
    settings = SourceSettings(
        aws=services.aws if kind == "aws" else None,
        haproxy=provider if hasattr(provider, "server_stats") else None,
    )
    return settings, provider.region, account


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print(judgement: Judgement, heading: str) -> None:
    out = Console()
    out.print(Text(heading), highlight=False)
    table = Table("metric", "group", "label", "baseline median", "canary median", "effect size", "reason")
    for m in judgement.metrics:
        c = m.classification
        name = m.name + (" (critical)" if m.critical else "") + (" (muted)" if m.muted else "")
        label = Text(str(m.label), style="green" if str(m.label) == "Pass" else "red")
        table.add_row(
            Text(name),
            Text(m.group),
            label,
            _cell(c.baseline_median),
            _cell(c.canary_median),
            _cell(c.effect_size),
            Text(m.reason or ""),
        )
    out.print(table)
    for reason in judgement.reasons:
        out.print(Text(f"score overridden: {reason}"), highlight=False)
    style = {"pass": "green", "marginal": "yellow"}.get(str(judgement.result), "red")
    out.print(Text.assemble("score ", (f"{judgement.score:g}", "bold"), " ", (str(judgement.result), style)))


@canary_app.command("analyze")
def analyze(
    ctx: typer.Context,
    analysis: Annotated[str | None, typer.Option("--analysis", parser=options.name, help="A stored analysis.")] = None,
    interval: Annotated[
        int | None, typer.Option(parser=options.int_range(1, 100_000), help="Its judgement (default: the last).")
    ] = None,
    config_file: Annotated[
        str | None, typer.Option("--config", parser=options.path, help="An analysis block (YAML).")
    ] = None,
    baseline: Annotated[str | None, typer.Option(parser=options.name, help="Baseline server group.")] = None,
    canary: Annotated[str | None, typer.Option(parser=options.name, help="Canary server group.")] = None,
    start: Annotated[datetime | None, typer.Option(parser=_when, help="Window start (ISO 8601 or epoch).")] = None,
    end: Annotated[datetime | None, typer.Option(parser=_when, help="Window end (ISO 8601 or epoch).")] = None,
    account: Annotated[str | None, typer.Option(parser=options.name, help="Account whose metrics are read.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Judge a canary again over a stored window (--analysis) or a given one (--config ...)."""
    given = [n for n, v in (("--baseline", baseline), ("--canary", canary), ("--start", start), ("--end", end)) if v]
    if analysis is not None:
        if config_file is not None or given:
            raise InvalidInput(f"--analysis judges a stored window; it takes no --config or {', '.join(given)}")
        judgement, heading, doc = _stored(ctx, analysis, interval)
    else:
        if config_file is None:
            raise InvalidInput("give --analysis ID, or --config FILE with --baseline, --canary, --start and --end")
        missing = [n for n in ("--baseline", "--canary", "--start", "--end") if n not in given]
        if missing:
            raise InvalidInput(f"--config needs {', '.join(missing)} too")
        if interval is not None:
            raise InvalidInput("--interval picks a judgement of a stored analysis (--analysis)")
        assert baseline and canary and start and end
        if end <= start:
            raise InvalidInput("--end must be after --start")
        if baseline == canary:
            raise InvalidInput(f"--baseline and --canary are the same server group ({canary})")
        judgement, heading, doc = _given(ctx, config_file, baseline, canary, start, end, account)
    if as_json:
        typer.echo(json.dumps({**doc, **judgement.as_dict()}, indent=2))
    else:
        _print(judgement, heading)
    if str(judgement.result) != "pass":
        raise typer.Exit(1)


def _stored(ctx: typer.Context, analysis_id: str, interval: int | None) -> tuple[Judgement, str, dict[str, Any]]:
    db = open_database(getattr(ctx.obj, "db", None))
    try:
        stored = canary_store.get_analysis(db, analysis_id)
    finally:
        db.dispose()
    judgements = stored["judgements"]
    if not judgements:
        raise NotFound(f"canary analysis {analysis_id} has no judgement yet")
    chosen = judgements[-1] if interval is None else next((j for j in judgements if j["index"] == interval), None)
    if chosen is None:
        raise NotFound(f"canary analysis {analysis_id} has no judgement {interval} (it has 1..{len(judgements)})")
    config = AnalysisConfig.model_validate(stored["config"])
    by_name = {m["name"]: m for m in chosen["metrics"]}
    base = {name: _series(m.get("baseline")) for name, m in by_name.items()}
    can = {name: _series(m.get("canary")) for name, m in by_name.items()}
    judgement = judge(config, base, can)
    window = f"{_iso(chosen['window_start'])} .. {_iso(chosen['window_end'])}"
    heading = (
        f"analysis {analysis_id} judgement {chosen['index']} ({window}): "
        f"{stored['baseline']} (baseline) vs {stored['canary']} (canary); stored score {chosen['score']:g}"
    )
    doc = {
        "analysis": analysis_id,
        "interval": chosen["index"],
        "window": {"start": chosen["window_start"], "end": chosen["window_end"]},
        "baseline": stored["baseline"],
        "canary": stored["canary"],
        "stored_score": chosen["score"],
    }
    return judgement, heading, doc


def _given(
    ctx: typer.Context,
    config_file: str,
    baseline: str,
    canary: str,
    start: datetime,
    end: datetime,
    account: str | None,
) -> tuple[Judgement, str, dict[str, Any]]:
    config = _load_analysis_config(config_file)
    settings, location, used = _settings(load_config(getattr(ctx.obj, "config", None)), account)
    sources = build_sources(settings)
    base, can = fetch_interval(
        sources, config, Scope(baseline, location, account=used), Scope(canary, location, account=used), start, end
    )
    judgement = judge(config, base, can)
    heading = f"{baseline} (baseline) vs {canary} (canary), {start.isoformat()} .. {end.isoformat()}"
    doc = {"window": {"start": start.timestamp(), "end": end.timestamp()}, "baseline": baseline, "canary": canary}
    return judgement, heading, doc


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")
