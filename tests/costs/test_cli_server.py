"""``gennaker costs --server URL``: the report is read from a real running server's ``GET /api/costs``
(uvicorn on a free port, access control on, tokens) and printed exactly as a local run prints it;
the server's scope applies, and refusals are one line with an exit code."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from gennaker.runtime import build_runtime
from gennaker.spec.config import config_from_text
from gennaker.web import store
from gennaker.web.security import hash_password
from tests.conftest import free_port
from tests.costs.conftest import Setup, ce_result, expected, rows_by_key
from tests.costs.test_costs import focus_bucket  # noqa: F401 (fixture)
from tests.web.conftest import serve

USERS = {"gina": ["viewer"], "sam": ["shop:viewer"]}
Cli = Callable[..., tuple[int, str, str]]
Queue = Callable[[list[dict[str, Any]]], None]


NUMBER = re.compile(r"[+-]?[0-9][0-9,]*\.[0-9]+")


def same_table(a: str, b: str) -> bool:
    """The same table, but for the cent: the API rounds amounts to 6 decimals, and this bill's
    4-decimal costs add up to exact half cents, which the local float sum may print either way."""
    if NUMBER.sub("#", a) != NUMBER.sub("#", b):
        return False
    pairs = zip(NUMBER.findall(a), NUMBER.findall(b), strict=True)
    return all(abs(float(x.replace(",", "")) - float(y.replace(",", ""))) <= 0.0100001 for x, y in pairs)


@dataclass
class Running:
    url: str
    tokens: dict[str, str]


def running(setup: Setup, costs: str) -> Iterator[Running]:
    text = f"accounts:\n  payer:\n    regions: [us-east-1]\n    endpoint_url: {setup.endpoint}\n"
    text += "auth:\n  secret_key: " + "k" * 40 + "\n  secure_cookies: false\n  users:\n"
    for user, roles in USERS.items():
        text += f"    {user}: {{password_hash: '{hash_password('tokens only')}', roles: {roles}}}\n"
    text += f"costs:\n{costs}" if costs else ""
    rt = build_runtime(str(setup.dir / "server.db"), config=config_from_text(text))
    tokens = {u: store.create_token(rt.db, "t", u, roles, "test")["token"] for u, roles in USERS.items()}
    try:
        for url in serve(rt):
            yield Running(url, tokens)
    finally:
        rt.db.dispose()


@pytest.fixture
def focus_server(setup: Setup, focus_bucket: str) -> Iterator[Running]:  # noqa: F811
    setup.config(f"  source: focus\n  uri: {focus_bucket}\n")  # the local runs read the same files
    yield from running(setup, f"  source: focus\n  uri: {focus_bucket}\n")


@pytest.fixture
def ce_server(setup: Setup) -> Iterator[Running]:
    yield from running(setup, "")


def test_table_json_and_csv_are_the_local_ones(cli: Cli, focus_server: Running) -> None:
    remote = ("--server", focus_server.url, "--token", focus_server.tokens["gina"])
    cli("costs", "--format", "json")  # both sides' FOCUS downloads done: the notes then agree
    for args in (
        ("--by", "application", "--period", "2026-10"),
        ("--by", "tag:team", "--period", "2026-10", "--format", "csv"),
        ("--by", "account", "--period", "2026-10", "--granularity", "monthly", "--format", "json"),
        ("--by", "service", "--period", "2026-10", "--metric", "amortized"),
    ):
        rc_here, here, err_here = cli("costs", *args)
        rc_there, there, err_there = cli("costs", *args, *remote)  # global options after the command
        assert (rc_here, rc_there) == (0, 0), (err_here, err_there)
        if "--format" in args:
            assert there == here, args  # JSON and CSV: the same text
        else:
            assert same_table(there, here), (args, there, here)
    _, out, _ = cli("costs", "--by", "application", "--period", "2026-10", *remote)
    assert "(untagged)" in out and "top movers: shop +" in out and "2 FOCUS file(s), 0 downloaded now" in out


def test_the_servers_scope_applies(cli: Cli, focus_server: Running) -> None:
    rc, out, err = cli(
        "--server", focus_server.url, "--token", focus_server.tokens["sam"], "costs", "--by", "application",
        "--period", "2026-10", "--format", "json",
    )  # fmt: skip
    assert rc == 0, err
    report = json.loads(out)
    assert rows_by_key(report) == pytest.approx({"shop": expected("application")["shop"]})


def test_cost_explorer_through_the_server_counts_its_requests_and_cache(
    cli: Cli, ce_server: Running, queue_ce: Queue
) -> None:
    queue_ce(ce_result("environment"))
    remote = ("--server", ce_server.url, "--token", ce_server.tokens["gina"])
    rc, out, err = cli("costs", "--by", "environment", "--period", "2026-10", *remote)
    assert rc == 0, err
    assert "Cost Explorer requests: 1 (made now)" in out
    assert f"{sum(expected('environment').values()):,.2f}" in out
    rc, out, err = cli("costs", "--by", "environment", "--period", "2026-10", *remote)
    assert rc == 0 and "Cost Explorer requests: 0 (from the cache" in out  # the server's cache


def test_refusals_are_one_line(cli: Cli, ce_server: Running) -> None:
    rc, out, err = cli("costs", "--server", ce_server.url, "--token", "not-a-real-token")
    assert (rc, out) == (6, "") and len(err.strip().splitlines()) == 1 and "server said (401)" in err
    rc, _, err = cli("costs", "--by", "nothing", "--server", ce_server.url, "--token", ce_server.tokens["gina"])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "cannot group by 'nothing'" in err
    rc, _, err = cli("costs", "--budgets", "--server", ce_server.url, "--token", ce_server.tokens["gina"])
    assert rc == 2 and "cannot be combined with --server" in err
    rc, _, err = cli("costs", "--server", f"http://127.0.0.1:{free_port()}")
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "cannot reach the Gennaker server" in err


def test_an_executions_cost_through_the_server(cli: Cli, ce_server: Running) -> None:
    rc, out, err = cli(
        "costs", "--execution", "no-such-run", "--server", ce_server.url, "--token", ce_server.tokens["gina"]
    )
    assert rc == 4 and out == "" and "not found" in err
