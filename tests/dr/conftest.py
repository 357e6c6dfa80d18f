"""Fixtures for DR drills: simulated AWS with the sandbox's two regions, a database, services."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from gennaker.cloud.aws.session import AwsSessions
from gennaker.sandbox.server import config_text
from gennaker.spec.config import Config, config_from_text
from gennaker.store.db import Database, open_database
from tests.dr.seed import DrWorld, seed_dr

ACCOUNT = "sandbox"


@pytest.fixture
def config(moto_endpoint: str) -> Config:
    return config_from_text(config_text(moto_endpoint))


@pytest.fixture
def sessions(config: Config) -> AwsSessions:
    return AwsSessions(config, max_attempts=3)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_database(f"sqlite:///{tmp_path / 'g.db'}")


@pytest.fixture
def services(config: Config, sessions: AwsSessions, db: Database) -> SimpleNamespace:
    return SimpleNamespace(config=config, aws=sessions, db=db)


@pytest.fixture
def world(sessions: AwsSessions) -> DrWorld:
    return seed_dr(sessions, ACCOUNT)
