"""Starting a drill from a browser session is a mutation like the others: a viewer is refused, an
operator needs the session's CSRF token and our Origin; a drill of another application is not
readable through the console's report page."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from gennaker.api.app import create_app
from gennaker.ops.dr import store
from gennaker.runtime import build_runtime
from tests.web.conftest import LOCAL, auth_config
from tests.web.test_access import sign_in

BODY = {"account": "prod", "from_region": "us-east-1", "to_region": "us-west-2"}
PATH = "/api/applications/shop/dr/drills"


def test_session_starts_need_operator_csrf_and_origin(tmp_path: Path) -> None:
    rt = build_runtime(str(tmp_path / "g.db"), config=auth_config())
    with rt.db.begin() as conn:
        billing = store.start_drill(conn, application="billing", account="prod", scenario="region_loss",
                                    from_region="us-east-1", to_region="us-west-2", objectives={})  # fmt: skip
    app = create_app(rt)
    with TestClient(app, base_url=LOCAL) as vic:
        csrf = sign_in(vic, "vic")
        assert vic.post(PATH, json=BODY, headers={"X-CSRF-Token": csrf}).status_code == 403
        assert vic.get(f"/applications/shop/dr/{billing}").status_code == 404  # another app's drill
        assert vic.get(f"/applications/billing/dr/{billing}").status_code == 403
        assert vic.get(f"/api/dr/drills/{billing}").status_code == 404
    with TestClient(app, base_url=LOCAL) as olga:
        csrf = sign_in(olga, "olga")
        assert olga.post(PATH, json=BODY).status_code == 403  # the cookie alone: no CSRF token
        evil = olga.post(PATH, json=BODY, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"})
        assert evil.status_code == 403
        ok = olga.post(PATH, json=BODY, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 422 and "unknown account" in ok.text  # through the gate, then checked
