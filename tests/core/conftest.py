"""Fixtures for engine tests: a runtime on a fresh SQLite file (or a fresh PostgreSQL database, or
each in turn), a worker, and waiting helpers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from gennaker.engine import operations as ops
from gennaker.engine import views
from gennaker.engine.runner import EngineSettings
from gennaker.engine.worker import Worker
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import Config
from tests.conftest import fresh_postgres

FAST = EngineSettings(lease=3.0, heartbeat=0.5, worker_ttl=2.0, poll=0.02, self_check_every=1.0)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=Config(), settings=FAST)
    yield rt
    rt.db.dispose()


@pytest.fixture
def pg_runtime() -> Iterator[Runtime]:
    with fresh_postgres() as (_name, url):
        rt = build_runtime(url, config=Config(), settings=FAST)
        try:
            yield rt
        finally:
            rt.db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def each_db(request: pytest.FixtureRequest) -> Runtime:
    """The test once on SQLite and once on PostgreSQL (where the engine's statements differ)."""
    return request.getfixturevalue("runtime" if request.param == "sqlite" else "pg_runtime")


@contextmanager
def running_worker(rt: Runtime, threads: int = 4) -> Iterator[Worker]:
    """A worker of ``rt`` started for the block, stopped after it."""
    w = rt.worker(threads=threads)
    w.start()
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def worker(runtime: Runtime) -> Iterator[Worker]:
    with running_worker(runtime) as w:
        yield w


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def detail(rt: Runtime, execution_id: str) -> dict[str, Any]:
    with rt.db.read() as conn:
        return views.execution_detail(conn, execution_id)


def stage_status(rt: Runtime, execution_id: str) -> dict[str, str]:
    return {s["stage_id"]: s["status"] for s in detail(rt, execution_id)["stages"]}


def finished(rt: Runtime, execution_id: str, timeout: float = 30.0) -> dict[str, Any]:
    return wait_for(lambda: (d := detail(rt, execution_id)) and views.is_done(d["status"]) and d, timeout)


def start(rt: Runtime, tmp_path: Path, text: str, params: dict[str, Any] | None = None, actor: str = "tester") -> str:
    path = tmp_path / "pipeline.yml"
    path.write_text(text)
    pipeline = rt.load_pipeline(str(path))
    return ops.start_execution(rt.db, pipeline, params or {}, actor, base_dir=str(tmp_path))
