"""Assuming an account's role works without a default region in the environment: the STS client is
created in the account's first region (a user on a fresh machine has no AWS_DEFAULT_REGION)."""

from __future__ import annotations

import pytest

from gennaker.cloud.aws.session import AwsSessions
from gennaker.spec.config import config_from_text


def test_a_role_is_assumed_with_no_default_region(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    config = config_from_text(
        f"""accounts:
  member:
    regions: [eu-west-1]
    endpoint_url: {moto_endpoint}
    role_arn: arn:aws:iam::111122223333:role/gennaker
"""
    )
    sessions = AwsSessions(config, max_attempts=2)
    identity = sessions.client("member", "eu-west-1", "sts").get_caller_identity()
    assert identity["Account"] == "111122223333"  # moto answers as the assumed role's account
