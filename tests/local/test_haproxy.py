"""The HAProxy controller against a real haproxy and real sample-app processes."""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path

import pytest

from gennaker.cloud.local.haproxy import HAProxy, HAProxyNotInstalled, LoadBalancerSpec
from gennaker.cloud.local.instances import InstanceManager
from tests.local.conftest import LB
from tests.local.helpers import put_in_rotation, start_group
from tests.local.loadgen import Traffic, failures


def get(spec: LoadBalancerSpec, path: str = "/") -> tuple[int, str]:
    conn = http.client.HTTPConnection(spec.host, spec.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode().strip()
    finally:
        conn.close()


def test_haproxy_serves_a_group_round_robin(
    haproxy: HAProxy, instances: InstanceManager, lb_spec: LoadBalancerSpec
) -> None:
    group = start_group(instances, "shop-web-v001", "1.0.0")
    put_in_rotation(haproxy, group)
    answers = [get(lb_spec) for _ in range(10)]
    assert answers == [(200, "1.0.0")] * 10
    rows = {r.server: r for r in haproxy.show_stat() if r.backend == LB}
    assert set(rows) == {"shop-web-v001-1", "shop-web-v001-2"}
    # "UP" possibly "going down" ("UP 1/2"): a check can time out on a busy 2-core machine.
    assert all(r.status.startswith("UP") and r.weight == 1 for r in rows.values()), rows
    assert sorted(r.hrsp_2xx for r in rows.values()) == [5, 5], rows  # round robin
    assert {s["srv_name"] for s in haproxy.show_servers_state()} == set(rows)


def test_a_new_server_gets_no_request_before_its_first_passing_check(
    haproxy: HAProxy, instances: InstanceManager, lb_spec: LoadBalancerSpec
) -> None:
    good = start_group(instances, "shop-web-v001", "1.0.0", count=1)
    put_in_rotation(haproxy, good)
    bad = start_group(instances, "shop-web-v002", "2.0.0", count=1, UNHEALTHY="1")
    inst = bad.running()[0]
    haproxy.add_server(LB, inst.id, "127.0.0.1", inst.port)
    assert haproxy.wait_healthy(LB, [inst.id], timeout=1.5) == [inst.id]
    assert {get(lb_spec) for _ in range(6)} == {(200, "1.0.0")}


@pytest.mark.parametrize("keep_alive", [False, True], ids=["new-connections", "keep-alive"])
def test_switch_to_a_new_group_loses_no_request(
    haproxy: HAProxy, instances: InstanceManager, lb_spec: LoadBalancerSpec, keep_alive: bool
) -> None:
    old = start_group(instances, "shop-web-v001", "1.0.0")
    put_in_rotation(haproxy, old)
    with Traffic(lb_spec.host, lb_spec.port, keep_alive=keep_alive, max_seconds=40) as traffic:
        traffic.wait_for(50)
        new = start_group(instances, "shop-web-v002", "2.0.0")
        put_in_rotation(haproxy, new)
        traffic.wait_for(50)
        for inst in old.running():
            haproxy.set_state(LB, inst.id, "drain")
        switch = time.monotonic()  # no new request reaches the old group from here on
        for inst in old.running():
            assert haproxy.drain(LB, inst.id, timeout=10)
        traffic.wait_for(50)
        instances.destroy(old.name)  # out of rotation: stopping it must not cost a request
        for inst in old.instances:
            haproxy.del_server(LB, inst.id)
        traffic.wait_for(50)
    answers = traffic.answers
    assert len(answers) >= 200
    assert failures(answers) == []
    after = [a.body for a in answers if a.sent > switch]
    assert after and set(after) == {"2.0.0"}
    assert {a.body for a in answers} == {"1.0.0", "2.0.0"}


def test_drain_lets_requests_in_flight_finish(
    haproxy: HAProxy, instances: InstanceManager, lb_spec: LoadBalancerSpec
) -> None:
    group = start_group(instances, "shop-web-v001", "1.0.0", count=1, LATENCY_MS="1500")
    put_in_rotation(haproxy, group)
    result: list[tuple[int, str]] = []
    slow = threading.Thread(target=lambda: result.append(get(lb_spec)))
    slow.start()
    time.sleep(0.4)
    started = time.monotonic()
    assert haproxy.drain(LB, "shop-web-v001-1", timeout=10)
    assert time.monotonic() - started >= 0.5  # it waited for the request
    slow.join(10)
    assert result == [(200, "1.0.0")]
    row = haproxy.stat(LB, "shop-web-v001-1")
    assert row is not None and row.status == "MAINT" and row.scur == 0


def test_state_survives_reload_restart_and_a_new_controller(
    haproxy: HAProxy, instances: InstanceManager, lb_spec: LoadBalancerSpec, tmp_path: Path
) -> None:
    group = start_group(instances, "shop-web-v001", "1.0.0", count=3)
    put_in_rotation(haproxy, group)
    a, b, c = (i.id for i in group.running())
    haproxy.set_weight(LB, a, 7)
    haproxy.set_state(LB, b, "drain")
    haproxy.set_state(LB, c, "maint")
    config = haproxy.config_path.read_text()
    assert f"server {c} " in config and config.split(f"server {c} ")[1].splitlines()[0].endswith("disabled")
    assert "weight 7" in config

    def states(proxy: HAProxy) -> dict[str, tuple[str, int]]:
        return {r.server: (r.status.split()[0], r.weight) for r in proxy.show_stat() if r.backend == LB}

    expected = {a: ("UP", 7), b: ("DRAIN", 1), c: ("MAINT", 1)}
    assert states(haproxy) == expected
    pid = haproxy.pid()
    haproxy.reload()
    assert haproxy.pid() != pid
    assert states(haproxy) == expected
    haproxy.stop(timeout=2)
    assert not haproxy.is_running()
    haproxy.start()
    assert haproxy.wait_healthy(LB, [a, b], timeout=10) == []
    assert states(haproxy) == expected
    # A new Gennaker process re-attaches to the running haproxy instead of starting another.
    again = HAProxy(haproxy.state_dir)
    assert again.pid() == haproxy.pid()
    again.start()
    assert again.pid() == haproxy.pid()
    assert states(again) == expected
    assert {get(lb_spec) for _ in range(4)} == {(200, "1.0.0")}


def test_missing_haproxy_is_one_clear_error(tmp_path: Path) -> None:
    proxy = HAProxy(tmp_path, binary="gennaker-no-such-haproxy")
    with pytest.raises(HAProxyNotInstalled, match="apt-get install haproxy"):
        proxy.start()


def test_listen_port_in_use_is_a_clear_error(haproxy_binary: str, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proxy = HAProxy(tmp_path)
        proxy.declare(LoadBalancerSpec(LB, f"127.0.0.1:{port}"))
        with pytest.raises(Exception, match=f"cannot listen on 127.0.0.1:{port}"):
            proxy.start()
    assert not proxy.is_running()


def test_a_reload_under_load_loses_no_request(
    haproxy: HAProxy, instances: InstanceManager, lb_spec: LoadBalancerSpec
) -> None:
    group = start_group(instances, "shop-web-v001", "1.0.0")
    put_in_rotation(haproxy, group)
    with Traffic(lb_spec.host, lb_spec.port, max_seconds=30) as traffic:
        traffic.wait_for(30)
        for _ in range(3):
            haproxy.reload()
            traffic.wait_for(30)
    assert len(traffic.answers) >= 120
    assert failures(traffic.answers) == []


def test_account_declaration_and_bad_values() -> None:
    lb = LoadBalancerSpec.from_dict(
        "shop-web", {"listen": "127.0.0.1:8088", "health": {"path": "/up", "interval": "1s", "timeout": "5s"}}
    )
    assert (lb.host, lb.port, lb.health.path, lb.health.interval, lb.health.timeout) == (
        "127.0.0.1",
        8088,
        "/up",
        1.0,
        5.0,
    )
    assert (
        LoadBalancerSpec.from_dict("a", {"listen": "127.0.0.1:1", "health": {"interval": "250ms"}}).health.interval
        == 0.25
    )
    with pytest.raises(ValueError, match="listen must be HOST:PORT"):
        LoadBalancerSpec("shop-web", "8088")
    with pytest.raises(ValueError, match=r"listen .* is required"):
        LoadBalancerSpec.from_dict("shop-web", {})
    with pytest.raises(ValueError, match="not a duration"):
        LoadBalancerSpec.from_dict("shop-web", {"listen": "127.0.0.1:8088", "health": {"interval": "soon"}})
    with pytest.raises(ValueError, match="may contain only"):
        LoadBalancerSpec("shop web", "127.0.0.1:8088")


def test_refused_runtime_commands_are_errors_not_silence(haproxy: HAProxy, lb_spec: LoadBalancerSpec) -> None:
    from gennaker.cloud.local.haproxy import HAProxyError
    from gennaker.errors import Conflict, NotFound

    with pytest.raises(HAProxyError, match="refused"):
        haproxy.command(f"set server {LB}/nobody state ready")
    with pytest.raises(HAProxyError, match="refused"):
        haproxy.command("add server nobackend/x 127.0.0.1:1")
    with pytest.raises(NotFound, match="has no server nobody"):
        haproxy.set_state(LB, "nobody", "ready")
    with pytest.raises(NotFound, match="load balancer other is not declared"):
        haproxy.add_server("other", "x", "127.0.0.1", 1)
    with pytest.raises(Conflict, match="both listen on"):
        haproxy.declare(LoadBalancerSpec("other", lb_spec.listen))


def test_show_stat_rows_are_typed_and_a_check_in_progress_keeps_its_last_result() -> None:
    from gennaker.cloud.local.haproxy import parse_show_stat

    header = "# pxname,svname,scur,stot,status,weight,check_status,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,req_tot,rtime"
    text = "\n".join(
        [
            header,
            "fe:shop-web,FRONTEND,0,10,OPEN,,,10,0,0,0,10,",
            "shop-web,shop-web-v001-1,1,7,UP,3,* L7OK,6,0,0,1,,12",
            "shop-web,BACKEND,0,7,UP,3,,6,0,0,1,7,12",
        ]
    )
    (row,) = parse_show_stat(text)
    assert (row.server, row.scur, row.stot, row.status, row.weight, row.check_status) == (
        "shop-web-v001-1",
        1,
        7,
        "UP",
        3,
        "L7OK",
    )
    assert (row.hrsp_2xx, row.hrsp_5xx, row.rtime, row.req_tot) == (6, 1, 12, 0)
    assert row.healthy and row.serving
