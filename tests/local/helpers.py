"""Shared steps of the local tests: a sample-app group behind the load balancer."""

from __future__ import annotations

from gennaker.cloud.local.haproxy import HAProxy
from gennaker.cloud.local.instances import GroupRecord, InstanceManager
from gennaker.sample_app import SOURCE_DIR
from tests.local.conftest import LB


def start_group(instances: InstanceManager, name: str, version: str, count: int = 2, **env: str) -> GroupRecord:
    return instances.create(name, "python3 app.py", SOURCE_DIR, {"APP_VERSION": version, **env}, count)


def put_in_rotation(proxy: HAProxy, group: GroupRecord, timeout: float = 20.0) -> None:
    """Add the group's instances (drain: checked, no traffic), wait healthy, then ready."""
    for inst in group.running():
        proxy.add_server(LB, inst.id, "127.0.0.1", inst.port, state="drain")
    pending = proxy.wait_healthy(LB, [i.id for i in group.running()], timeout)
    assert not pending, f"not healthy in {timeout}s: {pending}"
    for inst in group.running():
        proxy.set_state(LB, inst.id, "ready")
