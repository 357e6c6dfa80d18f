"""Fixtures for the local provider: a real HAProxy and real processes, on loopback only."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gennaker.cloud.local.haproxy import HAProxy, HealthCheck, LoadBalancerSpec
from gennaker.cloud.local.instances import InstanceManager
from tests.conftest import free_port

LB = "shop-web"
FAST_HEALTH = HealthCheck(path="/up", interval=0.2, timeout=1.0, rise=1, fall=2)


@pytest.fixture
def haproxy_binary() -> str:
    path = shutil.which("haproxy")
    if path is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy): the local provider's load balancer")
    return path


@pytest.fixture
def lb_spec() -> LoadBalancerSpec:
    return LoadBalancerSpec(LB, f"127.0.0.1:{free_port()}", FAST_HEALTH)


@pytest.fixture
def haproxy(haproxy_binary: str, tmp_path: Path, lb_spec: LoadBalancerSpec) -> Iterator[HAProxy]:
    proxy = HAProxy(tmp_path / "state")
    proxy.declare(lb_spec)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop(timeout=2)


@pytest.fixture
def instances(tmp_path: Path) -> Iterator[InstanceManager]:
    manager = InstanceManager(tmp_path / "state", stop_timeout=3)
    try:
        yield manager
    finally:
        # Instances outlive their manager by design: a test must never leave any behind.
        for group in InstanceManager(tmp_path / "state").groups():
            manager.destroy(group.name, timeout=2)
