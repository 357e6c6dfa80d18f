"""Nothing in a drill's report, its row or its log shows the account's credentials: an endpoint URL
with a key in it (botocore names the URL in its connection errors), or the static keys."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.dr.service import drill_config, run_in_process
from gennaker.sandbox.server import config_text
from gennaker.spec.config import config_from_text
from gennaker.store.db import open_database

SECRET = "s3cr3tKEYinTheURL"


def test_credentials_in_the_endpoint_url_are_not_in_the_report(tmp_path: Path) -> None:
    config = config_from_text(config_text(f"http://AKIAUSER:{SECRET}@127.0.0.1:1"))
    services = SimpleNamespace(
        config=config, aws=AwsSessions(config, max_attempts=1), db=open_database(f"sqlite:///{tmp_path / 'g.db'}")
    )
    lines: list[str] = []
    cfg = drill_config(account="sandbox", application="shop", from_region="us-east-1", to_region="us-west-2")
    row = run_in_process(services, cfg, log=lines.append, sleep=lambda _s: None)
    assert row["status"] == "FAILED"
    shown = json.dumps(row, default=str) + "\n".join(lines)
    assert "127.0.0.1:1" in shown  # the reason is still there, without its key
    assert SECRET not in shown, shown[:2000]
    acct = config.account("sandbox")
    assert acct.aws_secret_access_key and acct.aws_secret_access_key not in shown
