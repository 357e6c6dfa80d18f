"""What an Auto Scaling group does by itself, a worker does for a local account: a crashed instance
is replaced even when nobody reads the group (no console open, no deploy polling)."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gennaker.cloud.local.instances import InstanceManager
from gennaker.cloud.registry import provider_for
from gennaker.runtime import build_runtime
from gennaker.sample_app import SOURCE_DIR
from gennaker.spec.config import config_from_text
from gennaker.stages.bake import Bake
from gennaker.stages.deploy import Deploy
from tests.cloud.conftest import run_stage
from tests.conftest import free_port


def test_a_worker_replaces_a_crashed_instance_nobody_reads(tmp_path: Path) -> None:
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
    runtime = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=config)
    worker = runtime.worker(threads=1)
    try:
        image = run_stage(Bake(), {"account": "laptop", "source": str(SOURCE_DIR), "version": "1.0.0"}, services)
        deploy = {
            "account": "laptop",
            "stack": "web",
            "image": image.outputs["image_id"],
            "command": "python3 app.py",
            "capacity": {"min": 2, "max": 2, "desired": 2},
            "load_balancers": ["shop-web"],
            "poll_interval": 0.5,
        }
        assert run_stage(Deploy(), deploy, services).status == "SUCCEEDED"
        records = InstanceManager(tmp_path / "state")  # reads the records only
        group = records.require("shop-web-v001")
        victim = group.running()[0]
        os.kill(victim.pid, signal.SIGKILL)
        worker.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = records.require("shop-web-v001")
            if len(now.running()) == 2 and all(i.pid != victim.pid for i in now.running()):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the crashed instance was not replaced: {records.require('shop-web-v001')}")
    finally:
        worker.stop()
        for g in provider.instances.groups():
            provider.instances.destroy(g.name, timeout=2)
        provider.haproxy.stop(timeout=2)
