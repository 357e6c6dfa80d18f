"""Publishing to an SNS topic (notifications' ``sns`` channel), with a configured account's credentials.

The client is built for one short call: the channel's timeout for connecting and reading and no
botocore retries, because the delivery job retries with backoff and records every attempt itself.
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from gennaker.cloud.aws.session import AwsSessions, error_code

# Codes that will not change by trying again (the topic, the permissions or the request is wrong).
_PERMANENT = {
    "NotFound",
    "NotFoundException",
    "AuthorizationError",
    "InvalidParameter",
    "InvalidParameterValue",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "EndpointDisabled",
}


class PublishError(Exception):
    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class SnsPublisher:
    """One client per (account, region, timeout), built on first use."""

    def __init__(self, sessions: AwsSessions):
        self.sessions = sessions
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str, float], Any] = {}

    def _client(self, account: str, region: str, timeout: float) -> Any:
        key = (account, region, timeout)
        with self._lock:
            if key not in self._clients:
                acct = self.sessions.account(account)
                config = BotoConfig(
                    connect_timeout=timeout, read_timeout=timeout, retries={"mode": "standard", "max_attempts": 1}
                )
                self._clients[key] = self.sessions.session(account).client(
                    "sns", region_name=region, endpoint_url=acct.endpoint_url, config=config
                )
            return self._clients[key]

    def publish(
        self,
        account: str,
        topic_arn: str,
        subject: str,
        message: str,
        attributes: dict[str, str],
        timeout: float,
        region: str | None = None,
    ) -> str:
        """Publish and return the MessageId; ``PublishError`` says whether a retry could help."""
        where = region or topic_arn.split(":")[3]
        clean_subject = " ".join(subject.split())[:100] or "gennaker"  # SNS: ≤ 100 characters, one line
        try:
            resp = self._client(account, where, timeout).publish(
                TopicArn=topic_arn,
                Subject=clean_subject,
                Message=message[:250_000],
                MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items() if v},
            )
        except ClientError as exc:
            code = error_code(exc)
            msg = exc.response.get("Error", {}).get("Message", "")
            raise PublishError(f"SNS Publish: {code}: {msg}"[:300], retryable=code not in _PERMANENT) from None
        except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as exc:
            raise PublishError(f"SNS Publish: {type(exc).__name__}: {exc}", retryable=True) from None
        except BotoCoreError as exc:  # no credentials, a bad region: trying again will not help
            raise PublishError(f"SNS Publish: {type(exc).__name__}: {exc}", retryable=False) from None
        return str(resp.get("MessageId", ""))
