"""``gennaker costs`` against simulated Cost Explorer (answers queued through moto's API) and FOCUS
parquet in simulated S3: every breakdown, the untagged row, the period comparison, the cache, the
pages, and access denied as one line."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.costs import CostQuery, get_costs
from gennaker.spec.config import load_config
from gennaker.store.db import open_database
from tests.conftest import free_port
from tests.costs.conftest import Setup, bill, ce_result, expected, rows_by_key, write_focus

Cli = Callable[..., tuple[int, str, str]]
Queue = Callable[[list[dict[str, Any]]], None]
GROUPINGS = ("account", "service", "region", "application", "environment", "tag:team")


def error_lines(err: str) -> list[str]:
    """What the command wrote to stderr, without the in-process simulator's request log."""
    return [line for line in err.strip().splitlines() if "werkzeug" not in line]


def costs_json(cli: Cli, *args: str) -> dict[str, Any]:
    rc, out, err = cli("costs", "--period", "2026-10", "--format", "json", *args)
    assert rc == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


@pytest.mark.parametrize("group_by", GROUPINGS)
def test_every_breakdown_from_cost_explorer(cli: Cli, queue_ce: Queue, group_by: str) -> None:
    queue_ce(ce_result(group_by))
    report = costs_json(cli, "--by", group_by)
    assert report["source"] == "cost_explorer"
    assert report["requests"] == 1 and report["cached"] is False
    want = expected(group_by)
    assert rows_by_key(report) == pytest.approx(want)
    assert report["total"] == pytest.approx(sum(want.values()))
    assert report["previous_total"] == pytest.approx(sum(expected(group_by, month=9).values()))
    assert [r["total"] for r in report["rows"]] == sorted((r["total"] for r in report["rows"]), reverse=True)
    assert all(len(r["series"]) == 31 for r in report["rows"])  # one value per day of October


def test_untagged_spend_is_its_own_row_and_share(cli: Cli, queue_ce: Queue) -> None:
    queue_ce(ce_result("application"))
    report = costs_json(cli, "--by", "application")
    untagged = next(r for r in report["rows"] if r["untagged"])
    assert untagged["label"] == "(untagged)" and untagged["key"] == ""
    assert untagged["total"] == pytest.approx(expected("application")[""])
    assert report["untagged"] == pytest.approx(untagged["total"])
    assert report["untagged_share"] == pytest.approx(untagged["total"] / report["total"])
    assert 0.1 < report["untagged_share"] < 0.3


def test_dimension_groupings_have_no_untagged_share(cli: Cli, queue_ce: Queue) -> None:
    queue_ce(ce_result("service"))
    report = costs_json(cli, "--by", "service")
    assert report["untagged"] is None and report["untagged_share"] is None
    assert not any(r["untagged"] for r in report["rows"])


def test_period_comparison_and_movers(cli: Cli, queue_ce: Queue) -> None:
    queue_ce(ce_result("application"))
    report = costs_json(cli, "--by", "application")
    assert (report["start"], report["end"]) == ("2026-10-01", "2026-11-01")
    assert (report["previous_start"], report["previous_end"]) == ("2026-09-01", "2026-10-01")
    rows = {r["key"]: r for r in report["rows"]}
    sept, octo = expected("application", month=9), expected("application")
    for key in ("shop", "cart", ""):
        assert rows[key]["previous"] == pytest.approx(sept[key])
        assert rows[key]["change"] == pytest.approx(octo[key] - sept[key])
    assert rows["shop"]["change_ratio"] > 0.4 and rows[""]["change_ratio"] < -0.4  # shop grew, untagged shrank
    assert report["movers"][:2] == ["shop", ""]
    assert report["change"] == pytest.approx(report["total"] - report["previous_total"])


def test_monthly_granularity_sums_the_days(cli: Cli, queue_ce: Queue) -> None:
    queue_ce(ce_result("account"))
    report = costs_json(cli, "--by", "account", "--granularity", "monthly")
    assert report["buckets"] == ["2026-10-01"]
    assert all(r["series"] == [pytest.approx(r["total"])] for r in report["rows"])


def test_amortized_metric(cli: Cli, queue_ce: Queue) -> None:
    queue_ce(ce_result("region", amortized=True))
    report = costs_json(cli, "--by", "region", "--metric", "amortized")
    assert rows_by_key(report) == pytest.approx(expected("region", amortized=True))


def test_table_shows_totals_change_sparklines_untagged_and_movers(cli: Cli, queue_ce: Queue) -> None:
    queue_ce(ce_result("application"))
    rc, out, err = cli("costs", "--by", "application", "--period", "2026-10")
    assert rc == 0, err
    total = sum(expected("application").values())
    assert f"{total:,.2f}" in out
    assert "(untagged)" in out and "untagged: " in out and "% of the total" in out
    assert "top movers: shop +" in out
    assert any(ch in out for ch in "▁▂▃▄▅▆▇█")
    assert "Cost Explorer requests: 1 (made now)" in out


def test_csv_output(cli: Cli, queue_ce: Queue) -> None:
    queue_ce(ce_result("service"))
    rc, out, _ = cli("costs", "--by", "service", "--period", "2026-10", "--format", "csv")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith("service,cost,previous,change,2026-10-01,")
    assert len(lines) == 1 + 3


def test_pages_are_followed_and_counted(cli: Cli, queue_ce: Queue) -> None:
    queue_ce(ce_result("service", pages=3))
    report = costs_json(cli, "--by", "service")
    assert report["requests"] == 3
    assert rows_by_key(report) == pytest.approx(expected("service"))


def test_the_cache_spares_repeated_requests(setup: Setup, queue_ce: Queue) -> None:
    queue_ce(ce_result("application"))
    cfg = load_config(str(setup.config()))
    db = open_database(setup.db)
    query = CostQuery(group_by="application", period="2026-10")
    sessions = AwsSessions(cfg, max_attempts=1)
    first = get_costs(db, cfg, sessions, query)
    again = get_costs(db, cfg, sessions, query)
    other_view = get_costs(
        db, cfg, sessions, CostQuery(group_by="application", period="2026-10", granularity="monthly")
    )
    assert sessions.calls["ce.get_cost_and_usage"] == 2  # the second was answered by the database
    assert (first.requests, again.requests, again.cached) == (1, 0, True)
    assert again.total == pytest.approx(first.total)
    assert other_view.requests == 1  # another query is another key
    refreshed = get_costs(db, cfg, sessions, query, refresh=True)
    assert sessions.calls["ce.get_cost_and_usage"] == 3 and refreshed.requests == 1 and not refreshed.cached


def test_cache_through_the_command_line(cli: Cli, queue_ce: Queue) -> None:
    queue_ce(ce_result("environment"))
    assert costs_json(cli, "--by", "environment")["requests"] == 1
    again = costs_json(cli, "--by", "environment")
    assert (again["requests"], again["cached"]) == (0, True)
    rc, out, _ = cli("costs", "--by", "environment", "--period", "2026-10")
    assert rc == 0 and "Cost Explorer requests: 0 (from the cache" in out


@pytest.fixture
def focus_bucket(setup: Setup) -> str:
    """The bill as FOCUS parquet in simulated S3: one file per month, as Data Exports writes them."""
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=setup.endpoint)
    s3.create_bucket(Bucket="billing-exports")
    lines = bill()
    for month in (9, 10):
        path = setup.dir / f"focus-{month}.parquet"
        write_focus(path, [ln for ln in lines if ln.day.month == month])
        s3.upload_file(str(path), "billing-exports", f"focus/data/BILLING_PERIOD=2026-{month:02d}/part-0.parquet")
    s3.put_object(Bucket="billing-exports", Key="focus/metadata/manifest.json", Body=b"{}")  # not parquet: skipped
    return "s3://billing-exports/focus/"


@pytest.mark.parametrize("group_by", GROUPINGS)
def test_focus_gives_the_same_answer_as_cost_explorer(
    setup: Setup, cli: Cli, queue_ce: Queue, focus_bucket: str, group_by: str
) -> None:
    queue_ce(ce_result(group_by))
    setup.config()
    from_ce = costs_json(cli, "--by", group_by)
    setup.config(f"  source: focus\n  uri: {focus_bucket}\n  account: payer\n")
    from_focus = costs_json(cli, "--by", group_by)
    assert from_focus["source"] == "focus" and from_focus["requests"] == 0
    for field in ("total", "previous_total", "untagged", "untagged_share"):
        assert from_focus[field] == pytest.approx(from_ce[field]), field
    assert [r["key"] for r in from_focus["rows"]] == [r["key"] for r in from_ce["rows"]]
    for a, b in zip(from_focus["rows"], from_ce["rows"], strict=True):
        assert a["series"] == pytest.approx(b["series"]) and a["previous"] == pytest.approx(b["previous"])


def test_focus_files_are_downloaded_once(setup: Setup, cli: Cli, focus_bucket: str) -> None:
    setup.config(f"  source: focus\n  uri: {focus_bucket}\n")
    first = costs_json(cli, "--by", "account", "--metric", "amortized")
    assert rows_by_key(first) == pytest.approx(expected("account", amortized=True))
    assert first["notes"] == ["2 FOCUS file(s), 2 downloaded now"]
    assert costs_json(cli, "--by", "account")["notes"] == ["2 FOCUS file(s), 0 downloaded now"]


def test_focus_bucket_missing_is_one_line(setup: Setup, cli: Cli) -> None:
    setup.config("  source: focus\n  uri: s3://no-such-bucket/focus/\n")
    rc, out, err = cli("costs", "--period", "2026-10")
    assert rc != 0 and out == ""
    assert error_lines(err) == [
        "error: AWS list_objects_v2 failed in account payer, region us-east-1: NoSuchBucket: "
        "The specified bucket does not exist"
    ]


class _Denying(BaseHTTPRequestHandler):
    """An AWS endpoint that refuses every call as IAM does (JSON protocol, HTTP 400)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps(
            {
                "__type": "AccessDeniedException",
                "Message": "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: ce:GetCostAndUsage",
            }
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def denying_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Denying)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_access_denied_is_one_clear_line_and_an_exit_code(setup: Setup, cli: Cli, denying_endpoint: str) -> None:
    Path(setup.dir / "gennaker.yml").write_text(
        f"accounts:\n  payer:\n    regions: [us-east-1]\n    endpoint_url: {denying_endpoint}\n    max_attempts: 1\n"
    )
    rc, out, err = cli("costs", "--by", "service")
    assert rc == 6 and out == ""
    lines = error_lines(err)
    assert len(lines) == 1 and "Traceback" not in err
    assert "Cost Explorer (ce:GetCostAndUsage) denied in account payer: AccessDeniedException" in lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--by", "colour"), "cannot group by 'colour'"),
        (("--period", "2026-13"), "period '2026-13'"),
        (("--period", "400d"), "longer than 366 days"),
        (("--by", "tag:" + "k" * 200), "cannot group by"),
    ],
)
def test_bad_queries_are_refused_in_one_line(cli: Cli, args: tuple[str, ...], needle: str) -> None:
    rc, out, err = cli("costs", *args)
    assert rc == 2 and out == ""
    assert len(error_lines(err)) == 1 and needle in err


def test_30_day_window_against_the_30_before() -> None:
    from gennaker.ops.costs import parse_period

    p = parse_period("30d", date(2026, 10, 31))
    assert (p.previous_start, p.previous_end, p.start, p.end) == (
        date(2026, 9, 1),
        date(2026, 10, 1),
        date(2026, 10, 1),
        date(2026, 10, 31),
    )
    m = parse_period("month", date(2026, 3, 31))  # month to date against the same days of February
    assert (m.start, m.end, m.previous_start, m.previous_end) == (
        date(2026, 3, 1),
        date(2026, 3, 31),
        date(2026, 2, 1),
        date(2026, 3, 1),
    )
