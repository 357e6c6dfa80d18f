"""The cloud API router, the plan and sandbox commands, and the sandbox itself."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from types import SimpleNamespace

import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gennaker.api.app import create_app
from gennaker.cli.cloud import register
from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.aws.session import AwsSessions
from gennaker.runtime import build_runtime
from gennaker.sandbox import start_sandbox
from gennaker.sandbox.seed import ShopWorld
from gennaker.sandbox.server import config_text
from gennaker.spec.config import Config, config_from_text
from gennaker.stages.deploy import Deploy
from tests.cloud.conftest import ACCOUNT, REGION, deploy_raw, run_stage, serving_groups
from tests.conftest import admin_client


def _client(config: Config, sessions: AwsSessions, tmp_path: Path) -> TestClient:
    """The real application (API, engine worker, the local admin's token) on the test's simulated AWS."""
    runtime = build_runtime(f"sqlite:///{tmp_path / 'api.db'}", config=config)
    runtime.services._aws = sessions
    app = create_app(runtime, with_worker=True)
    app.state.aws = sessions
    return admin_client(app)


def test_api_views_and_actions(
    world: ShopWorld,
    config: Config,
    sessions: AwsSessions,
    provider: AwsProvider,
    services: SimpleNamespace,
    tmp_path: Path,
) -> None:
    with _client(config, sessions, tmp_path) as api:
        _views_and_actions(api, world, provider, services)


def _views_and_actions(api: TestClient, world: ShopWorld, provider: AwsProvider, services: SimpleNamespace) -> None:
    clusters = api.get("/api/applications/shop/clusters").json()
    assert [(c["cluster"], c["region"]) for c in clusters] == [("shop-web", REGION)]
    sg = clusters[0]["server_groups"][0]
    assert (sg["name"], sg["version"], sg["enabled"], sg["healthy"], sg["instances"]) == (
        "shop-web-v001",
        1,
        True,
        2,
        2,
    )
    assert sg["image_id"] == world.release_image_id and sg["capacity"] == {"min": 2, "max": 4, "desired": 2}

    lbs = api.get("/api/applications/shop/load_balancers").json()
    assert [(lb["name"], lb["server_groups"]) for lb in lbs] == [("shop", ["shop-web-v001"])]
    sgs = {g["name"]: g["used_by"] for g in api.get("/api/applications/shop/security_groups").json()}
    assert sgs["shop-web"] == ["shop-web-v001"] and sgs["shop-lb"] == ["load balancer shop"]

    assert run_stage(Deploy(), deploy_raw(world), services).status == "SUCCEEDED"
    where = {"account": ACCOUNT, "region": REGION}
    r = api.post("/api/applications/shop/clusters/shop-web/rollback", json=where, params={"wait": "true"})
    assert r.status_code == 200 and r.json()["server_group"] == "shop-web-v001", r.json()
    task = api.get(f"/api/executions/{r.json()['task']}").json()
    assert (task["pipeline"], task["trigger"]["type"], task["status"]) == ("task:rollback_cluster", "task", "SUCCEEDED")
    assert serving_groups(provider) == ["shop-web-v001"]

    r = api.post(
        "/api/applications/shop/server_groups/shop-web-v002/resize",
        json={**where, "capacity": {"min": 0, "max": 4, "desired": 0}},
        params={"wait": "true"},
    )
    assert r.status_code == 200, r.json()
    assert provider.get_server_group("shop-web-v002").capacity.desired == 0  # type: ignore[union-attr]
    assert api.post("/api/applications/shop/server_groups/shop-web-v002/resize", json=where).status_code == 422
    r = api.post("/api/applications/shop/server_groups/shop-web-v002/destroy", json=where)
    assert r.status_code == 202  # without wait: the task runs on; follow it by its id
    tasks = api.get("/api/executions", params={"kind": "tasks"}).json()
    assert r.json()["task"] in [t["id"] for t in tasks]
    assert all(t["pipeline"].startswith("task:") for t in tasks)
    assert all(not p["name"].startswith("task:") for p in api.get("/api/pipelines").json())
    for _ in range(100):
        if api.get(f"/api/executions/{r.json()['task']}").json()["status"] == "SUCCEEDED":
            break
        time.sleep(0.1)
    assert provider.get_server_group("shop-web-v002") is None
    assert api.post("/api/applications/shop/server_groups/shop-web-v002/enable", json=where).status_code == 404
    assert api.post("/api/applications/other/server_groups/shop-web-v001/disable", json=where).status_code == 409
    r = api.post("/api/applications/shop/server_groups/shop-web-v001/disable", json={**where, "region": "mars-1"})
    assert r.status_code == 400 and "mars-1" in r.json()["message"]
    r = api.post("/api/applications/shop/server_groups/shop-web-v001/disable", json=where, params={"wait": "true"})
    assert r.status_code == 200, r.json()
    assert serving_groups(provider) == []


def test_plan_command(world: ShopWorld, moto_endpoint: str, tmp_path: Path) -> None:
    cfg = tmp_path / "gennaker.yml"
    cfg.write_text(config_text(moto_endpoint))
    pipeline = tmp_path / "release.yml"
    pipeline.write_text(f"""
name: release
application: shop
parameters: [{{name: image}}]
stages:
  - id: deploy
    type: deploy
    account: {ACCOUNT}
    region: {REGION}
    stack: web
    image: "${{parameters.image}}"
    instance_type: t3.small
    vpc: shop
    subnet_tag: tier=app
    security_groups: [shop-web]
    target_groups: [shop-web]
    capacity: {{min: 2, max: 4, desired: 2}}
    strategy: highlander
""")
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(
        app, ["plan", str(pipeline), "--param", f"image={world.release_image_id}"], env={"GENNAKER_CONFIG": str(cfg)}
    )
    assert result.exit_code == 0, result.output
    assert "+ create shop-web-v002" in result.output
    assert "~ disable shop-web-v001" in result.output and "- destroy shop-web-v001" in result.output


def test_sandbox_serves_shop(moto_endpoint: str) -> None:
    # moto keeps its state per process, shared by every server in it: moto_endpoint gives a clean one.
    box = start_sandbox()
    try:
        config = config_from_text(box.config_text)
        assert config.accounts["sandbox"].endpoint_url == box.endpoint
        assert box.endpoint.startswith("http://127.0.0.1:")
        provider = AwsProvider(AwsSessions(config), "sandbox", "us-east-1")
        assert serving_groups(provider) == ["shop-web-v001"]
        subnets = provider.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [box.world.vpc_id]}])["Subnets"]
        assert len({s["AvailabilityZone"] for s in subnets}) == 3
        lb = provider.elb.describe_load_balancers(Names=["shop"])["LoadBalancers"][0]
        assert lb["Scheme"] == "internet-facing"
        listeners = provider.elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
        assert listeners[0]["DefaultActions"][0]["TargetGroupArn"] == box.world.target_group_arn
        assert box.audit_seeded == (importlib.util.find_spec("gennaker.ops.sandbox_seed") is not None)
    finally:
        box.stop()
