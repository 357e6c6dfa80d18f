"""boto3 clients per (account, region, service), with retries, role assumption and clear errors.

Every client handed out is wrapped: a failed call raises CloudError naming the call, account,
region and AWS error code, and each call is counted per service (benchmarks report calls per deploy
and per audit). Nothing here is global: callers create one ``AwsSessions`` and pass it down.

Retries are botocore's (adaptive mode), bounded per (account, region, service) by a ``RetryBudget``:
a service that keeps failing in one account and region (throttled, 5xx, not offered there) would
otherwise spend botocore's whole back-off ladder on every call, which is most of an audit's time.
Once its budget is spent, calls to it are tried once and fail fast; any other answer refills it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError
from botocore.retries.standard import RetryContext, StandardRetryConditions

from gennaker.errors import CloudError
from gennaker.spec.config import Account, Config


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "Unknown"))
    return type(exc).__name__


Key = tuple[str, str, str]  # (account name, region, service)


@dataclass(frozen=True)
class RetryBudget:
    """What one (account, region, service) may spend on retries while it keeps failing: at most
    ``retries`` retries, and none once ``seconds`` have passed since its first failure in a row.
    An answer that is not a retryable failure (a success, or an error such as AccessDenied: the
    service is there) refills it, and so does ``refill_after`` seconds without a failure."""

    retries: int = 3
    seconds: float = 10.0
    refill_after: float = 60.0


class RetryBudgetExhausted(BotoCoreError):
    """Raised from botocore's needs-retry event instead of another retry: the call fails fast."""

    fmt = (
        "retry budget for {service} in {account}/{region} is exhausted "
        "({retries} retries in {elapsed:.1f} s); last error: {last}"
    )


@dataclass
class _Streak:
    """Retryable failures in a row of one key."""

    started: float
    last_at: float
    last_code: str = ""
    last_error: str = ""
    retries: int = 0


class RetryLedger:
    """Retry budgets per (account, region, service), shared by the threads that collect."""

    def __init__(self, budget: RetryBudget, clock: Callable[[], float] = time.monotonic):
        self.budget = budget
        self._clock = clock
        self._lock = threading.Lock()
        self._streaks: dict[Key, _Streak] = {}
        self.exhausted: Counter[Key] = Counter()  # retries refused per key (benchmarks and tests read it)
        self.retries: Counter[Key] = Counter()  # retries allowed per key

    def answered(self, key: Key) -> None:
        with self._lock:
            self._streaks.pop(key, None)

    def failed(self, key: Key, code: str, error: str, final: bool) -> None:
        """Record one retryable failure; raise RetryBudgetExhausted when botocore would retry it
        (``final`` is False) but the key's budget is spent."""
        now = self._clock()
        with self._lock:
            streak = self._streaks.get(key)
            if streak is None or now - streak.last_at > self.budget.refill_after:
                streak = self._streaks[key] = _Streak(started=now, last_at=now)
            streak.last_at, streak.last_code, streak.last_error = now, code, error
            if final:
                return
            elapsed = now - streak.started
            if streak.retries < self.budget.retries and elapsed < self.budget.seconds:
                streak.retries += 1
                self.retries[key] += 1
                return
            self.exhausted[key] += 1
            retries = streak.retries
        account, region, service = key
        raise RetryBudgetExhausted(
            service=service, account=account, region=region, retries=retries, elapsed=elapsed, last=error, code=code
        )

    def state(self, key: Key) -> tuple[int, str] | None:
        """(retries spent, last error) of a key failing now; None when it is not."""
        with self._lock:
            streak = self._streaks.get(key)
            return (streak.retries, streak.last_error) if streak else None


def _budget_hook(ledger: RetryLedger, key: Key, total_attempts: int) -> Callable[..., None]:
    """A needs-retry handler that asks botocore's own standard conditions whether this attempt's
    answer is one botocore retries, and charges it to the key's budget. Registered last, so
    botocore's retry and rate-limit handlers have seen the answer before it may refuse the retry."""
    retryable = StandardRetryConditions(max_attempts=sys.maxsize)  # the kind of answer, not the count

    def needs_retry(
        response: Any, attempts: int, operation: Any, caught_exception: Any, request_dict: Any, **_: Any
    ) -> None:
        http, parsed = response if response is not None else (None, None)
        ctx = RetryContext(attempts, operation, parsed, http, caught_exception, request_dict.get("context"))
        if not retryable.is_retryable(ctx):
            ledger.answered(key)
            return
        if caught_exception is not None:
            code, error = type(caught_exception).__name__, f"{type(caught_exception).__name__}: {caught_exception}"
        else:
            err = (parsed or {}).get("Error", {}) if isinstance(parsed, dict) else {}
            code = str(err.get("Code") or getattr(http, "status_code", "") or "Unknown")
            status = getattr(http, "status_code", "?")
            error = f"{code}: {err.get('Message') or f'HTTP {status}'}"
        ledger.failed(key, code, error, final=attempts >= total_attempts)

    return needs_retry


def _budget_error(exc: RetryBudgetExhausted, call: str) -> CloudError:
    # The code stays the last AWS error's (callers that retry throttling at their own level, or
    # read "not offered here" codes, keep working); the message says why it failed this fast.
    kw = exc.kwargs
    return CloudError(call, kw["account"], kw["region"], kw["code"], str(exc))


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
            except RetryBudgetExhausted as exc:
                raise _budget_error(exc, name) from exc
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
        except RetryBudgetExhausted as exc:
            raise _budget_error(exc, operation) from exc
        except ClientError as exc:
            msg = exc.response.get("Error", {}).get("Message", str(exc))
            raise CloudError(operation, self.account, self.region, error_code(exc), msg) from exc
        except (BotoCoreError, ResponseParserError) as exc:
            raise CloudError(operation, self.account, self.region, type(exc).__name__, str(exc)) from exc


class AwsSessions:
    """Hands out wrapped clients; caches one boto3 session per account and one client per triple."""

    def __init__(
        self,
        config: Config,
        max_attempts: int = 8,
        max_pool: int = 20,
        retry_budget: RetryBudget | None = RetryBudget(),  # frozen: safe as a default
    ):
        self.config = config
        # None: botocore's retries alone (benchmarks compare with and without the budget).
        self.retry_ledger = RetryLedger(retry_budget) if retry_budget else None
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
            # In the account's first region: a fresh machine has no default region, and STS answers
            # regionally (the global endpoint is only us-east-1's alias).
            region = acct.regions[0] if acct.regions else "us-east-1"
            sts = base.client("sts", region_name=region, endpoint_url=acct.endpoint_url, config=self._boto_config)
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
        if self.retry_ledger is not None:
            total = int(raw.meta.config.retries.get("total_max_attempts", 1))
            raw.meta.events.register_last(
                "needs-retry", _budget_hook(self.retry_ledger, key, total), unique_id="gennaker-retry-budget"
            )
        wrapped = AwsClient(raw, account_name, region, self.calls, self._lock)
        with self._lock:
            return self._clients.setdefault(key, wrapped)
