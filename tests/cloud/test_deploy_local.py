"""The same deploy, bake and plan code on an account of kind ``local``: real processes behind a real
HAProxy, reached only through the registry (no test builds the provider itself)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gennaker.cloud.plan import plan_pipeline, render
from gennaker.cloud.registry import provider_for
from gennaker.cloud.tasks import bind_schemas
from gennaker.sample_app import SOURCE_DIR
from gennaker.spec.config import config_from_text
from gennaker.spec.pipeline import pipeline_from_text
from gennaker.stages import default_registry, stage_schemas
from gennaker.stages.bake import Bake
from gennaker.stages.deploy import Deploy
from tests.cloud.conftest import run_stage
from tests.conftest import free_port


@pytest.fixture
def services(tmp_path: Path) -> Iterator[SimpleNamespace]:
    if shutil.which("haproxy") is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy): the local provider's load balancer")
    text = (
        "accounts:\n  laptop:\n    kind: local\n    state_dir: state\n    load_balancers:\n"
        f'      shop-web: {{listen: "127.0.0.1:{free_port()}", health: {{path: /up, interval: 200ms, timeout: 1s}}}}\n'
    )
    config = config_from_text(text, str(tmp_path / "gennaker.yml"))
    config.source = str(tmp_path / "gennaker.yml")
    services = SimpleNamespace(config=config)
    provider: Any = provider_for(services, "laptop")
    try:
        yield services
    finally:
        for group in provider.instances.groups():  # instances outlive Gennaker by design
            provider.instances.destroy(group.name, timeout=2)
        provider.haproxy.stop(timeout=2)


def _deploy(image: str, version: str, **extra: Any) -> dict[str, Any]:
    return {
        "account": "laptop",
        "stack": "web",
        "image": image,
        "command": "python3 app.py",
        "env": {"APP_VERSION": version, **extra.pop("env", {})},
        "capacity": {"min": 2, "max": 2, "desired": 2},
        "load_balancers": ["shop-web"],
        "poll_interval": 0.5,
        **extra,
    }


def test_bake_deploy_and_a_failed_deploy_on_a_local_account(services: SimpleNamespace) -> None:
    bake = run_stage(Bake(), {"account": "laptop", "source": str(SOURCE_DIR), "version": "1.0.0"}, services)
    assert bake.status == "SUCCEEDED", bake.message
    image = bake.outputs["image_id"]
    assert image.startswith("sha256-") and bake.outputs["image_ids"] == {"local": image}

    first = run_stage(Deploy(), _deploy(image, "1.0.0"), services)
    assert first.status == "SUCCEEDED", first.message
    assert (first.outputs["server_group"], first.outputs["region"]) == ("shop-web-v001", "local")

    bad_version = _deploy(image, "2.0.0", env={"UNHEALTHY": "1"}, health_timeout=3)
    bad = run_stage(Deploy(), bad_version, services, execution_id="ex-2")
    assert bad.status == "FAILED"
    assert bad.message is not None and "shop-web-v002: only 0 of 2 instances healthy" in bad.message
    assert "check L7STS" in bad.message and '"GET /up HTTP/1.0" 503' in bad.message  # HAProxy's view, the log
    provider = provider_for(services, "laptop")
    old, new = provider.get_server_group("shop-web-v001"), provider.get_server_group("shop-web-v002")
    assert old is not None and old.enabled and len(old.serving_instances()) == 2
    assert new is not None and not new.in_rotation


def test_plan_on_a_local_account(services: SimpleNamespace, tmp_path: Path) -> None:
    image = run_stage(Bake(), {"account": "laptop", "source": str(SOURCE_DIR), "version": "1.0.0"}, services)
    assert run_stage(Deploy(), _deploy(image.outputs["image_id"], "1.0.0"), services).status == "SUCCEEDED"
    registry = default_registry()
    document = (
        "name: p\napplication: shop\nstages:\n"
        "  - {id: deploy, type: deploy, account: laptop, stack: web, image: shop, command: python3 app.py,\n"
        "     capacity: {min: 2, max: 2, desired: 2}, load_balancers: [shop-web], strategy: highlander}\n"
    )
    pipeline = pipeline_from_text(document, bind_schemas(stage_schemas(registry), services.config), "p.yml")
    plans = plan_pipeline(pipeline, registry, services)
    assert [p.error for p in plans] == [None]
    assert render(plans).splitlines() == [
        "deploy (deploy) in laptop/local, cluster shop-web",
        "  + create shop-web-v002 (min 2 / desired 2 / max 2) (image shop)",
        "    wait until 2 instances of shop-web-v002 are healthy",
        "  ~ disable shop-web-v001 (shop-web-v002 replaces it)",
        "  - destroy shop-web-v001 (highlander keeps only the new group)",
    ]


def test_api_views_and_operator_tasks_on_a_local_account(services: SimpleNamespace, tmp_path: Path) -> None:
    from gennaker.api.app import create_app
    from gennaker.runtime import build_runtime
    from tests.conftest import admin_client

    image = run_stage(Bake(), {"account": "laptop", "source": str(SOURCE_DIR), "version": "1.0.0"}, services)
    assert run_stage(Deploy(), _deploy(image.outputs["image_id"], "1.0.0"), services).status == "SUCCEEDED"
    runtime = build_runtime(f"sqlite:///{tmp_path / 'api.db'}", config=services.config)
    with admin_client(create_app(runtime, with_worker=True)) as api:
        clusters = api.get("/api/applications/shop/clusters").json()
        assert [(c["cluster"], c["account"], c["region"]) for c in clusters] == [("shop-web", "laptop", "local")]
        group = clusters[0]["server_groups"][0]
        assert (group["name"], group["enabled"], group["healthy"], group["image_id"]) == (
            "shop-web-v001",
            True,
            2,
            image.outputs["image_id"],
        )
        lbs = api.get("/api/applications/shop/load_balancers").json()
        assert [(lb["name"], lb["type"], lb["server_groups"]) for lb in lbs] == [
            ("shop-web", "haproxy", ["shop-web-v001"])
        ]
        assert api.get("/api/applications/shop/security_groups").json() == []
        # an operator task, the region left out: a local account has one
        where = {"account": "laptop"}
        r = api.post("/api/applications/shop/server_groups/shop-web-v001/disable", json=where, params={"wait": "true"})
        assert r.status_code == 200, r.json()
    group = provider_for(services, "laptop").get_server_group("shop-web-v001")
    assert group is not None and not group.enabled and group.serving_instances() == []


def test_clusters_show_live_traffic_per_server_group(services: SimpleNamespace, tmp_path: Path) -> None:
    """Requests per second and errors per server group, from HAProxy's counters, in the API and on
    the CLUSTERS tab (which refreshes itself while a group has live traffic figures)."""
    import httpx

    from gennaker.api.app import create_app
    from gennaker.runtime import build_runtime
    from tests.conftest import admin_client

    image = run_stage(Bake(), {"account": "laptop", "source": str(SOURCE_DIR), "version": "1.0.0"}, services)
    deploy = _deploy(image.outputs["image_id"], "1.0.0", env={"ERROR_RATE": "0.5"})
    assert run_stage(Deploy(), deploy, services).status == "SUCCEEDED"
    listen = services.config.accounts["laptop"].load_balancers["shop-web"].listen
    codes = [httpx.get(f"http://{listen}/", timeout=5).status_code for _ in range(40)]
    runtime = build_runtime(f"sqlite:///{tmp_path / 'api.db'}", config=services.config)
    with admin_client(create_app(runtime)) as api:
        [cluster] = api.get("/api/applications/shop/clusters").json()
        traffic = cluster["server_groups"][0]["traffic"]
        assert traffic["requests"] == 40 and traffic["errors"] == codes.count(500) > 0, (traffic, codes)
        assert traffic["rate"] >= 0
        page = api.get("/applications/shop/clusters").text
        panel = api.get("/applications/shop/clusters/traffic")  # what the panel asks for every 2 s
    assert panel.status_code == 200 and f"{codes.count(500)} 5xx of 40" in panel.text
    assert 'data-testid="traffic"' in page and f"{codes.count(500)} 5xx of 40" in page
    assert 'hx-trigger="every 2s"' in page  # live while a group reports traffic
