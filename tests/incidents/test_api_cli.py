"""The incidents API over HTTP on a live server, as users of different roles, and the CLI through it
(``--server``) and on a local database: reads scoped to the caller's applications (another
application's incident is a 404, in lists and by id, and for changes), changes need the operator role
(a viewer cannot ack), each change is on the timeline and in the audit log."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gennaker.cli import run
from gennaker.ops.incidents import incident_settings
from gennaker.ops.incidents.intake import AlarmTransition, record_transition
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import Config
from gennaker.web import store as web_store
from tests.web.conftest import USERS, auth_config, serve

INCIDENTS = {"rules": [{"name": "high", "match": {"criticality": ["high"]}, "priority": "P1"}]}


def _open(rt: Runtime, alarm: str, application: str, criticality: str = "high") -> str:
    t = AlarmTransition(
        source="condition",
        account=None,
        region=None,
        alarm=alarm,
        state="ALARM",
        previous="OK",
        reason="5xx rate 7 % > 2 %",
        at=time.time(),
        tags={"criticality": criticality},
        application=application,
    )
    with rt.db.begin() as conn:
        result = record_transition(conn, t, rt.incidents)
    assert result.outcome == "created" and result.incident_id
    return result.incident_id


class World:
    def __init__(self, url: str, rt: Runtime, tokens: dict[str, str], shop: str, other: str):
        self.url, self.rt, self.tokens, self.shop, self.other = url, rt, tokens, shop, other

    def api(self, user: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.tokens[user]}"}, timeout=30)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    db = tmp_path_factory.mktemp("incidents-api") / "g.db"
    config = Config(auth=auth_config().auth, incidents=INCIDENTS)
    rt = build_runtime(str(db), config=config)
    assert rt.incidents == incident_settings(INCIDENTS)
    tokens = {u: web_store.create_token(rt.db, f"{u}-t", u, roles, "fixture")["token"] for u, roles in USERS.items()}
    shop, other = _open(rt, "shop-5xx", "shop"), _open(rt, "other-5xx-q7z", "other")
    for url in serve(rt):
        yield World(url, rt, tokens, shop, other)
    rt.db.dispose()


def test_reads_are_scoped_to_the_callers_applications(world: World) -> None:
    with world.api("vic") as vic:  # shop:viewer
        listed = vic.get("/api/incidents").json()
        assert [i["id"] for i in listed] == [world.shop]
        assert "other-5xx-q7z" not in vic.get("/api/incidents", params={"status": "open"}).text
        assert vic.get(f"/api/incidents/{world.other}").status_code == 404
        shown = vic.get(f"/api/incidents/{world.shop}").json()
        assert shown["priority"] == "P1" and shown["alarm_states"][0]["alarm"] == "shop-5xx"
        assert shown["timeline"][0]["kind"] == "triggered"
        assert vic.get("/api/incidents", params={"status": "bogus"}).status_code == 422
    with world.api("alice") as alice:
        assert {i["id"] for i in alice.get("/api/incidents").json()} == {world.shop, world.other}


def test_a_viewer_cannot_change_an_incident(world: World) -> None:
    with world.api("vic") as vic:
        for action, body in (("ack", {}), ("note", {"text": "hi"}), ("priority", {"priority": "P2"})):
            r = vic.post(f"/api/incidents/{world.shop}/{action}", json=body)
            assert r.status_code == 403, (action, r.text)
            assert "operator" in r.json()["message"]
        assert vic.get(f"/api/incidents/{world.shop}").json()["status"] == "triggered"


def test_an_operator_acts_on_their_application_only(world: World) -> None:
    with world.api("olga") as olga:  # shop:operator
        r = olga.post(f"/api/incidents/{world.other}/ack")
        assert r.status_code == 404, r.text  # as for an id that does not exist
        assert olga.post("/api/incidents/nope/ack").status_code == 404
        r = olga.post(f"/api/incidents/{world.shop}/note", json={"text": "looking at the canary"})
        assert r.status_code == 200
        r = olga.post(f"/api/incidents/{world.shop}/priority", json={"priority": "P9"})
        assert r.status_code == 422
        r = olga.post(f"/api/incidents/{world.shop}/priority", json={"priority": "P2"})
        assert r.json()["priority"] == "P2"
        r = olga.post(f"/api/incidents/{world.shop}/assign", json={"assignee": "olga"})
        assert r.json()["assignee"] == "olga"
        r = olga.post(f"/api/incidents/{world.shop}/ack")
        assert r.status_code == 200 and r.json()["status"] == "acknowledged"
        timeline = r.json()["timeline"]
    kinds = [e["kind"] for e in timeline]
    assert {"note", "priority", "assigned", "acknowledged"} <= set(kinds)
    assert next(e for e in timeline if e["kind"] == "acknowledged")["actor"] == "olga"
    with world.api("alice") as alice:
        audit = alice.get("/api/audit", params={"application": "shop"}).json()
    entries = audit if isinstance(audit, list) else audit.get("entries", [])
    acks = [e for e in entries if e["action"] == "ack" and e["actor"] == "olga"]
    assert acks and acks[0]["status_code"] == 200 and acks[0]["application"] == "shop"
    refused = [e for e in entries if e["actor"] == "vic" and e["status_code"] == 403]
    assert refused, "the viewer's refused attempts are audited too"


@dataclass
class Ran:
    exit_code: int
    stdout: str
    output: str  # stdout and stderr


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> Ran:
    """The command line as ``gennaker`` runs it (its errors printed as one line, an exit code)."""
    capsys.readouterr()
    rc = run(list(args))
    out, err = capsys.readouterr()
    return Ran(rc, out, out + err)


def test_cli_through_the_api(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--server", world.url, "--token", world.tokens["olga"]]
    r = _cli(capsys, *base, "incidents", "list", "--json")
    assert r.exit_code == 0, r.output
    assert [i["id"] for i in json.loads(r.stdout)] == [world.shop]
    r = _cli(capsys, *base, "incidents", "resolve", world.shop, "--note", "rolled back", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["status"] == "resolved"
    r = _cli(capsys, *base, "incidents", "show", world.shop)
    assert r.exit_code == 0 and "rolled back" in r.stdout and "resolved" in r.stdout
    r = _cli(capsys, *base, "incidents", "ack", world.other)
    assert r.exit_code != 0 and "404" in r.output
    viewer = ["--server", world.url, "--token", world.tokens["vic"]]
    r = _cli(capsys, *viewer, "incidents", "note", world.shop, "sneaky")
    assert r.exit_code != 0 and "403" in r.output


def test_cli_on_a_local_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "local.db")
    rt = build_runtime(db, config=Config(incidents=INCIDENTS))
    incident = _open(rt, "shop-latency", "shop")
    rt.db.dispose()
    base = ["--db", db, "--user", "pat"]
    r = _cli(capsys, *base, "incidents", "list")
    assert r.exit_code == 0 and "shop-latency" in r.stdout and "P1" in r.stdout
    assert _cli(capsys, *base, "incidents", "priority", incident, "p3").exit_code == 0
    assert _cli(capsys, *base, "incidents", "note", incident, "checking").exit_code == 0
    r = _cli(capsys, *base, "incidents", "ack", incident, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["acknowledged_by"] == "pat"
    r = _cli(capsys, *base, "incidents", "priority", incident, "P0")
    assert r.exit_code != 0 and "unknown priority" in r.output
    r = _cli(capsys, *base, "incidents", "show", "missing-id")
    assert r.exit_code != 0 and "no incident" in r.output
    shown = json.loads(_cli(capsys, *base, "incidents", "show", incident, "--json").stdout)
    assert shown["priority"] == "P3"
    assert [e["kind"] for e in shown["timeline"]][-3:] == ["priority", "note", "acknowledged"]
