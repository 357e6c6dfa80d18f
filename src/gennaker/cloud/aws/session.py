"""boto3 clients per (account, region, service), with retries, role assumption and clear errors.

Every client handed out is wrapped: a failed call raises CloudError naming the call, account,
region and AWS error code, and each call is counted per service (benchmarks report calls per deploy
and per audit). Nothing here is global: callers create one ``AwsSessions`` and pass it down.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from gennaker.errors import CloudError
from gennaker.spec.config import Account, Config


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "Unknown"))
    return type(exc).__name__


def _strip_account_host(endpoint_url: str) -> Callable[..., None]:
    """S3 Control puts the account id in the host name (``123456789012.s3-control…``), which has no
    DNS behind a custom endpoint (simulated AWS, a proxy): send the request to the endpoint itself;
    the account still travels in the ``x-amz-account-id`` header."""
    endpoint = urlsplit(endpoint_url)

    def rewrite(request: Any, **_: Any) -> None:
        url = urlsplit(request.url)
        if (
            url.hostname
            and url.hostname != endpoint.hostname
            and url.hostname.endswith("." + (endpoint.hostname or ""))
        ):
            request.url = urlunsplit(url._replace(netloc=endpoint.netloc))

    return rewrite


class AwsClient:
    """A boto3 client whose calls raise CloudError and are counted."""

    def __init__(self, raw: Any, account: str, region: str, counter: Counter[str], lock: threading.Lock):
        self.raw = raw
        self.account = account
        self.region = region
        self._counter = counter
        self._lock = lock
        self.service = raw.meta.service_model.service_name

    def _count(self, op: str) -> None:
        with self._lock:
            self._counter[f"{self.service}.{op}"] += 1

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.raw, name)
        if not callable(method) or name.startswith("_") or name in {"can_paginate", "get_waiter"}:
            return method  # type: ignore[no-any-return,unused-ignore]

        def call(*args: Any, **kwargs: Any) -> Any:
            self._count(name)
            try:
                return method(*args, **kwargs)
            except ClientError as exc:
                msg = exc.response.get("Error", {}).get("Message", str(exc))
                raise CloudError(name, self.account, self.region, error_code(exc), msg) from exc
            except (BotoCoreError, ResponseParserError) as exc:  # a non-AWS answer (proxy, 5xx HTML) too
                raise CloudError(name, self.account, self.region, type(exc).__name__, str(exc)) from exc

        return call

    def paginate(self, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
        """Yield the items under ``key`` from every page of ``operation``; one counted call per page."""
        paginator = self.raw.get_paginator(operation)
        pages = paginator.paginate(**kwargs)
        try:
            for page in pages:
                self._count(operation)
                yield from page.get(key, [])
        except ClientError as exc:
            msg = exc.response.get("Error", {}).get("Message", str(exc))
            raise CloudError(operation, self.account, self.region, error_code(exc), msg) from exc
        except (BotoCoreError, ResponseParserError) as exc:
            raise CloudError(operation, self.account, self.region, type(exc).__name__, str(exc)) from exc


class AwsSessions:
    """Hands out wrapped clients; caches one boto3 session per account and one client per triple."""

    def __init__(self, config: Config, max_attempts: int = 8, max_pool: int = 20):
        self.config = config
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._create_lock = threading.RLock()  # boto3 sessions are not safe to build clients from concurrently
        self._sessions: dict[str, boto3.session.Session] = {}
        self._clients: dict[tuple[str, str, str], AwsClient] = {}
        self._boto_config = BotoConfig(
            retries={"mode": "adaptive", "max_attempts": max_attempts},
            max_pool_connections=max_pool,
            connect_timeout=10,
            read_timeout=60,
        )
        self._hooks: list[Callable[[Any], None]] = []

    def add_client_hook(self, hook: Callable[[Any], None]) -> None:
        """Run ``hook(raw_client)`` on each new client (tests inject faults through botocore events)."""
        self._hooks.append(hook)

    def account(self, name: str) -> Account:
        return self.config.account(name)

    def session(self, account_name: str) -> boto3.session.Session:
        with self._lock:
            cached = self._sessions.get(account_name)
        if cached is not None:
            return cached
        acct = self.config.account(account_name)
        if acct.profile:
            base = boto3.session.Session(profile_name=acct.profile)
        elif acct.aws_access_key_id:
            base = boto3.session.Session(
                aws_access_key_id=acct.aws_access_key_id, aws_secret_access_key=acct.aws_secret_access_key
            )
        else:
            base = boto3.session.Session()
        session = base
        if acct.role_arn:
            sts = base.client("sts", endpoint_url=acct.endpoint_url, config=self._boto_config)
            kwargs: dict[str, Any] = {"RoleArn": acct.role_arn, "RoleSessionName": "gennaker"}
            if acct.external_id:
                kwargs["ExternalId"] = acct.external_id
            try:
                creds = sts.assume_role(**kwargs)["Credentials"]
            except ClientError as exc:
                msg = exc.response.get("Error", {}).get("Message", str(exc))
                raise CloudError("AssumeRole", account_name, "global", error_code(exc), msg) from exc
            session = boto3.session.Session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
            )
        with self._lock:
            return self._sessions.setdefault(account_name, session)

    def client(self, account_name: str, region: str, service: str) -> AwsClient:
        key = (account_name, region, service)
        with self._lock:
            cached = self._clients.get(key)
        if cached is not None:
            return cached
        with self._create_lock:
            with self._lock:
                cached = self._clients.get(key)
            try:
                return cached or self._create_client(key)
            except (BotoCoreError, ResponseParserError) as exc:  # e.g. a profile that does not exist
                raise CloudError("CreateClient", account_name, region, type(exc).__name__, str(exc)) from exc

    def _create_client(self, key: tuple[str, str, str]) -> AwsClient:
        account_name, region, service = key
        acct = self.config.account(account_name)
        boto_config = self._boto_config
        if acct.max_attempts is not None:
            boto_config = boto_config.merge(BotoConfig(retries={"mode": "adaptive", "max_attempts": acct.max_attempts}))
        if acct.endpoint_url:
            # Behind a custom endpoint (simulated AWS, a proxy) there is no DNS for account-prefixed
            # hosts such as 123456789012.s3-control…: send every call to the endpoint itself.
            boto_config = boto_config.merge(BotoConfig(inject_host_prefix=False))
        raw = self.session(account_name).client(
            service, region_name=region, endpoint_url=acct.endpoint_url, config=boto_config
        )
        if acct.endpoint_url and service == "s3control":
            raw.meta.events.register("before-send.s3-control", _strip_account_host(acct.endpoint_url))
        for hook in self._hooks:
            hook(raw)
        wrapped = AwsClient(raw, account_name, region, self.calls, self._lock)
        with self._lock:
            return self._clients.setdefault(key, wrapped)
