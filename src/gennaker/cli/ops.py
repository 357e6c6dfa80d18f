"""``gennaker inventory …`` and ``gennaker audit``: collect, browse and diff the inventory; audit it."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from gennaker.cli import options
from gennaker.cloud.aws.session import AwsSessions
from gennaker.errors import ConfigError
from gennaker.ops import store
from gennaker.ops.checks import CHECKS
from gennaker.ops.findings import SEVERITIES, score_text
from gennaker.ops.registry import TYPES
from gennaker.ops.reports import FORMATS, render
from gennaker.ops.reports.table import print_table
from gennaker.ops.service import audit_and_store, collect_and_store
from gennaker.ops.settings import OpsSettings, ops_settings
from gennaker.ops.suppressions import load_suppressions
from gennaker.spec.config import Config, load_config
from gennaker.store.db import Database, open_database

EXIT_BLOCKING = 3

DbOpt = Annotated[
    str | None,
    typer.Option("--db", envvar="GENNAKER_DB", parser=options.database, help="Database URL or SQLite path."),
]
ConfigOpt = Annotated[
    str | None, typer.Option("--config", envvar="GENNAKER_CONFIG", parser=options.path, help="gennaker.yml")
]
LimitOpt = Annotated[int, typer.Option(parser=options.int_range(1, 100_000), help="At most this many rows.")]
ListOpt = Annotated[list[str] | None, typer.Option(help="Comma-separated or repeated.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
TypeOpt = Annotated[str | None, typer.Option("--type", help="Resource type or glob (ec2.*).")]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="Key or Key=Value (repeatable).")]
SnapOpt = Annotated[str | None, typer.Option("--snapshot", help="Snapshot id (default: newest).")]


def out() -> Console:
    """Consoles are made per use: they read the terminal width and streams at that moment."""
    return Console()


def err() -> Console:
    return Console(stderr=True)


def _split(values: list[str] | None) -> list[str] | None:
    items = [v.strip() for raw in values or [] for v in raw.split(",") if v.strip()]
    return items or None


def _global(ctx: typer.Context, name: str, local: str | None) -> str | None:
    """Our own option first, else the main CLI's global option of the same name."""
    return local or getattr(ctx.obj, name, None)


def _db(ctx: typer.Context, db: str | None) -> Database:
    return open_database(_global(ctx, "db", db))


def _setup(
    ctx: typer.Context, config: str | None, regions: list[str] | None = None
) -> tuple[Config, OpsSettings, AwsSessions]:
    cfg = load_config(_global(ctx, "config", config))
    if not cfg.accounts:
        raise ConfigError("no accounts configured: add an 'accounts:' section to gennaker.yml")
    _check_regions(cfg, regions)
    return cfg, ops_settings(cfg.ops), AwsSessions(cfg)


AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")  # us-east-1, us-gov-west-1, ap-southeast-4


def _check_regions(cfg: Config, regions: list[str] | None) -> None:
    """A --regions value is a region AWS could have, or one the configuration names: a typo would
    otherwise audit nothing there and pass."""
    configured = {r for a in cfg.accounts.values() for r in [*a.regions, *([a.dr_region] if a.dr_region else [])]}
    for region in regions or []:
        if region not in configured and not AWS_REGION.fullmatch(region):
            known = ", ".join(sorted(configured))
            raise ConfigError(f"--regions: '{region}' is not a region (e.g. us-east-1; configured: {known})")


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int, str], None] | None]:
    """A progress bar on a terminal; nothing when piped or when printing JSON."""
    if not enabled or not err().is_terminal:
        yield None
        return
    with Progress(
        TextColumn("collecting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err(),
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)

        def update(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label)

        yield update


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _cells(*values: Any) -> list[Text]:
    """Table cells as text: names, tags and ids come from AWS, where a '[/x]' is not Rich markup."""
    return [Text("" if v is None else str(v)) for v in values]


def _resources_table(rows: list[Any]) -> Table:
    t = Table(show_edge=False)
    for col in ("Type", "Account", "Region", "Id", "Name", "Tags"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(*_cells(r.type, r.account, r.region, r.id, r.name, ", ".join(f"{k}={v}" for k, v in r.tags.items())))
    return t


def _resource_dict(r: Any, with_attrs: bool = True) -> dict[str, Any]:
    d = {
        "type": r.type,
        "account": r.account,
        "region": r.region,
        "id": r.id,
        "arn": r.arn,
        "name": r.name,
        "tags": r.tags,
    }
    if with_attrs:
        d["attributes"] = r.attrs
    return d


def register(app: typer.Typer) -> None:
    inv = typer.Typer(
        help="Inventory: collect AWS resources into snapshots; browse, export and diff them.", no_args_is_help=True
    )
    app.add_typer(inv, name="inventory")

    @inv.command()
    def collect(
        ctx: typer.Context,
        accounts: ListOpt = None,
        regions: ListOpt = None,
        types: ListOpt = None,
        as_json: JsonOpt = False,
        db: DbOpt = None,
        config: ConfigOpt = None,
    ) -> None:
        """Collect every resource type (or --types) in the configured accounts and regions."""
        _, settings, sessions = _setup(ctx, config, _split(regions))
        database = _db(ctx, db)
        with _progress(not as_json) as progress:
            snap = collect_and_store(
                database,
                sessions,
                settings,
                accounts=_split(accounts),
                regions=_split(regions),
                types=_split(types),
                progress=progress,
            )
        info = {
            "id": snap.id,
            "resources": len(snap.resources),
            "failures": [vars(f) for f in snap.failures],
            "by_type": dict(sorted(Counter(r.type for r in snap.resources).items())),
            **snap.stats,
        }
        if as_json:
            _print_json(info)
            return
        out().print(
            f"snapshot [bold]{snap.id}[/bold]: {len(snap.resources)} resources in "
            f"{snap.stats['duration_s']:.1f} s, {sum(snap.stats['calls'].values())} API calls"
        )
        for f in snap.failures:
            err().print(Text.assemble(("not collected", "yellow"), " ", f.reason()))

    @inv.command("snapshots")
    def snapshots(ctx: typer.Context, limit: LimitOpt = 20, as_json: JsonOpt = False, db: DbOpt = None) -> None:
        """List stored snapshots, newest first."""
        rows = store.list_snapshots(_db(ctx, db), limit)
        if as_json:
            _print_json(rows)
            return
        t = Table(show_edge=False)
        for col in ("Id", "Created", "Accounts", "Resources", "Failures"):
            t.add_column(col)
        for r in rows:
            t.add_row(*_cells(r["id"], r["created_at"], ", ".join(r["accounts"]), r["resource_count"], r["failures"]))
        out().print(t)

    @inv.command()
    def show(
        ctx: typer.Context,
        snapshot: Annotated[str | None, typer.Argument(help="Default: newest.")] = None,
        as_json: JsonOpt = False,
        db: DbOpt = None,
    ) -> None:
        """A snapshot: resources per type, collection failures and API calls."""
        snap = store.load_snapshot(_db(ctx, db), snapshot)
        counts = Counter((r.type, r.account, r.region) for r in snap.resources)
        data: dict[str, Any] = {
            "id": snap.id,
            "created_at": snap.created_at.isoformat(),
            "accounts": sorted(snap.accounts),
            "counts": [{"type": t, "account": a, "region": r, "count": n} for (t, a, r), n in sorted(counts.items())],
            "failures": [vars(f) for f in snap.failures],
            "stats": snap.stats,
        }
        if as_json:
            _print_json(data)
            return
        out().print(f"snapshot [bold]{snap.id}[/bold] taken {data['created_at']}")
        t = Table(show_edge=False)
        for col in ("Type", "Account", "Region", "Count"):
            t.add_column(col)
        for c in data["counts"]:
            t.add_row(*_cells(c["type"], c["account"], c["region"], c["count"]))
        out().print(t)
        for f in snap.failures:
            err().print(Text.assemble(("not collected", "yellow"), " ", f.reason()))

    def _query(
        type_: str | None, account: str | None, region: str | None, tag: list[str] | None, text: str | None
    ) -> store.Query:
        return store.Query(type=type_, account=account, region=region, tags=tag or [], text=text)

    @inv.command()
    def search(
        ctx: typer.Context,
        text: Annotated[str | None, typer.Argument(help="Text to find.")] = None,
        type_: TypeOpt = None,
        account: str | None = None,
        region: str | None = None,
        tag: TagOpt = None,
        snapshot: SnapOpt = None,
        limit: LimitOpt = 200,
        as_json: JsonOpt = False,
        db: DbOpt = None,
    ) -> None:
        """Find resources by type, tag, account, region and text."""
        rows = store.search(_db(ctx, db), snapshot, _query(type_, account, region, tag, text), limit)
        if as_json:
            _print_json([_resource_dict(r) for r in rows])
        else:
            out().print(_resources_table(rows))

    @inv.command()
    def export(
        ctx: typer.Context,
        fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
        output: Annotated[Path | None, typer.Option(parser=options.file, help="File (default: stdout).")] = None,
        type_: TypeOpt = None,
        account: str | None = None,
        region: str | None = None,
        tag: TagOpt = None,
        snapshot: SnapOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Export a snapshot's resources (asset register) as CSV or JSON."""
        if fmt not in ("csv", "json"):  # before the database: a typo should not need a snapshot
            raise ConfigError(f"unknown export format '{fmt}' (csv or json)")
        if output is not None:
            writable(output)
        rows = store.search(_db(ctx, db), snapshot, _query(type_, account, region, tag, None))
        if fmt == "json":
            text = json.dumps([_resource_dict(r) for r in rows], indent=2, default=str) + "\n"
        elif fmt == "csv":
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(["type", "account", "region", "id", "arn", "name", "tags"])
            for r in rows:
                w.writerow(
                    [
                        r.type,
                        r.account,
                        r.region,
                        r.id,
                        r.arn or "",
                        r.name or "",
                        ";".join(f"{k}={v}" for k, v in sorted(r.tags.items())),
                    ]
                )
            text = buf.getvalue()
        if output:
            write_report(output, text)
        else:
            sys.stdout.write(text)

    @inv.command()
    def diff(
        ctx: typer.Context,
        old: Annotated[str | None, typer.Argument(help="Older snapshot.")] = None,
        new: Annotated[str | None, typer.Argument(help="Newer snapshot (default: newest).")] = None,
        as_json: JsonOpt = False,
        db: DbOpt = None,
    ) -> None:
        """Resources added, removed and changed between two snapshots (default: the last two)."""
        d = store.diff(_db(ctx, db), old, new)
        if as_json:
            _print_json(d)
            return
        out().print(
            f"from {d['from']} to {d['to']}: {len(d['added'])} added, {len(d['removed'])} removed, "
            f"{len(d['changed'])} changed"
        )
        if d["not_compared"]:  # collected by only one snapshot, or failed in one: unknown, not changed
            out().print(Text(f"not compared: {', '.join(d['not_compared'])}", style="dim"))
        for sign, key, style in (("+", "added", "green"), ("-", "removed", "red")):
            for r in d[key]:
                out().print(Text(f"{sign} {r['type']} {r['account']}/{r['region']} {r['id']}", style=style))
        for r in d["changed"]:
            out().print(
                Text.assemble(
                    (f"~ {r['type']} {r['account']}/{r['region']} {r['id']}", "yellow"), f": {', '.join(r['changed'])}"
                )
            )

    @app.command()
    def audit(
        ctx: typer.Context,
        accounts: ListOpt = None,
        regions: ListOpt = None,
        checks: Annotated[list[str] | None, typer.Option(help="Check id glob(s), e.g. 'ha.*,dr.s3.*'.")] = None,
        fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(FORMATS)}.")] = "table",
        output: Annotated[Path | None, typer.Option(parser=options.file, help="Write the report here.")] = None,
        fail_on: Annotated[str | None, typer.Option(help="Exit 3 if a finding this severe or worse fails.")] = None,
        strict: Annotated[bool, typer.Option(help="UNKNOWN findings count as failing for --fail-on.")] = False,
        suppressions: Annotated[
            Path | None, typer.Option(parser=options.file, help="Suppressions file (YAML).")
        ] = None,
        max_age: Annotated[
            float | None, typer.Option(parser=options.duration, help="Reuse a snapshot younger than this (e.g. 30m).")
        ] = None,
        list_checks: Annotated[bool, typer.Option("--list-checks", help="List the checks and exit.")] = False,
        organization: Annotated[
            bool,
            typer.Option(
                "--organization", help="Fan collection out as durable jobs per account x region (shared by workers)."
            ),
        ] = False,
        workers: Annotated[
            int,
            typer.Option(
                parser=options.int_range(0, 64),
                help="With --organization: parts this process collects at a time (0: only `gennaker worker`s).",
            ),
        ] = 2,
        db: DbOpt = None,
        config: ConfigOpt = None,
    ) -> None:
        """Audit operations readiness (HA, monitoring, DR, go-live) and report; exit 3 on --fail-on."""
        if list_checks:
            if fmt == "json":
                _print_json([c.metadata() for c in CHECKS])
            for c in CHECKS if fmt != "json" else ():
                out().print(f"{c.id:42} {c.severity:8} {c.title}", soft_wrap=True, highlight=False)
            return
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
        if fail_on is not None and fail_on not in SEVERITIES:
            raise ConfigError(f"--fail-on takes one of {', '.join(SEVERITIES)}")
        # Everything the user typed is checked before collecting: a typo should not cost an audit.
        max_age_s = max_age  # checked by its parser; 0 means never reuse
        sups = load_suppressions(str(suppressions)) if suppressions else []
        if output is not None:
            writable(output)
        _, settings, sessions = _setup(ctx, config, _split(regions))
        if organization and max_age_s:
            raise ConfigError("--organization collects afresh: it does not take --max-age")
        with _progress(fmt == "table" or output is not None) as progress:
            if organization:
                from gennaker.ops.fanout import audit_organization

                result = audit_organization(
                    _db(ctx, db),
                    sessions,
                    settings,
                    checks=_split(checks),
                    accounts=_split(accounts),
                    regions=_split(regions),
                    suppressions=sups,
                    workers=workers,
                    progress=_parts_progress(progress),
                    source="cli",
                )
            else:
                result = audit_and_store(
                    _db(ctx, db),
                    sessions,
                    settings,
                    checks=_split(checks),
                    accounts=_split(accounts),
                    regions=_split(regions),
                    suppressions=sups,
                    max_age_s=max_age_s,
                    progress=progress,
                    source="cli",
                )
        _report(result, fmt, output, fail_on, strict)

    def _report(result: Any, fmt: str, output: Path | None, fail_on: str | None, strict: bool) -> None:
        report = result.to_json()
        if fmt == "table" and output is None:
            print_table(report, out())
        elif output is not None:
            write_report(output, table_text(report) if fmt == "table" else render(report, fmt))
            err().print(Text(f"report written to {output} (score {score_text(report['summary']['score'])})"))
        else:
            sys.stdout.write(render(report, fmt))
        # the table on the terminal lists expired suppressions itself; elsewhere they go to stderr
        for s in result.expired_suppressions if fmt != "table" or output is not None else []:
            err().print(
                Text.assemble((f"suppression expired {s.expires}", "yellow"), f": {s.check} {s.resource} ({s.reason})")
            )
        blocking = result.blocking(fail_on, strict) if fail_on else []
        if blocking:
            err().print(f"[red]{len(blocking)} finding(s) at or above {fail_on} fail[/red]")
            raise typer.Exit(EXIT_BLOCKING)


def _parts_progress(bar: Callable[[int, int, str], None] | None) -> Callable[[int, int], None]:
    """Parts collected so far: on the bar on a terminal, else a line on stderr each time it moves."""
    last = [-1]

    def update(done: int, total: int) -> None:
        if bar is not None:
            bar(done, total, "parts (account x region) collected")
        elif done != last[0]:
            err().print(f"audit: {done}/{total} parts collected", highlight=False)
        last[0] = done

    return update


def writable(path: Path) -> None:
    """Fail before the work when a report could not be written where asked."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        if path.is_dir():
            raise ConfigError(f"--output {path} is a directory: give a file name")
        if not parent.is_dir():
            raise ConfigError(f"--output {path}: directory {parent} does not exist")
    except OSError as exc:  # e.g. a name too long for the file system
        raise ConfigError(f"--output {path}: {exc.strerror or exc}") from None


def write_report(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:  # e.g. no permission: after the work, but still one line, not a traceback
        raise ConfigError(f"--output {path}: cannot write: {exc.strerror or exc}") from None


def table_text(report: dict[str, Any]) -> str:
    """The table report as plain text, for --format table --output FILE."""
    buf = io.StringIO()
    print_table(report, Console(file=buf, width=160, color_system=None, soft_wrap=True))
    return buf.getvalue()


__all__ = ["TYPES", "register"]
