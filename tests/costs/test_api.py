"""``GET /api/costs`` over HTTP: the same answer as the CLI, scoped to the caller's applications
(FOCUS applies the filter in DuckDB; Cost Explorer is sent it), described in OpenAPI, and a refusal
as one line with a 4xx."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gennaker.api.app import create_app
from gennaker.runtime import build_runtime
from gennaker.spec.config import config_from_text
from gennaker.web import store
from gennaker.web.security import hash_password
from tests.costs.conftest import Setup, bill, ce_result, expected, rows_by_key
from tests.costs.test_costs import focus_bucket  # noqa: F401 (fixture)

USERS = {"gina": ["viewer"], "sam": ["shop:viewer"], "ada": ["admin"]}
PASSWORD_HASH = hash_password("not used: tokens only")
Queue = Callable[[list[dict[str, Any]]], None]


def client_for(setup: Setup, costs: str = "") -> Iterator[Callable[[list[str]], TestClient]]:
    text = f"accounts:\n  payer:\n    regions: [us-east-1]\n    endpoint_url: {setup.endpoint}\n"
    text += "auth:\n  secret_key: " + "k" * 40 + "\n  secure_cookies: false\n  users:\n"
    for user, roles in USERS.items():
        text += f"    {user}: {{password_hash: '{PASSWORD_HASH}', roles: {roles}}}\n"
    if costs:
        text += f"costs:\n{costs}"
    rt = build_runtime(setup.db, config=config_from_text(text))
    app = create_app(rt)
    clients: list[TestClient] = []

    def as_roles(roles: list[str]) -> TestClient:
        user = next(u for u, r in USERS.items() if r == roles)
        token = store.create_token(rt.db, "t", user, roles, "test")["token"]
        c = TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {token}"})
        clients.append(c)
        return c

    yield as_roles
    for c in clients:
        c.close()
    rt.db.dispose()


@pytest.fixture
def api(setup: Setup) -> Iterator[Callable[[list[str]], TestClient]]:
    yield from client_for(setup)


@pytest.fixture
def focus_api(setup: Setup, focus_bucket: str) -> Iterator[Callable[[list[str]], TestClient]]:  # noqa: F811
    yield from client_for(setup, f"  source: focus\n  uri: {focus_bucket}\n")


def test_a_global_viewer_reads_every_application(api: Callable[[list[str]], TestClient], queue_ce: Queue) -> None:
    queue_ce(ce_result("application"))
    r = api(["viewer"]).get("/api/costs", params={"by": "application", "period": "2026-10"})
    assert r.status_code == 200, r.text
    assert rows_by_key(r.json()) == pytest.approx(expected("application"))
    assert r.json()["requests"] == 1


def test_an_application_viewer_sees_only_its_applications(focus_api: Callable[[list[str]], TestClient]) -> None:
    shop = focus_api(["shop:viewer"])
    by_app = shop.get("/api/costs", params={"by": "application", "period": "2026-10"}).json()
    assert rows_by_key(by_app) == pytest.approx({"shop": expected("application")["shop"]})
    assert by_app["untagged"] == 0  # no untagged row: untagged spend belongs to no application
    by_service = shop.get("/api/costs", params={"by": "service", "period": "2026-10"}).json()
    want: dict[str, float] = {}
    for line in bill():
        if line.day.month == 10 and line.app == "shop":
            want[line.service] = want.get(line.service, 0.0) + line.cost
    assert rows_by_key(by_service) == pytest.approx(want)  # the split of shop's spend, not the account's
    everyone = focus_api(["admin"]).get("/api/costs", params={"by": "service", "period": "2026-10"}).json()
    assert everyone["total"] > by_service["total"] * 2


def test_cost_explorer_is_sent_the_callers_applications(
    api: Callable[[list[str]], TestClient], queue_ce: Queue
) -> None:
    # moto answers by request body: the scoped request differs from the global one only by its
    # Filter, so it takes the second queued answer (shop's alone); without a filter it would get the first.
    shop_only = ce_result("application")
    for page in shop_only:
        for result in page["ResultsByTime"]:
            result["Groups"] = [g for g in result["Groups"] if g["Keys"] == ["gennaker:application$shop"]]
    queue_ce([*ce_result("application"), *shop_only])
    everyone = api(["viewer"]).get("/api/costs", params={"by": "application", "period": "2026-10"}).json()
    assert set(rows_by_key(everyone)) == {"shop", "cart", ""}
    scoped = api(["shop:viewer"]).get("/api/costs", params={"by": "application", "period": "2026-10"}).json()
    assert set(rows_by_key(scoped)) == {"shop"} and scoped["requests"] == 1


def test_refusals_are_one_line_4xx(api: Callable[[list[str]], TestClient]) -> None:
    c = api(["viewer"])
    r = c.get("/api/costs", params={"by": "colour"})
    assert r.status_code == 422 and "cannot group by 'colour'" in r.text
    r = c.get("/api/costs", params={"period": "x" * 100})
    assert r.status_code == 422
    r = c.get("/api/costs", params={"granularity": "hourly"})
    assert r.status_code == 422


def test_openapi_describes_costs(api: Callable[[list[str]], TestClient]) -> None:
    spec = api(["viewer"]).get("/openapi.json").json()
    op = spec["paths"]["/api/costs"]["get"]
    assert {p["name"] for p in op["parameters"]} >= {"by", "period", "granularity", "metric", "refresh"}
    assert "CostReportOut" in str(op["responses"]["200"])
