"""/api/dr reads are scoped to the caller's applications (another's drill is a 404, as an unknown
id is) and starting a drill needs the operator role on the application."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from gennaker.api.app import create_app
from gennaker.ops.dr import store
from gennaker.runtime import build_runtime
from gennaker.web import store as web_store
from tests.web.conftest import LOCAL, auth_config


def test_reads_are_scoped_and_starting_needs_operator(tmp_path: Path) -> None:
    rt = build_runtime(str(tmp_path / "g.db"), config=auth_config())
    with rt.db.begin() as conn:
        ids = {
            app: store.start_drill(conn, application=app, account="prod", scenario="region_loss",
                                   from_region="us-east-1", to_region="us-west-2", objectives={})
            for app in ("shop", "billing")
        }  # fmt: skip
    tokens = {
        user: web_store.create_token(rt.db, user, user, roles, "test")["token"]
        for user, roles in {"vic": ["shop:viewer"], "olga": ["shop:operator"], "alice": ["admin"]}.items()
    }
    body = {"account": "prod", "from_region": "us-east-1", "to_region": "us-west-2"}
    with TestClient(create_app(rt), base_url=LOCAL) as client:

        def as_(user: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[user]}"}

        assert [d["application"] for d in client.get("/api/dr/drills", headers=as_("vic")).json()] == ["shop"]
        assert client.get(f"/api/dr/drills/{ids['shop']}", headers=as_("vic")).status_code == 200
        assert client.get(f"/api/dr/drills/{ids['billing']}", headers=as_("vic")).status_code == 404
        everything = client.get("/api/dr/drills", headers=as_("alice")).json()
        assert sorted(d["application"] for d in everything) == ["billing", "shop"]
        assert client.post("/api/applications/shop/dr/drills", json=body, headers=as_("vic")).status_code == 403
        assert client.post("/api/applications/billing/dr/drills", json=body, headers=as_("olga")).status_code == 403
        unknown = client.post("/api/applications/shop/dr/drills", json=body, headers=as_("olga"))
        assert unknown.status_code == 422 and "unknown account" in unknown.text  # operator: allowed, then checked
