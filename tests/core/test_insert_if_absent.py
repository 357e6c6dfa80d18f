"""Insert-if-absent answers "was it new?" on both databases. On PostgreSQL, ``rowcount`` of an INSERT …
ON CONFLICT DO NOTHING through SQLAlchemy is -1 (it adds RETURNING for the primary key), so a check
of ``rowcount == 1`` said "not new" for every first insert: no delivery was ever sent there."""

from __future__ import annotations

import time

import pytest

from gennaker.engine import jobs
from gennaker.ops.notifications import Notice, enqueue
from gennaker.runtime import Runtime


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_schedule_and_enqueue_know_what_is_new(backend: str, runtime: Runtime, request: pytest.FixtureRequest) -> None:
    rt: Runtime = runtime if backend == "sqlite" else request.getfixturevalue("pg_runtime")
    with rt.db.begin() as conn:
        assert jobs.schedule(conn, "k", "job-1", {}, time.time()) is True
        assert jobs.schedule(conn, "k", "job-1", {}, time.time()) is False
        notice = Notice(
            event="pipeline.failed", title="t", text="x", link=None, application="shop", fields={}, severity=None
        )
        [first] = enqueue(conn, ["ops"], notice, "n-1")
        assert enqueue(conn, ["ops"], notice, "n-1") == [first]
        job = jobs.get(conn, f"notify:{first}")
    assert job is not None and job["status"] == jobs.PENDING  # the delivery will be sent
