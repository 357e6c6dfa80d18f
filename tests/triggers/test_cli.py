"""The CLI shows what starts each pipeline, when it last fired, and every delivery with its outcome;
the console's execution rows say how each execution was started."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from gennaker.api.app import create_app
from gennaker.runtime import build_runtime
from tests.conftest import admin_client
from tests.core.test_cli import gk

DOC = """name: shop-ci
application: shop
triggers:
  - {type: git, provider: github, repository: acme/shop, branches: [main], secret_env: SHOP_SECRET}
  - {type: cron, schedule: "0 3 * * *", timezone: Europe/Berlin}
stages:
  - {id: build, type: run, command: 'echo "::output c=$C"', env: {C: "${trigger.commit}"}}
"""


def test_pipelines_list_deliveries_and_the_console_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_SECRET", "k")
    db = f"sqlite:///{tmp_path / 'g.db'}"
    doc = tmp_path / "shop.yml"
    doc.write_text(DOC)
    assert gk(db, "pipelines", "register", str(doc)).returncode == 0
    app = create_app(build_runtime(db))
    with admin_client(app) as c:
        for delivery, secret in (("d1", "k"), ("d2", "forged")):
            body = json.dumps(
                {
                    "ref": "refs/heads/main",
                    "after": "abc1234def",
                    "repository": {"full_name": "acme/shop"},
                    "head_commit": {"message": "m", "author": {"username": "alice"}},
                }
            ).encode()
            sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            c.post(
                "/hooks/git/github",
                content=body,
                headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sig},
            )
        page = c.get("/applications/shop/pipelines").text
    assert "Push abc1234 by alice" in page
    assert "Triggers: push to acme/shop (github) on main · cron 0 3 * * * (Europe/Berlin)" in page
    assert "last: push abc1234 by alice" in page

    listed = gk(db, "pipelines", "list")
    assert listed.returncode == 0, listed.stderr
    assert "trigger: push to acme/shop (github) on main" in listed.stdout
    assert "trigger: cron 0 3 * * * (Europe/Berlin)" in listed.stdout
    assert "last fired: push abc1234 by alice" in listed.stdout

    shown = gk(db, "triggers", "deliveries", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert [(r["outcome"], r["http_status"]) for r in rows] == [("refused", 401), ("started", 202)]
    table = gk(db, "triggers", "deliveries", "--outcome", "refused")
    assert "signature matches no trigger" in " ".join(table.stdout.split())
