"""A deploy's cost: the previous server group a red/black deploy keeps through the soak, from the
stored stage data (as the engine stores it), priced by costs.rates; over the CLI and the API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from gennaker.store.db import open_database
from gennaker.store.tables import executions, stages
from tests.costs.conftest import Setup

Cli = Callable[..., tuple[int, str, str]]
T0 = 1_800_000_000.0


def stage(idx: int, stage_id: str, start: float, end: float, **fields: Any) -> dict[str, Any]:
    return {
        "execution_id": "ex1",
        "stage_id": stage_id,
        "idx": idx,
        "name": stage_id,
        "type": fields.pop("type"),
        "status": "SUCCEEDED",
        "requires": [],
        "dependents": [],
        "config": fields.pop("config", {}),
        "context": fields.pop("context", {}),
        "outputs": fields.pop("outputs", {}),
        "tasks": [],
        "started_at": start,
        "ended_at": end,
    }


def seed(db_path: str, strategy: str = "red_black", cleanup: bool = True) -> None:
    db = open_database(db_path)
    prev = {"name": "shop-web-v001", "capacity": {"min": 2, "max": 4, "desired": 3}}
    rows = [
        stage(
            0,
            "deploy-prod",
            T0,
            T0 + 600,
            type="deploy",
            config={"strategy": strategy, "instance_type": "t3.small", "capacity": {"desired": 3}},
            context={"server_group": "shop-web-v002", "previous": prev, "cluster": "shop-web"},
            outputs={"server_group": "shop-web-v002", "previous_server_group": "shop-web-v001"},
        ),
        stage(1, "soak", T0 + 600, T0 + 600 + 4 * 3600, type="wait"),
    ]
    if cleanup:
        rows.append(
            stage(
                2,
                "cleanup",
                T0 + 600 + 4 * 3600,
                T0 + 600 + 4 * 3600 + 1800,
                type="cleanup_server_groups",
                outputs={"destroyed": ["shop-web-v001"]},
            )
        )
    with db.begin() as conn:
        conn.execute(
            sa.insert(executions).values(
                id="ex1",
                pipeline="demo",
                application="shop",
                status="SUCCEEDED",
                trigger={},
                created_at=T0,
                started_at=T0,
                ended_at=T0 + 10 * 3600,
            )
        )
        conn.execute(sa.insert(stages), rows)
    db.dispose()


def test_red_black_with_soak_counts_the_kept_group_until_cleanup(setup: Setup, cli: Cli) -> None:
    setup.config("  rates: {t3.small: 0.0208}\n")
    seed(setup.db)
    rc, out, err = cli("costs", "--execution", "ex1", "--format", "json")
    assert rc == 0, err
    [row] = json.loads(out)
    assert (row["previous_server_group"], row["instances"], row["released_by"]) == ("shop-web-v001", 3, "cleanup")
    assert row["instance_hours"] == pytest.approx(3 * (600 + 4 * 3600 + 1800) / 3600)  # deploy, soak, cleanup: 14.0
    assert row["cost"] == pytest.approx(14 * 0.0208)
    rc, out, _ = cli("costs", "--execution", "ex1")
    assert rc == 0 and "cleanup" in out and "14.00" in out and "0.29" in out


def test_without_cleanup_the_group_counts_to_the_execution_end_and_no_rate_is_said(setup: Setup, cli: Cli) -> None:
    seed(setup.db, cleanup=False)
    [row] = json.loads(cli("costs", "--execution", "ex1", "--format", "json")[1])
    assert row["released_by"] == "execution end" and row["instance_hours"] == pytest.approx(30.0)
    assert row["rate"] is None and row["cost"] is None
    assert "no rate" in cli("costs", "--execution", "ex1")[1]


def test_highlander_releases_the_group_in_the_deploy(setup: Setup, cli: Cli) -> None:
    setup.config("  rates: {t3.small: 0.0208}\n")
    seed(setup.db, strategy="highlander")
    [row] = json.loads(cli("costs", "--execution", "ex1", "--format", "json")[1])
    assert row["released_by"] == "deploy-prod" and row["instance_hours"] == pytest.approx(3 * 600 / 3600)


def test_unknown_execution_is_one_line(cli: Cli) -> None:
    rc, out, err = cli("costs", "--execution", "nope")
    assert rc == 4 and out == "" and "execution 'nope' not found" in err


def test_api_scoped_to_the_executions_application(setup: Setup) -> None:
    from tests.costs.test_api import client_for

    seed(setup.db)
    for as_roles in client_for(setup, "  rates: {t3.small: 0.0208}\n"):
        r = as_roles(["shop:viewer"]).get("/api/executions/ex1/cost")
        assert r.status_code == 200 and r.json()[0]["cost"] == pytest.approx(14 * 0.0208)
        assert as_roles(["viewer"]).get("/api/executions/ex1/cost").status_code == 200
        other: TestClient = as_roles(["admin"])
        assert other.get("/api/executions/missing/cost").status_code == 404
