"""The INCIDENTS pages in Chromium, and the rollback from an incident over HTTP, on a real server
(uvicorn, in-process worker, access control on) over the shop world in simulated AWS, where a
deploy made shop-web-v002 before the alarm.

Incidents are opened the way alarms open them: through the intake (``record_transition``)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.aws.session import AwsSessions
from gennaker.engine import operations as ops
from gennaker.ops.incidents import store as incidents
from gennaker.ops.incidents.intake import AlarmTransition, record_transition
from gennaker.ops.incidents.settings import incident_settings
from gennaker.ops.incidents.tables import incident_events
from gennaker.runtime import build_runtime
from gennaker.sandbox.seed import seed_shop
from gennaker.sandbox.server import config_text
from gennaker.spec.config import config_from_text
from gennaker.store.tables import executions
from gennaker.web import store as web_store
from gennaker.web.tables import audit_log
from tests.cloud.conftest import ACCOUNT, REGION, deploy_raw, serving_groups
from tests.core.conftest import FAST, finished
from tests.web.conftest import USERS, Server, auth_config, browser, login, serve

__all__ = ["browser", "login"]


@pytest.fixture(scope="module")
def world_server(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Any]]:
    """The shop world with shop-web-v002 deployed (by a pipeline, through the engine) and serving."""
    httpx.post(f"{moto_server}/moto-api/reset", timeout=30).raise_for_status()
    config = config_from_text(config_text(moto_server)).model_copy(update={"auth": auth_config().auth})
    rt = build_runtime(str(tmp_path_factory.mktemp("incidents") / "g.db"), config=config, settings=FAST)
    sessions = AwsSessions(config, max_attempts=3)
    world = seed_shop(sessions, ACCOUNT, REGION)
    tokens = {u: web_store.create_token(rt.db, f"{u}-test", u, r, "fixture")["token"] for u, r in USERS.items()}
    for url in serve(rt):
        stage = {
            "id": "deploy-prod",
            "name": "Deploy To Prod",
            "type": "deploy",
            **deploy_raw(world, poll_interval=0.2),
        }
        pipeline = rt.pipeline_from_text(json.dumps({"name": "release", "application": "shop", "stages": [stage]}))
        deployed = finished(rt, ops.start_execution(rt.db, pipeline, {}, "dana"), timeout=90)
        assert deployed["status"] == "SUCCEEDED", deployed
        yield Server(url=url, runtime=rt, tokens=tokens), deployed
    rt.db.dispose()


@pytest.fixture(scope="module")
def server(world_server: tuple[Server, Any]) -> Server:
    return world_server[0]


def open_incident(server: Server, alarm: str, tags: dict[str, str] | None = None, **dimensions: str) -> str:
    """An alarm on shop's new server group going to ALARM, through the intake as the poller sends it."""
    transition = AlarmTransition(
        source="poll",
        account=ACCOUNT,
        region=REGION,
        alarm=alarm,
        state="ALARM",
        previous="OK",
        reason="Threshold Crossed: 5xx above 5 %",
        at=time.time(),
        tags={"application": "shop"} if tags is None else tags,
        dimensions=dimensions or {"AutoScalingGroupName": "shop-web-v002"},
    )
    with server.runtime.db.begin() as conn:
        result = record_transition(conn, transition, incident_settings({}))
    assert result.outcome == "created", result
    assert result.incident_id is not None
    return result.incident_id


def incident(server: Server, incident_id: str) -> dict[str, Any]:
    with server.runtime.db.read() as conn:
        return incidents.get(conn, incident_id)


def open_total(server: Server) -> int:
    with server.runtime.db.read() as conn:
        return len(incidents.list_incidents(conn, status="open"))


def timeline(server: Server, incident_id: str) -> list[dict[str, Any]]:
    with server.runtime.db.read() as conn:
        return incidents.timeline(conn, incident_id)


def test_incidents_live_ack_by_an_operator_and_nothing_for_a_viewer(
    world_server: tuple[Server, Any], login: Any
) -> None:
    server, deployed = world_server
    olga = login("olga")  # shop:operator
    olga.goto(f"{server.url}/incidents")
    before = open_total(server)

    incident_id = open_incident(server, "shop-web-5xx-live")
    row = olga.locator(f"[data-testid=incident-row][data-incident='{incident_id}']")
    row.wait_for()  # pushed by the page's stream, no reload
    assert row.get_attribute("data-status") == "triggered"
    assert row.get_attribute("data-priority") == "P3"
    assert olga.locator("[data-testid=priority-group][data-priority=P3]").count() == 1
    assert row.locator("[data-testid=incident-owner]").text_content() == "-"
    olga.reload()
    olga.wait_for_selector(f"[data-testid=incident-count][data-open='{before + 1}']")  # the header, on every page

    vic = login("vic")  # shop:viewer
    vic.goto(f"{server.url}/applications/shop/clusters")
    vic.wait_for_selector(f"[data-testid=incident-count][data-open='{before + 1}']")
    vic.goto(f"{server.url}/incidents/{incident_id}")
    for button in ("ack", "resolve", "rollback", "note"):
        assert vic.locator(f"[data-testid={button}]").count() == 0, button
    # the diagnosis names the deploy that preceded the alarm, with a link to it
    deploy = vic.locator(f"[data-testid=diagnosis-deploy][data-execution='{deployed['id']}']")
    assert deploy.count() == 1
    assert deploy.locator("[data-testid=deploy-link]").get_attribute("href") == (
        f"/executions/{deployed['id']}/stages/deploy-prod"
    )
    assert deployed["id"] in vic.text_content("[data-testid=diagnosis-summary]")

    olga.goto(f"{server.url}/incidents/{incident_id}")
    olga.click("[data-testid=ack]")
    olga.wait_for_url(re.compile(f"/incidents/{incident_id}$"))
    assert olga.get_attribute("[data-testid=incident]", "data-status") == "acknowledged"
    # the viewer's open page follows without a reload
    vic.wait_for_selector("[data-testid=incident][data-status=acknowledged]")
    assert vic.text_content("[data-testid=incident-owner]") == "olga"
    vic.wait_for_selector("[data-testid=timeline-event][data-kind=acknowledged]")

    olga.fill("[data-testid=note-text]", "5xx from the new group only; rolling back")
    olga.click("[data-testid=note]")
    vic.wait_for_selector("[data-testid=timeline-event][data-kind=note]:has-text('rolling back')")

    # a viewer's post, with its own valid CSRF token, is refused and changes nothing
    token = vic.get_attribute("form[action='/logout'] input[name=csrf_token]", "value")
    refused = vic.request.post(f"{server.url}/incidents/{incident_id}/resolve", form={"csrf_token": token or ""})
    assert refused.status == 403
    with server.api("vic") as c:
        assert c.post(f"/api/incidents/{incident_id}/rollback").status_code == 403
    assert incident(server, incident_id)["status"] == "acknowledged"
    assert not [e for e in olga.csp_errors + vic.csp_errors if "Content Security Policy" in e]


def test_rollback_from_an_incident_serves_the_previous_group_and_is_on_the_timeline(
    world_server: tuple[Server, Any], login: Any
) -> None:
    server, _ = world_server
    provider = AwsProvider(AwsSessions(server.runtime.config, max_attempts=3), ACCOUNT, REGION)
    assert serving_groups(provider) == ["shop-web-v002"]
    incident_id = open_incident(server, "shop-web-5xx-rollback")
    with server.api("alice") as c:
        assert c.post("/api/incidents/nope/rollback").status_code == 404

    olga = login("olga")
    olga.goto(f"{server.url}/incidents/{incident_id}")
    olga.once("dialog", lambda d: d.accept())  # the confirmation
    olga.click("[data-testid=rollback]")
    olga.wait_for_url(re.compile(f"/incidents/{incident_id}$"))
    link = olga.locator("[data-testid=timeline-event][data-kind=action] [data-testid=action-task]")
    link.wait_for()
    task_id = (link.get_attribute("href") or "").rsplit("/", 1)[-1]

    assert finished(server.runtime, task_id, timeout=90)["status"] == "SUCCEEDED"
    # a second rollback (a double click, a retry) does not roll the cluster back once more
    with server.api("olga") as c:
        again = c.post(f"/api/incidents/{incident_id}/rollback")
    assert again.status_code == 409 and task_id in again.json()["message"], again.text
    assert serving_groups(provider) == ["shop-web-v001"]

    actions = [e for e in timeline(server, incident_id) if e["kind"] == "action"]
    assert [e["details"]["action"] for e in actions] == ["rollback_requested", "rollback"]
    action = actions[1]
    assert action["actor"] == "olga" and action["details"]["task"] == task_id
    assert action["details"]["cluster"] == "shop-web"
    with server.runtime.db.read() as conn:
        rows = conn.execute(
            select(audit_log.c.actor, audit_log.c.status_code).where(
                audit_log.c.path == f"/incidents/{incident_id}/rollback", audit_log.c.action == "rollback"
            )
        ).all()
        task = conn.execute(select(executions.c.trigger).where(executions.c.id == task_id)).scalar_one()
    assert [(r.actor, r.status_code) for r in rows] == [("olga", 303)]
    assert task["user"] == "olga"
    # the task's status shows beside the action, live
    olga.wait_for_selector("[data-testid=timeline-event][data-kind=action] [data-testid=status]:text('SUCCEEDED')")


def test_an_incident_of_no_application_has_nothing_to_roll_back(world_server: tuple[Server, Any]) -> None:
    server, _ = world_server
    incident_id = open_incident(server, "nat-gateway-errors", tags={}, NatGatewayId="nat-0123")
    with server.api("alice") as c:
        refused = c.post(f"/api/incidents/{incident_id}/rollback")
        assert refused.status_code == 409 and "no application" in refused.json()["message"], refused.text
        assert c.post(f"/api/incidents/{incident_id}/rollback", json={"cluster": "x" * 201}).status_code == 422
    with server.api("olga") as c:  # an operator of shop alone does not even see it
        assert c.post(f"/api/incidents/{incident_id}/rollback").status_code == 404
    assert [e["kind"] for e in timeline(server, incident_id)].count("action") == 0


def test_two_rollback_requests_at_once_start_one_task(world_server: tuple[Server, Any]) -> None:
    server, _ = world_server
    incident_id = open_incident(server, "shop-web-5xx-twice")
    barrier = threading.Barrier(2)

    def request() -> httpx.Response:
        with server.api("rita") as c:
            barrier.wait()
            return c.post(f"/api/incidents/{incident_id}/rollback")

    with ThreadPoolExecutor(2) as pool:
        answers = sorted(pool.map(lambda _: request(), range(2)), key=lambda r: r.status_code)
    assert [r.status_code for r in answers] == [202, 409], [r.text for r in answers]
    task_id = answers[0].json()["task"]
    started = [e for e in timeline(server, incident_id) if (e["details"] or {}).get("task")]
    assert [e["details"]["task"] for e in started] == [task_id]
    # a rollback that failed (nothing older to serve) may be asked again; one that succeeded may not
    status = finished(server.runtime, task_id, timeout=90)["status"]
    with server.api("rita") as c:
        retry = c.post(f"/api/incidents/{incident_id}/rollback")
    assert retry.status_code == (409 if status == "SUCCEEDED" else 202), (status, retry.text)
    if retry.status_code == 202:
        finished(server.runtime, retry.json()["task"], timeout=90)


def test_a_rollback_being_started_holds_back_a_second_request_until_it_is_lost(
    world_server: tuple[Server, Any],
) -> None:
    """The race of a double click, made deterministic: the first request's reservation is on the
    timeline and its task not started yet when the second comes (it was let through before: it saw
    no task and counted the reservation as an attempt). A reservation whose server died before
    starting anything stops holding back new requests after RESERVATION_LOST_AFTER."""
    from gennaker.api.incident_actions import REQUESTED, RESERVATION_LOST_AFTER

    server, _ = world_server
    incident_id = open_incident(server, "shop-web-5xx-held")

    def reserve(at: float) -> None:
        with server.runtime.db.begin() as conn:
            assert incidents.add_event(
                conn, incident_id, "action", "requested", actor="rita", details={"action": REQUESTED}, at=at
            )

    reserve(time.time())
    with server.api("rita") as c:
        held = c.post(f"/api/incidents/{incident_id}/rollback")
    assert held.status_code == 409 and "at the same moment" in held.json()["message"], held.text
    with server.runtime.db.begin() as conn:  # now the reservation is one its server never got to act on
        conn.execute(
            update(incident_events)
            .where(incident_events.c.incident_id == incident_id)
            .values(at=time.time() - RESERVATION_LOST_AFTER - 1)
        )
    with server.api("rita") as c:
        started = c.post(f"/api/incidents/{incident_id}/rollback")
    assert started.status_code == 202, started.text
    finished(server.runtime, started.json()["task"], timeout=90)
