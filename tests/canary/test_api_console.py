"""The canary API and report page over HTTP, with access control on: reads are scoped to the
caller's applications (404 outside them), the page draws every metric's series as inline SVG."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gennaker.api.app import create_app
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import Config
from gennaker.web import store
from gennaker.web.security import hash_password
from tests.canary.seed import seed_analysis
from tests.web.conftest import LOCAL, PASSWORD

USERS = {"vic": ["shop:viewer"], "oscar": ["other:viewer"]}


@dataclass
class Site:
    rt: Runtime
    client: TestClient
    tokens: dict[str, str]
    good: str
    bad: str

    def get(self, user: str | None, path: str) -> object:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return self.client.get(path, headers=headers)


def _runtime(db: str) -> Runtime:
    users = {name: {"password_hash": hash_password(PASSWORD), "roles": roles} for name, roles in USERS.items()}
    return build_runtime(db, config=Config(auth={"secret_key": "k" * 40, "secure_cookies": False, "users": users}))


@contextmanager
def console(db: str) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The console and API on ``db``, and the headers of a shop viewer."""
    rt = _runtime(db)
    token = store.create_token(rt.db, "vic-console", "vic", USERS["vic"], "fixture")["token"]
    try:
        with TestClient(create_app(rt, with_worker=False), base_url=LOCAL) as client:
            yield client, {"Authorization": f"Bearer {token}"}
    finally:
        rt.db.dispose()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    rt = _runtime(str(tmp_path / "g.db"))
    tokens = {u: store.create_token(rt.db, f"{u}-t", u, roles, "fixture")["token"] for u, roles in USERS.items()}
    good = seed_analysis(rt.db, execution_id="e-good")
    bad = seed_analysis(rt.db, bad=True, execution_id="e-bad")
    with TestClient(create_app(rt, with_worker=False), base_url=LOCAL) as client:
        yield Site(rt, client, tokens, good, bad)
    rt.db.dispose()


def test_the_api_lists_and_shows_analyses_of_readable_applications(site: Site) -> None:
    listed = site.get("vic", "/api/canary/analyses?execution=e-bad")
    assert listed.status_code == 200, listed.text  # type: ignore[attr-defined]
    assert [a["id"] for a in listed.json()] == [site.bad]  # type: ignore[attr-defined]
    shown = site.get("vic", f"/api/canary/analyses/{site.bad}").json()  # type: ignore[attr-defined]
    assert (shown["result"], shown["score"], [j["index"] for j in shown["judgements"]]) == ("fail", 0.0, [1, 2])
    errors = shown["judgements"][1]["metrics"][0]
    assert errors["name"] == "errors" and errors["label"] == "High" and len(errors["canary"]["v"]) == 12
    # Another application's reader sees nothing, and cannot tell that the id exists.
    assert site.get("oscar", "/api/canary/analyses").json() == []  # type: ignore[attr-defined]
    hidden = site.get("oscar", f"/api/canary/analyses/{site.bad}")
    missing = site.get("oscar", "/api/canary/analyses/nope")
    assert hidden.status_code == missing.status_code == 404  # type: ignore[attr-defined]
    assert site.get(None, "/api/canary/analyses").status_code == 401  # type: ignore[attr-defined]


def test_the_api_is_described_in_openapi(site: Site) -> None:
    paths = site.get("vic", "/openapi.json").json()["paths"]  # type: ignore[attr-defined]
    assert "/api/canary/analyses" in paths and "/api/canary/analyses/{analysis_id}" in paths
    assert "AnalysisDetail" in str(paths["/api/canary/analyses/{analysis_id}"])


def test_the_report_page_draws_every_metric(site: Site) -> None:
    page = site.get("vic", f"/canary/{site.bad}")
    assert page.status_code == 200, page.text  # type: ignore[attr-defined]
    html = page.text  # type: ignore[attr-defined]
    assert 'data-testid="score">0<' in html and "FAIL" in html
    assert html.count('data-testid="interval"') == 2 and html.count('data-testid="metric"') == 4
    assert html.count("<svg") >= 4 and html.count('data-testid="canary-line"') == 4
    assert "critical metric failed: errors (High)" in html
    assert "style=" not in html.split("<main", 1)[-1]  # the CSP forbids inline styles
    assert site.get("oscar", f"/canary/{site.bad}").status_code == 404  # type: ignore[attr-defined]
