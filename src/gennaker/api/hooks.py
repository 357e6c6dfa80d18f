"""Hooks other systems call: ``POST /hooks/sns``, an SNS HTTP(S) subscription carrying CloudWatch
alarm changes into incidents.

No login: a delivery is authenticated by its signature (``gennaker.ops.incidents.sns``). The body is
bounded (``incidents.sns.max_body``), and everything refused is answered with one line and a 4xx
before anything is stored; a verified alarm change is stored by ``record_transition`` (a duplicate
delivery answers 200 ``duplicate`` and stores nothing twice).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import replace
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gennaker.ops.incidents.intake import record_transition
from gennaker.ops.incidents.poller import alarm_tags
from gennaker.ops.incidents.settings import IncidentSettings
from gennaker.ops.incidents.sns import SnsRefused, Verifier, alarm_transition, confirm, parse
from gennaker.runtime import Runtime

router = APIRouter(tags=["hooks"])
log = logging.getLogger("gennaker.incidents")


def _loopback(request: Request) -> bool:
    """The TCP peer (never a forwarded-for header) is this machine."""
    peer = request.scope.get("client") or ("", 0)
    try:
        return ipaddress.ip_address(str(peer[0])).is_loopback
    except ValueError:
        return False


def _verifier(request: Request, settings: IncidentSettings) -> Verifier:
    verifier = getattr(request.app.state, "sns_verifier", None)
    if not isinstance(verifier, Verifier):
        verifier = Verifier(settings.sns)
        request.app.state.sns_verifier = verifier  # its certificate cache lives as long as the app
    return verifier


def _refused(exc: SnsRefused) -> JSONResponse:
    return JSONResponse({"error": "Refused", "message": str(exc)}, status_code=exc.status)


@router.post(
    "/hooks/sns",
    summary="SNS HTTP(S) endpoint: confirms subscriptions, takes CloudWatch alarm changes into incidents",
    responses={400: {"description": "malformed"}, 403: {"description": "unsigned or badly signed"}, 413: {}},
)
async def sns_hook(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    settings = runtime.incidents
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.sns.max_body:
        return _refused(SnsRefused(413, f"an SNS message is at most {settings.sns.max_body} bytes"))
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.sns.max_body:
            return _refused(SnsRefused(413, f"an SNS message is at most {settings.sns.max_body} bytes"))
    loopback = _loopback(request)
    verifier = _verifier(request, settings)
    try:
        result = await to_thread.run_sync(_take, runtime, verifier, body, loopback)
    except SnsRefused as exc:
        log.warning("SNS delivery refused (%s): %s", exc.status, exc)
        return _refused(exc)
    return JSONResponse(result)


def _take(runtime: Runtime, verifier: Verifier, body: bytes, loopback: bool) -> dict[str, Any]:
    settings = runtime.incidents
    message = parse(body)
    topics = settings.sns.topics
    if topics is not None and message["TopicArn"] not in topics:
        raise SnsRefused(403, f"topic {message['TopicArn'][:200]} is not one of incidents.sns.topics")
    verified = verifier.verify(message, loopback=loopback)
    kind = message["Type"]
    if kind == "SubscriptionConfirmation":
        confirm(message, settings.sns, loopback=loopback)
        log.info("confirmed the SNS subscription to %s", message["TopicArn"])
        return {"type": kind, "confirmed": True, "verified": verified}
    if kind == "UnsubscribeConfirmation":
        return {"type": kind, "verified": verified}
    accounts = {a.account_id: name for name, a in runtime.config.accounts.items() if a.account_id}
    transition = alarm_transition(message, accounts)
    account = transition.account
    if account in runtime.config.accounts and runtime.config.accounts[account].kind == "aws" and transition.region:
        try:  # the rules match alarm tags, which SNS messages do not carry
            tags = alarm_tags(runtime.services, account, transition.region, transition.alarm)
        except Exception as exc:  # the transition is taken without them, and why is logged
            log.warning("reading the tags of alarm %s failed: %s", transition.alarm, exc)
            tags = {}
        transition = replace(transition, tags=tags)
    with runtime.db.begin() as conn:
        result = record_transition(conn, transition, settings)
    return {
        "type": kind,
        "verified": verified,
        "outcome": result.outcome,
        "incident": result.incident_id,
        "detail": result.detail,
    }
