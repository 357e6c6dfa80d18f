"""Server groups as real detached processes: outliving their manager, replaced when they crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gennaker.cloud.local.instances import InstanceManager, process_start_time
from gennaker.errors import NotFound
from gennaker.sample_app import SOURCE_DIR
from tests.local.helpers import start_group


def answer(port: int, path: str = "/", timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                return str(resp.read().decode().strip())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_each_instance_is_a_process_on_its_own_port_with_the_group_env(instances: InstanceManager) -> None:
    group = start_group(instances, "shop-web-v001", "1.2.3", count=2)
    ports = {i.port for i in group.running()}
    assert len(ports) == 2
    assert [answer(p) for p in sorted(ports)] == ["1.2.3", "1.2.3"]
    for inst in group.running():
        assert process_start_time(inst.pid) == inst.start_time
        assert Path(f"/proc/{inst.pid}/cwd").resolve() == SOURCE_DIR
        assert os.getsid(inst.pid) != os.getsid(0)  # its own session: no terminal signal reaches it
        assert "listening on 127.0.0.1:" in instances.tail(inst)
    record = json.loads((instances.groups_dir / "shop-web-v001.json").read_text())
    assert [i["port"] for i in record["instances"]] == [i.port for i in group.running()]


_OWNER = """
import sys, time
from pathlib import Path
from gennaker.cloud.local.instances import InstanceManager
from gennaker.sample_app import SOURCE_DIR
m = InstanceManager(Path(sys.argv[1]))
m.create("shop-web-v001", "python3 app.py", SOURCE_DIR, {"APP_VERSION": "7.0.0"}, 2)
print("started", flush=True)
time.sleep(60)
"""


def test_instances_outlive_a_killed_manager_and_are_re_adopted(instances: InstanceManager) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(instances.state_dir)], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "started"
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
    group, changes = InstanceManager(instances.state_dir).reconcile("shop-web-v001")
    assert changes.started == [] and changes.crashed == []
    assert [answer(i.port) for i in group.running()] == ["7.0.0", "7.0.0"]
    assert all(os.getppid() != i.pid and process_start_time(i.pid) for i in group.running())


def test_a_crashed_instance_is_replaced(instances: InstanceManager) -> None:
    group = start_group(instances, "shop-web-v001", "1.0.0", count=2)
    victim = group.running()[0]
    os.kill(victim.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while process_start_time(victim.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    group, changes = instances.reconcile("shop-web-v001")
    assert [i.id for i in changes.crashed] == [victim.id]
    assert [i.id for i in changes.started] == ["shop-web-v001-3"]
    assert len(group.running()) == 2
    assert [i.state for i in group.instances if i.id == victim.id] == ["crashed"]
    assert answer(changes.started[0].port) == "1.0.0"


def test_a_pid_reused_by_another_process_is_not_adopted(instances: InstanceManager) -> None:
    start_group(instances, "shop-web-v001", "1.0.0", count=1)
    path = instances.groups_dir / "shop-web-v001.json"
    record = json.loads(path.read_text())
    record["instances"][0]["start_time"] -= 1  # as if the pid now belonged to another process
    path.write_text(json.dumps(record))
    _, changes = instances.reconcile("shop-web-v001")
    assert len(changes.crashed) == 1 and len(changes.started) == 1
    os.kill(changes.crashed[0].pid, signal.SIGKILL)  # the real process, which we no longer own


def test_resize_adds_and_stops_processes(instances: InstanceManager) -> None:
    group = start_group(instances, "shop-web-v001", "1.0.0", count=1)
    group, changes = instances.resize("shop-web-v001", 3)
    assert len(changes.started) == 2 and len(group.running()) == 3
    assert {answer(i.port) for i in group.running()} == {"1.0.0"}
    group, changes = instances.resize("shop-web-v001", 1)
    assert len(changes.stopped) == 2 and [i.id for i in group.running()] == ["shop-web-v001-1"]
    assert all(process_start_time(i.pid) is None for i in changes.stopped)


def test_stop_escalates_to_sigkill_after_the_timeout(instances: InstanceManager, tmp_path: Path) -> None:
    stubborn = "python3 -c 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)'"
    group = instances.create("shop-web-v009", stubborn, tmp_path, {}, 1)
    inst = group.running()[0]
    time.sleep(0.3)  # let it install its handler
    started = time.monotonic()
    instances.destroy("shop-web-v009", timeout=0.5)
    assert process_start_time(inst.pid) is None
    assert 0.4 < time.monotonic() - started < 5
    assert instances.get("shop-web-v009") is None


def test_a_command_that_exits_at_once_shows_why_in_its_log(instances: InstanceManager, tmp_path: Path) -> None:
    group = instances.create("shop-web-v010", "echo boom >&2; exit 3", tmp_path, {}, 1)
    inst = group.running()[0]
    deadline = time.monotonic() + 5
    while process_start_time(inst.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    group, changes = instances.reconcile("shop-web-v010")
    assert [i.id for i in changes.crashed] == [inst.id]
    assert "boom" in instances.tail(inst)


def test_missing_group_and_directory_are_clear_errors(instances: InstanceManager, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="server group shop-web-v404 not found"):
        instances.reconcile("shop-web-v404")
    with pytest.raises(NotFound, match="does not exist"):
        instances.create("shop-web-v001", "true", tmp_path / "nope", {}, 1)


def test_a_crash_loop_stops_being_replaced_and_says_why(tmp_path: Path) -> None:
    manager = InstanceManager(tmp_path / "state", crash_window=30, max_crashes=3)
    try:
        manager.create("shop-web-v011", "echo 'bad config: no DATABASE_URL' >&2; exit 1", tmp_path, {}, 1)
        launches = 1
        for _ in range(10):
            time.sleep(0.15)
            _, changes = manager.reconcile("shop-web-v011")
            launches += len(changes.started)
        assert launches == 3  # the first and two replacements; the third crash stops replacing
        assert changes.crash_looping
        report = manager.last_crash("shop-web-v011")
        assert "shop-web-v011-3 exited" in report and "bad config: no DATABASE_URL" in report
    finally:
        manager.destroy("shop-web-v011", timeout=1)
