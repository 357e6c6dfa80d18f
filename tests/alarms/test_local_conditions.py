"""Local alarm conditions under real traffic: on a ``kind: local`` account, an haproxy
``http_5xx_rate`` condition breaches when a version answering a fifth of its requests with 500
serves; the durable job feeds the transition to the incidents, which open one incident (once, however
many rounds run), and rolling back to the good version brings the condition to OK, which resolves it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gennaker.cloud.registry import provider_for
from gennaker.engine import operations as ops
from gennaker.errors import ConfigError
from gennaker.ops.alarms.conditions import EVALUATE
from gennaker.ops.incidents import store as incidents
from gennaker.ops.incidents.tables import alarm_transitions
from gennaker.runtime import Runtime, build_runtime
from gennaker.sample_app import SOURCE_DIR
from gennaker.sandbox.traffic import LoadGenerator
from gennaker.spec.config import config_from_text, load_config
from tests.conftest import free_port
from tests.core.conftest import FAST, finished, stage_status, wait_for

ACCOUNT = "laptop"

PIPELINE = """name: shop-deploy
application: shop
parameters: [{{name: version, required: true}}, {{name: error_rate, default: "0"}}]
stages:
  - {{id: bake, type: bake, account: {account}, source: "{source}", version: "${{trigger.params.version}}"}}
  - id: deploy
    type: deploy
    requires: [bake]
    account: {account}
    stack: web
    image: "${{stages.bake.outputs.image_id}}"
    command: "python3 app.py"
    env: {{APP_VERSION: "${{trigger.params.version}}", ERROR_RATE: "${{trigger.params.error_rate}}"}}
    capacity: {{min: 1, max: 1, desired: 1}}
    load_balancers: [shop-web]
    health_timeout: 30s
    poll_interval: 200ms
"""

ALARMS = """alarms:
  evaluate_every: 500ms
  conditions:
    - {name: shop-5xx, account: laptop, application: shop, source: haproxy, query: http_5xx_rate,
       op: ">", threshold: 0.02, for: 2s, step: 1s, tags: {criticality: high}}
incidents:
  quiet_period: 1s
"""


@dataclass
class Local:
    rt: Runtime
    provider: Any
    lb_port: int
    tmp: Path

    def deploy(self, version: str, error_rate: str = "0") -> dict[str, Any]:
        path = self.tmp / f"deploy-{version}.yml"
        path.write_text(PIPELINE.format(account=ACCOUNT, source=SOURCE_DIR))
        pipe = self.rt.load_pipeline(str(path))
        eid = ops.start_execution(
            self.rt.db, pipe, {"version": version, "error_rate": error_rate}, "tester", base_dir=str(self.tmp)
        )
        return finished(self.rt, eid, timeout=90)

    def load(self) -> LoadGenerator:
        return LoadGenerator("127.0.0.1", self.lb_port, threads=3, pause=0.01, max_seconds=90, max_requests=60_000)

    def incidents(self) -> list[dict[str, Any]]:
        with self.rt.db.read() as conn:
            return incidents.list_incidents(conn, application="shop")

    def transitions(self, state: str) -> list[Any]:
        with self.rt.db.read() as conn:
            t = alarm_transitions.c
            q = select(alarm_transitions).where(t.alarm == "shop-5xx", t.state == state)
            return list(conn.execute(q))


def local_config(lb_port: int) -> str:
    return (
        "accounts:\n"
        f"  {ACCOUNT}:\n"
        "    kind: local\n"
        "    state_dir: local\n"
        "    load_balancers:\n"
        f'      shop-web: {{listen: "127.0.0.1:{lb_port}", health: {{path: /up, interval: 250ms, timeout: 2s}}}}\n'
    )


@pytest.fixture
def local(haproxy_binary: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Local]:
    lb_port = free_port()
    config = tmp_path / "gennaker.yml"
    config.write_text(local_config(lb_port) + ALARMS)
    monkeypatch.setenv("GENNAKER_CONFIG", str(config))
    rt = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=load_config(str(config)), settings=FAST)
    provider = provider_for(rt.services, ACCOUNT)
    worker = rt.worker(threads=4)
    worker.start()
    try:
        local = Local(rt, provider, lb_port, tmp_path)
        seeded = local.deploy("1.0.0")
        assert seeded["status"] == "SUCCEEDED", stage_status(rt, seeded["id"])
        yield local
    finally:
        worker.stop()
        for group in provider.instances.groups():  # instances outlive Gennaker by design
            provider.instances.destroy(group.name, timeout=2)
        provider.haproxy.stop(timeout=2)
        rt.db.dispose()


def test_bad_version_opens_one_incident_and_rollback_resolves_it(local: Local) -> None:
    assert EVALUATE in local.rt.job_handlers
    with local.load() as load:
        load.wait_for(100)
        wait_for(lambda: bool(local.transitions("OK")), timeout=15)  # the good version: OK, no incident
        assert local.incidents() == []

        bad = local.deploy("2.0.0", error_rate="0.2")
        assert bad["status"] == "SUCCEEDED", stage_status(local.rt, bad["id"])
        wait_for(lambda: bool(local.incidents()), timeout=20)
        load.wait_for(load.count() + 200)  # more rounds while it stays breached: still one incident
        opened = local.incidents()
        assert len(opened) == 1 and opened[0]["status"] == "triggered", opened
        assert opened[0]["source"] == "condition" and opened[0]["application"] == "shop"
        fired = local.transitions("ALARM")  # (on a loaded machine it may flap already: merged, see below)
        assert fired and "shop-web-v002" in fired[0].reason and "> 0.02 in all" in fired[0].reason
        assert all(f.outcome == "merged" for f in fired[1:]), fired

        local.provider.enable_server_group("shop-web-v001")  # roll back by hand: the good group serves
        local.provider.disable_server_group("shop-web-v002")
        wait_for(lambda: local.incidents()[0]["status"] == "resolved", timeout=25)
    # One incident. On a loaded machine the condition may flap (ALARM, OK, ALARM) while the rollback
    # takes effect: a later ALARM is merged into the open incident, never a second incident.
    fired = local.transitions("ALARM")
    assert len(local.incidents()) == 1 and {f.incident_id for f in fired} == {opened[0]["id"]}, fired
    assert all(f.outcome == "merged" for f in fired[1:]), fired
    with local.rt.db.read() as conn:
        events = [e["text"] for e in incidents.timeline(conn, opened[0]["id"])]
    assert any("shop-5xx → OK via condition" in t for t in events), events


def test_conditions_only_for_local_accounts(tmp_path: Path) -> None:
    text = "accounts:\n  prod: {regions: [us-east-1]}\n" + ALARMS.replace("account: laptop", "account: prod")
    with pytest.raises(ConfigError, match="account 'prod' is kind aws; conditions are for kind: local"):
        build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=config_from_text(text))
