"""The local provider through the CloudProvider interface: real processes behind real HAProxy."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gennaker.cloud.local.haproxy import LoadBalancerSpec
from gennaker.cloud.local.instances import process_start_time
from gennaker.cloud.local.options import LocalDeployOptions
from gennaker.cloud.local.provider import LocalProvider
from gennaker.cloud.provider import Capacity, CloudProvider, ServerGroup, ServerGroupSpec
from gennaker.errors import InvalidInput, NotFound
from gennaker.sample_app import SOURCE_DIR
from tests.local.conftest import LB
from tests.local.loadgen import Traffic, failures


@pytest.fixture
def provider(haproxy_binary: str, tmp_path: Path, lb_spec: LoadBalancerSpec) -> Iterator[LocalProvider]:
    p = LocalProvider(tmp_path / "local", "laptop", [lb_spec], drain_timeout=5, stop_timeout=3)
    try:
        yield p
    finally:
        for group in p.instances.groups():
            p.instances.destroy(group.name, timeout=2)
        p.haproxy.stop(timeout=2)


def spec(provider: LocalProvider, name: str, version: str, desired: int = 2, **env: str) -> ServerGroupSpec:
    image = provider.bake(SOURCE_DIR, "sample", version).id
    options = LocalDeployOptions(command="python3 app.py", env={"APP_VERSION": version, **env}, load_balancers=[LB])
    return provider.prepare_server_group(
        ServerGroupSpec(
            name=name,
            application="shop",
            image=image,
            capacity=Capacity(desired, desired, desired),
            provider_options=options,
            execution_id="e1",
            stage_id=f"deploy-{name}",
        )
    )


def wait_healthy(provider: LocalProvider, name: str, count: int, timeout: float = 20) -> ServerGroup:
    deadline = time.monotonic() + timeout
    while True:
        group = provider.get_server_group(name)
        assert group is not None
        if len(group.healthy_instances()) >= count or time.monotonic() > deadline:
            return group
        time.sleep(0.1)


def test_it_is_a_cloud_provider(provider: LocalProvider) -> None:
    as_protocol: CloudProvider = provider
    assert as_protocol.account == "laptop"
    assert [lb.name for lb in provider.list_load_balancers()] == [LB]


def test_red_black_through_the_provider_loses_no_request(provider: LocalProvider, lb_spec: LoadBalancerSpec) -> None:
    first = provider.create_server_group(spec(provider, "shop-web-v001", "1.0.0"))
    assert len(wait_healthy(provider, first.name, 2).healthy_instances()) == 2
    with Traffic(lb_spec.host, lb_spec.port, max_seconds=40) as traffic:
        traffic.wait_for(50)
        provider.create_server_group(spec(provider, "shop-web-v002", "2.0.0"))
        assert len(wait_healthy(provider, "shop-web-v002", 2).healthy_instances()) == 2
        traffic.wait_for(50)
        provider.disable_server_group("shop-web-v001")
        switch = time.monotonic()
        traffic.wait_for(50)
        old = provider.get_server_group("shop-web-v001")
        assert old is not None and old.disabled and not old.in_rotation
        provider.destroy_server_group("shop-web-v001")
        traffic.wait_for(50)
    assert failures(traffic.answers) == []
    assert {a.body for a in traffic.answers if a.sent > switch} == {"2.0.0"}
    assert provider.get_server_group("shop-web-v001") is None
    counts = provider.traffic_by_server_group()
    assert set(counts) == {"shop-web-v002"}  # the destroyed group's servers are gone
    assert counts["shop-web-v002"]["2xx"] == sum(1 for a in traffic.answers if a.body == "2.0.0")
    assert counts["shop-web-v002"]["5xx"] == 0
    assert {s.name for s in provider.haproxy.servers(LB)} == {"shop-web-v002-1", "shop-web-v002-2"}


def test_a_new_version_that_never_becomes_healthy_takes_no_traffic(
    provider: LocalProvider, lb_spec: LoadBalancerSpec
) -> None:
    provider.create_server_group(spec(provider, "shop-web-v001", "1.0.0"))
    wait_healthy(provider, "shop-web-v001", 2)
    with Traffic(lb_spec.host, lb_spec.port, max_seconds=30) as traffic:
        bad = provider.create_server_group(spec(provider, "shop-web-v002", "2.0.0", UNHEALTHY="1"))
        assert bad.healthy_instances() == []
        traffic.wait_for(60)
        provider.destroy_server_group("shop-web-v002")
    assert failures(traffic.answers) == []
    assert {a.body for a in traffic.answers} == {"1.0.0"}


def test_disable_then_enable_puts_the_group_back(provider: LocalProvider) -> None:
    provider.create_server_group(spec(provider, "shop-web-v001", "1.0.0"))
    wait_healthy(provider, "shop-web-v001", 2)
    provider.disable_server_group("shop-web-v001")
    group = provider.get_server_group("shop-web-v001")
    assert group is not None and group.disabled and group.healthy_instances() == []
    assert {i.load_balancers[LB] for i in group.instances} == {"out"}
    provider.enable_server_group("shop-web-v001")
    group = wait_healthy(provider, "shop-web-v001", 2)
    assert group.enabled and len(group.healthy_instances()) == 2


def test_rolling_partial_disable_and_resize(provider: LocalProvider) -> None:
    provider.create_server_group(spec(provider, "shop-web-v001", "1.0.0", desired=2))
    wait_healthy(provider, "shop-web-v001", 2)
    provider.resize_server_group("shop-web-v001", Capacity(1, 4, 4))
    group = wait_healthy(provider, "shop-web-v001", 4)
    assert len(group.healthy_instances()) == 4 and group.capacity == Capacity(1, 4, 4)
    provider.deregister_instances("shop-web-v001", [i.id for i in group.instances[:2]])
    group = provider.get_server_group("shop-web-v001")
    assert group is not None and len(group.healthy_instances()) == 2 and group.enabled
    provider.resize_server_group("shop-web-v001", Capacity(1, 4, 1))
    group = provider.get_server_group("shop-web-v001")
    assert group is not None and [i.id for i in group.instances] == ["shop-web-v001-1"]
    assert {s.name for s in provider.haproxy.servers(LB)} == {"shop-web-v001-1"}


def test_a_crashed_instance_is_replaced_and_re_admitted(provider: LocalProvider) -> None:
    provider.create_server_group(spec(provider, "shop-web-v001", "1.0.0"))
    wait_healthy(provider, "shop-web-v001", 2)
    victim = provider.instance_records("shop-web-v001")[0]
    os.kill(victim.pid, signal.SIGKILL)
    while process_start_time(victim.pid) is not None:
        time.sleep(0.02)
    provider.reconcile_all()
    group = wait_healthy(provider, "shop-web-v001", 2)
    assert victim.id not in [i.id for i in group.instances] and len(group.healthy_instances()) == 2
    assert [r.state for r in provider.instance_records("shop-web-v001") if r.id == victim.id] == ["crashed"]
    assert victim.id not in {s.name for s in provider.haproxy.servers(LB)}


_OWNER = """
import json, sys, time
from pathlib import Path
from gennaker.cloud.local.haproxy import LoadBalancerSpec, HealthCheck
from gennaker.cloud.local.provider import LocalProvider
from gennaker.cloud.local.options import LocalDeployOptions
from gennaker.cloud.provider import Capacity, ServerGroupSpec
from gennaker.sample_app import SOURCE_DIR
lb = LoadBalancerSpec("shop-web", sys.argv[2], HealthCheck(interval=0.2, timeout=1.0))
p = LocalProvider(Path(sys.argv[1]), "laptop", [lb])
image = p.bake(SOURCE_DIR, "sample", "3.0.0").id
p.create_server_group(ServerGroupSpec(name="shop-web-v001", application="shop", image=image,
    capacity=Capacity(2, 2, 2), load_balancers=["shop-web"],
    provider_options=LocalDeployOptions(command="python3 app.py", env={"APP_VERSION": "3.0.0"})))
print("created", flush=True)
time.sleep(60)
"""


def test_kill_9_of_gennaker_leaves_the_app_serving_and_a_new_process_re_adopts_it(
    provider: LocalProvider, lb_spec: LoadBalancerSpec
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(provider.state_dir), lb_spec.listen],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "created"
        before = {r.id: r.pid for r in provider.instance_records("shop-web-v001")}
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
    with Traffic(lb_spec.host, lb_spec.port, max_seconds=20) as traffic:
        traffic.wait_for(40)
    assert failures(traffic.answers) == [] and {a.body for a in traffic.answers} == {"3.0.0"}
    group = wait_healthy(LocalProvider(provider.state_dir, "laptop", [lb_spec]), "shop-web-v001", 2)
    assert {i.id for i in group.healthy_instances()} == set(before)
    assert {r.id: r.pid for r in provider.instance_records("shop-web-v001")} == before


def test_bad_input_is_a_clear_error(provider: LocalProvider) -> None:
    good = spec(provider, "shop-web-v001", "1.0.0")
    with pytest.raises(NotFound, match="load balancer nope is not declared in account laptop"):
        provider.prepare_server_group(
            dataclasses.replace(good, provider_options=LocalDeployOptions(command="x", load_balancers=["nope"]))
        )
    with pytest.raises(NotFound, match=r"artifact sha256-0+ not found"):
        provider.create_server_group(dataclasses.replace(good, image="sha256-" + "0" * 64))
    with pytest.raises(InvalidInput, match="needs a command"):
        provider.create_server_group(dataclasses.replace(good, provider_options=None))
    assert provider.instances.groups() == []
    assert [i.name for i in provider.find_images("samp*", {"version": "1.0.0"}, [])] == ["sample"]


def test_health_report_names_the_check_and_the_log(provider: LocalProvider) -> None:
    bad = spec(provider, "shop-web-v001", "1.0.0", desired=1, UNHEALTHY="1")
    provider.create_server_group(bad)
    report = provider.health_report("shop-web-v001")
    assert "shop-web-v001-1 (port " in report and "check L7STS" in report
    assert '"GET /up HTTP/1.0" 503' in report and "Traceback" not in report


def test_a_command_that_exits_at_once_is_reported_with_its_log(provider: LocalProvider) -> None:
    broken = spec(provider, "shop-web-v001", "1.0.0", desired=1)
    provider.create_local_server_group(broken, "echo 'cannot open config.toml' >&2; exit 3", {})
    time.sleep(0.3)
    group = provider.get_server_group("shop-web-v001")
    assert group is not None and group.healthy_instances() == []
    report = provider.health_report("shop-web-v001")
    assert "exited" in report and "cannot open config.toml" in report


def test_instances_a_resize_adds_serve_when_it_returns(provider: LocalProvider) -> None:
    """Rolling red/black resizes the new group step by step: the instances a step adds must take
    requests once healthy, not wait for the next read of the group (that was the next poll, 10 s)."""
    provider.create_server_group(spec(provider, "shop-web-v001", "1.0.0", desired=1))
    wait_healthy(provider, "shop-web-v001", 1)
    provider.resize_server_group("shop-web-v001", Capacity(1, 3, 3))
    # HAProxy's own record, read without going through the provider (a read would admit them too)
    assert {s.name: s.state for s in provider.haproxy.servers(LB)} == {
        "shop-web-v001-1": "ready",
        "shop-web-v001-2": "ready",
        "shop-web-v001-3": "ready",
    }
