"""Several workers on PostgreSQL share executions (FOR UPDATE SKIP LOCKED): no stage runs twice,
and killing one worker leaves no execution stuck."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from gennaker.engine import operations as ops
from gennaker.runtime import Runtime
from gennaker.store.db import IDLE_PING_AFTER
from tests.conftest import admin_conn
from tests.core.conftest import finished, stage_status, start, wait_for
from tests.core.test_durability import kill, spawn_worker, stop

_admin_conn = admin_conn  # (imported from here by other suites)


def _start_batch(rt: Runtime, tmp_path: Path, count: int, out: Path) -> list[str]:
    text = f"""name: batch
application: shop
stages:
  - {{id: a, type: run, command: 'echo "$GENNAKER_EXECUTION_ID a" >> {out}'}}
  - {{id: b, type: run, requires: [a], command: 'echo "$GENNAKER_EXECUTION_ID b" >> {out}'}}
  - {{id: c, type: run, requires: [a], command: 'sleep 0.3; echo "$GENNAKER_EXECUTION_ID c" >> {out}'}}
  - {{id: d, type: run, requires: [b, c], command: 'echo "$GENNAKER_EXECUTION_ID d" >> {out}'}}
"""
    path = tmp_path / "batch.yml"
    path.write_text(text)
    pipeline = rt.load_pipeline(str(path))
    return [ops.start_execution(rt.db, pipeline, {}, "tester") for _ in range(count)]


def _assert_each_once(out: Path, ids: list[str]) -> None:
    lines = out.read_text().splitlines()
    assert len(lines) == len(set(lines)), "a stage ran twice"
    assert sorted(lines) == sorted(f"{i} {s}" for i in ids for s in "abcd")


def test_three_workers_share_a_batch(pg_runtime: Runtime, tmp_path: Path) -> None:
    out = tmp_path / "out"
    url = pg_runtime.db.engine.url.render_as_string(hide_password=False)
    workers = [spawn_worker(url) for _ in range(3)]
    try:
        ids = _start_batch(pg_runtime, tmp_path, 12, out)
        details = [finished(pg_runtime, i, timeout=90) for i in ids]
    finally:
        for w in workers:
            stop(w)
    assert all(d["status"] == "SUCCEEDED" for d in details)
    _assert_each_once(out, ids)


def test_killing_one_worker_leaves_none_stuck(pg_runtime: Runtime, tmp_path: Path) -> None:
    out = tmp_path / "out"
    url = pg_runtime.db.engine.url.render_as_string(hide_password=False)
    workers = [spawn_worker(url) for _ in range(2)]
    try:
        ids = _start_batch(pg_runtime, tmp_path, 10, out)
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 8, timeout=60)
        kill(workers[0])
        details = [finished(pg_runtime, i, timeout=90) for i in ids]
    finally:
        for w in workers:
            if w.poll() is None:
                stop(w)
    # A run stage whose worker died mid-command fails as "worker lost" (no retries here); every other
    # stage ran exactly once and no execution is left RUNNING.
    assert all(d["status"] in ("SUCCEEDED", "FAILED") for d in details)
    lost = [s for d in details for s in d["stages"] if s["status"] == "FAILED"]
    assert all("worker lost" in (s["message"] or "") for s in lost), lost
    lines = out.read_text().splitlines()
    assert len(lines) == len(set(lines)), "a stage ran twice"


def test_awaiting_judgment_reads_the_same_on_postgresql(pg_runtime: Runtime, tmp_path: Path) -> None:
    """The AWAITING JUDGMENT rule in SQL reads the stage context's JSON: PostgreSQL's operators, not SQLite's."""
    from tests.core.test_engine import JUDGMENTS, Pausing, Undeclared, awaiting_both_ways, wait_asking

    pg_runtime.registry.update(pausing=Pausing(), undeclared=Undeclared())
    worker = pg_runtime.worker()
    worker.start()
    try:
        eid = start(pg_runtime, tmp_path, JUDGMENTS)
        wait_asking(pg_runtime, eid, "roll", "other")
        wait_for(lambda: stage_status(pg_runtime, eid)["gate"] == "WAITING")
        assert awaiting_both_ways(pg_runtime, eid) == {"gate": True, "roll": True, "other": False, "soak": False}
        ops.judge(pg_runtime.db, eid, "gate", "lee", "approve", None)
        ops.judge(pg_runtime.db, eid, "roll", "lee", "continue", None)
        wait_for(lambda: stage_status(pg_runtime, eid)["roll"] == "SUCCEEDED")
        assert not any(awaiting_both_ways(pg_runtime, eid).values())
        ops.cancel(pg_runtime.db, eid, "lee")
    finally:
        worker.stop()


def test_a_pooled_connection_the_server_closed_is_replaced(pg_runtime: Runtime) -> None:
    """Connections are pinged only after a second idle (not on every checkout: a round trip per
    transaction); one the server closed meanwhile (a restart, a failover) is replaced, not used."""
    db = pg_runtime.db
    with db.begin() as conn:
        conn.execute(text("SELECT 1"))
    admin = _admin_conn()
    try:
        gone = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
            (db.engine.url.database,),
        ).fetchone()
    finally:
        admin.close()
    assert gone is not None and gone[0] >= 1
    time.sleep(IDLE_PING_AFTER + 0.3)
    with db.begin() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
