"""The terminal report: per-pillar score and counts, then failing findings grouped by check."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rich.console import Console
from rich.table import Table

from gennaker.ops.findings import score_text

STYLE = {"PASS": "green", "FAIL": "bold red", "UNKNOWN": "yellow", "NOT_APPLICABLE": "dim"}


def print_table(report: dict[str, Any], console: Console, show_unknown: bool = True) -> None:
    s = report["summary"]
    scope = report["scope"]
    console.print(
        f"[bold]Operations readiness[/bold]  score [bold]{score_text(s['score'])}[/bold]/100  "
        f"accounts {', '.join(scope['accounts'])}  regions {', '.join(scope['regions'])}"
    )
    pillars = Table(show_edge=False)
    for col in ("Pillar", "Score", "PASS", "FAIL", "UNKNOWN", "N/A", "Suppressed"):
        pillars.add_column(col, justify="left" if col == "Pillar" else "right")
    for p in s["by_pillar"].values():
        pillars.add_row(
            p["title"],
            score_text(p["score"]),
            str(p["PASS"]),
            f"[red]{p['FAIL']}[/red]" if p["FAIL"] else "0",
            str(p["UNKNOWN"]),
            str(p["NOT_APPLICABLE"]),
            str(p.get("SUPPRESSED", 0)),
        )
    console.print(pillars)
    wanted = {"FAIL", "UNKNOWN"} if show_unknown else {"FAIL"}
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in report["findings"]:
        if f["status"] in wanted and not f.get("suppressed"):
            grouped[f["check_id"]].append(f)
    titles = {c["id"]: c["title"] for c in report.get("checks", [])}
    for check_id, fs in sorted(grouped.items()):
        t = Table(
            title=f"{check_id} [dim]{titles.get(check_id, '')}[/dim] ({fs[0]['severity']})",
            title_justify="left",
            show_edge=False,
        )
        for col in ("Status", "Account/Region", "Resource", "Finding"):
            t.add_column(col, overflow="fold")
        for f in fs:
            t.add_row(
                f"[{STYLE[f['status']]}]{f['status']}[/]",
                f"{f['account']}/{f['region']}",
                f["resource_id"],
                f["message"],
            )
        console.print(t)
        console.print(f"  [dim]fix:[/dim] {fs[0]['remediation']['text']}  [dim]{fs[0]['remediation']['cli']}[/dim]")
    for sup in report.get("expired_suppressions", []):
        console.print(
            f"[yellow]expired suppression[/yellow] {sup['check']} {sup['resource']} "
            f"(expired {sup['expires']}): {sup['reason']}"
        )
    if not grouped:
        console.print("[green]No failing findings.[/green]")
