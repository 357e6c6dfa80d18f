"""Costs fixtures: a small bill (two months of daily spend over accounts, services, regions and tags)
that the tests queue into simulated Cost Explorer and write as FOCUS 1.0 parquet into simulated S3,
so both sources answer from the same data."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gennaker.cli import run

START, END = date(2026, 9, 1), date(2026, 11, 1)  # the previous month (September) and October
ACCOUNTS = ("111111111111", "222222222222")
SERVICES = ("Amazon Elastic Compute Cloud - Compute", "Amazon Simple Storage Service", "AWS Lambda")
REGIONS = ("us-east-1", "eu-west-1")
APPS = ("shop", "cart", "")  # "" = spend without the application tag
APP_KEY, ENV_KEY = "gennaker:application", "gennaker:environment"


@dataclass(frozen=True)
class Line:
    day: date
    account: str
    service: str
    region: str
    app: str
    env: str
    team: str
    cost: float
    amortized: float


def bill() -> list[Line]:
    """Deterministic spend; October grows for shop and shrinks for the untagged, so movers move."""
    lines = []
    day = START
    while day < END:
        october = day.month == 10
        for a, account in enumerate(ACCOUNTS):
            for s, service in enumerate(SERVICES):
                for r, region in enumerate(REGIONS):
                    for p, app in enumerate(APPS):
                        base = 1.0 + a * 0.5 + s * 0.25 + r * 0.125 + p * 0.0625 + (day.day % 7) * 0.01
                        if october and app == "shop":
                            base *= 1.5
                        if october and app == "":
                            base *= 0.5
                        cost = round(base, 4)
                        env = "" if app == "" else ("prod" if a == 0 else "dev")
                        team = "" if app == "" else ("web" if app == "shop" else "pay")
                        lines.append(Line(day, account, service, region, app, env, team, cost, round(cost * 0.9, 4)))
        day += timedelta(days=1)
    return lines


def value_of(line: Line, group_by: str) -> str:
    return {
        "account": line.account,
        "service": line.service,
        "region": line.region,
        "application": line.app,
        "environment": line.env,
        "tag:team": line.team,
    }[group_by]


def expected(group_by: str, month: int = 10, amortized: bool = False) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for line in bill():
        if line.day.month == month:
            totals[value_of(line, group_by)] += line.amortized if amortized else line.cost
    return dict(totals)


def ce_result(group_by: str, amortized: bool = False, pages: int = 1) -> list[dict[str, Any]]:
    """What Cost Explorer answers for one grouping, DAILY over both months, split into ``pages``."""
    tag = {"application": APP_KEY, "environment": ENV_KEY, "tag:team": "team"}.get(group_by)
    metric = "AmortizedCost" if amortized else "UnblendedCost"
    per_day: dict[date, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for line in bill():
        per_day[line.day][value_of(line, group_by)] += line.amortized if amortized else line.cost
    days = sorted(per_day)
    results = [
        {
            "TimePeriod": {"Start": str(d), "End": str(d + timedelta(days=1))},
            "Total": {},
            "Groups": [
                {
                    "Keys": [f"{tag}${v}" if tag else v],
                    "Metrics": {metric: {"Amount": f"{amount:.10f}", "Unit": "USD"}},
                }
                for v, amount in sorted(per_day[d].items())
            ],
            "Estimated": False,
        }
        for d in days
    ]
    size = -(-len(results) // pages)
    out = []
    for i in range(pages):
        page: dict[str, Any] = {"ResultsByTime": results[i * size : (i + 1) * size], "DimensionValueAttributes": []}
        if i < pages - 1:
            page["NextPageToken"] = f"page-{i + 2}"
        out.append(page)
    return out


@pytest.fixture
def queue_ce(moto_endpoint: str) -> Callable[[list[dict[str, Any]]], None]:
    """Queue Cost Explorer answers, in the order the requests will come (moto's own API)."""

    def put(results: list[dict[str, Any]]) -> None:
        r = httpx.post(
            f"{moto_endpoint}/moto-api/static/ce/cost-and-usage-results",
            content=json.dumps({"results": results}),
            timeout=30,
        )
        r.raise_for_status()

    return put


@pytest.fixture(autouse=True)
def _focus_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENNAKER_FOCUS_CACHE", str(tmp_path / "focus-cache"))


@dataclass
class Setup:
    dir: Path
    endpoint: str

    @property
    def db(self) -> str:
        return str(self.dir / "costs.db")

    def config(self, costs: str = "") -> Path:
        path = self.dir / "gennaker.yml"
        path.write_text(
            "accounts:\n  payer:\n    regions: [us-east-1]\n"
            f"    endpoint_url: {self.endpoint}\n" + (f"costs:\n{costs}" if costs else "")
        )
        return path


@pytest.fixture
def setup(moto_endpoint: str, tmp_path: Path) -> Setup:
    return Setup(tmp_path, moto_endpoint)


@pytest.fixture
def cli(setup: Setup, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """The whole ``gennaker`` command line in this process: exit code, stdout, stderr."""

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        config = setup.dir / "gennaker.yml"
        if not config.exists():
            setup.config()
        rc = run(["--db", setup.db, "--config", str(config), *args])
        out, err = capsys.readouterr()
        return rc, out, err

    return invoke


def write_focus(path: Path, lines: list[Line]) -> None:
    """A FOCUS 1.0 parquet file of these lines (the columns AWS Data Exports writes that we read)."""
    import duckdb

    con = duckdb.connect()
    con.execute(
        "CREATE TABLE focus (ChargePeriodStart TIMESTAMP, ChargePeriodEnd TIMESTAMP, BilledCost DOUBLE, "
        "EffectiveCost DOUBLE, ListCost DOUBLE, SubAccountId VARCHAR, ServiceName VARCHAR, RegionId VARCHAR, "
        "ChargeCategory VARCHAR, Tags MAP(VARCHAR, VARCHAR))"
    )
    rows = []
    for ln in lines:
        tags = {k: v for k, v in ((APP_KEY, ln.app), (ENV_KEY, ln.env), ("team", ln.team)) if v}
        rows.append(
            (
                str(ln.day),
                str(ln.day + timedelta(days=1)),
                ln.cost,
                ln.amortized,
                ln.cost,
                ln.account,
                ln.service,
                ln.region,
                "Usage",
                json.dumps(tags),
            )
        )
    columns = "a VARCHAR, b VARCHAR, c DOUBLE, d DOUBLE, e DOUBLE, f VARCHAR, g VARCHAR, h VARCHAR, i VARCHAR, j TEXT"
    con.execute(f"CREATE TEMP TABLE raw ({columns})")
    con.executemany("INSERT INTO raw VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    con.execute(
        "INSERT INTO focus SELECT CAST(a AS TIMESTAMP), CAST(b AS TIMESTAMP), c, d, e, f, g, h, i, "
        "CAST(CAST(j AS JSON) AS MAP(VARCHAR, VARCHAR)) FROM raw"
    )
    con.execute("COPY focus TO ? (FORMAT parquet)", [str(path)])
    con.close()


def rows_by_key(report: dict[str, Any]) -> dict[str, float]:
    return {r["key"]: r["total"] for r in report["rows"]}
