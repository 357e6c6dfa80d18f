"""A delivery in, an answer out: which pipelines a push or a webhook starts, or why none.

Every delivery is recorded with its outcome. The order of the checks is the order a sender can fix
things in: is the payload readable, does any registered pipeline listen to this repository or
source (404), does the signature match one of their secrets (401), does the push pass their filters
(422). A redelivery of an accepted delivery starts nothing again (200, ``duplicate``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from gennaker.errors import GennakerError
from gennaker.spec.triggers import GitTrigger, WebhookTrigger
from gennaker.store.db import Database
from gennaker.triggers import git
from gennaker.triggers.fire import Catalog, Fired, fire, record_delivery

ACTOR = "trigger"


@dataclass
class Answer:
    status: int
    outcome: str  # started, duplicate, ignored, refused
    reason: str | None = None
    fired: list[Fired] = field(default_factory=list)
    delivery_id: str | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outcome": self.outcome, "delivery": self.delivery_id}
        if self.reason:
            out["reason"] = self.reason
        if self.fired:
            out["executions"] = [f.as_dict() for f in self.fired if f.execution_id]
        return out


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise git.Refused(400, f"the payload is not JSON: {str(exc)[:200]}") from None


def _secret(env: str) -> str | None:
    return os.environ.get(env) or None


def receive_git(db: Database, catalog: Catalog, provider: str, headers: dict[str, str], body: bytes) -> Answer:
    source = provider
    key = git.delivery_id(provider, headers, body)
    summary: dict[str, Any] = {}
    try:
        if provider not in ("github", "gitlab", "generic"):
            raise git.Refused(404, f"unknown git provider '{provider[:50]}' (github, gitlab or generic)")
        event = git.event_of(provider, headers)
        if event == "ping":
            return _answer(db, "git", source, Answer(200, "ignored", "ping: nothing to build"), key, summary)
        if event not in ("push", "push hook"):
            raise git.Refused(422, f"event '{event[:50]}' is not a push")
        push = git.read_push(provider, _json(body))
        source = f"{provider}/{push.repository}"
        summary = {**push.values(), "paths": len(push.paths)}
        with db.read() as conn:
            listening = [
                (p, t)
                for p, _, t in catalog.with_triggers(conn, "git")
                if isinstance(t, GitTrigger)
                and t.provider == provider
                and t.repository.lower() == push.repository.lower()
            ]
        if not listening:
            raise git.Refused(404, f"no registered pipeline has a {provider} git trigger for '{push.repository}'")
        unset = sorted({t.secret_env for _, t in listening if _secret(t.secret_env) is None})
        signed = [
            (p, t) for p, t in listening if (s := _secret(t.secret_env)) and git.authentic(provider, s, body, headers)
        ]
        if not signed:
            why = f" ({', '.join(unset)} not set on the server)" if unset else ""
            raise git.Refused(401, f"the delivery's signature matches no trigger of '{push.repository}'{why}")
        if push.deleted:
            raise git.Refused(422, f"branch '{push.branch}' was deleted: nothing to build")
        wanted = [(p, t) for p, t in signed if t.wants_branch(push.branch) and t.wants_paths(push.paths)]
        if not wanted:
            raise git.Refused(422, _filtered(push, [t for _, t in signed]))
        return _start(db, "git", source, key, summary, [(p, {}) for p, _ in wanted], push.label, push.values())
    except git.Refused as exc:
        return _answer(db, "git", source, Answer(exc.status, "refused", exc.reason), key, summary)


def _filtered(push: git.Push, triggers: list[GitTrigger]) -> str:
    if not any(t.wants_branch(push.branch) for t in triggers):
        branches = sorted({b for t in triggers for b in t.branches})
        return f"branch '{push.branch}' is not one the triggers follow ({', '.join(branches)})"
    return f"no changed path matches the triggers' paths ({len(push.paths)} paths changed)"


def receive_webhook(db: Database, catalog: Catalog, source: str, headers: dict[str, str], body: bytes) -> Answer:
    key = git.delivery_id("generic", headers, body)
    try:
        with db.read() as conn:
            listening = [
                (p, t)
                for p, _, t in catalog.with_triggers(conn, "webhook")
                if isinstance(t, WebhookTrigger) and t.source == source
            ]
        if not listening:
            raise git.Refused(404, f"no registered pipeline has a webhook trigger for source '{source[:100]}'")
        signed = [
            (p, t)
            for p, t in listening
            if (s := _secret(t.secret_env)) and git.signature_ok(s, body, headers.get("x-gennaker-signature"))
        ]
        if not signed:
            raise git.Refused(401, f"the delivery's X-Gennaker-Signature matches no trigger of source '{source}'")
        doc = _json(body)
        starts = [(p, _mapped(doc, t)) for p, t in signed]
        return _start(db, "webhook", source, key, {}, starts, f"webhook {source}", {"payload_keys": _keys(doc)})
    except git.Refused as exc:
        return _answer(db, "webhook", source, Answer(exc.status, "refused", exc.reason), key, {})


def _mapped(doc: Any, trigger: WebhookTrigger) -> dict[str, Any]:
    params = {}
    for name, path in trigger.params.items():
        value: Any = doc
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                raise git.Refused(422, f"parameter {name}: the payload has no '{path}'")
            value = value[part]
        if isinstance(value, dict | list):
            raise git.Refused(422, f"parameter {name}: '{path}' is not a single value")
        params[name] = value
    return params


def _keys(doc: Any) -> list[str]:
    return sorted(doc)[:50] if isinstance(doc, dict) else []


def _start(
    db: Database,
    kind: str,
    source: str,
    key: str,
    summary: dict[str, Any],
    starts: list[tuple[Any, dict[str, Any]]],
    label: str,
    values: dict[str, Any],
) -> Answer:
    fired: list[Fired] = []
    try:
        with db.begin() as conn:
            for pipeline, params in starts:
                fired.append(
                    fire(
                        conn,
                        pipeline,
                        key=f"{kind}:{pipeline.name}:{key}",
                        kind=kind,
                        label=label,
                        actor=ACTOR,
                        params=params,
                        values=values,
                    )
                )
            new = [f for f in fired if f.execution_id]
            answer = Answer(202, "started", fired=fired) if new else Answer(200, "duplicate", "delivered before")
            answer.delivery_id = record_delivery(
                conn,
                kind=kind,
                source=source,
                outcome=answer.outcome,
                http_status=answer.status,
                reason=answer.reason,
                delivery_key=key,
                summary=summary,
                fired=fired,
            )
            return answer
    except GennakerError as exc:  # a parameter the trigger cannot bind, say: nothing started, said why
        return _answer(db, kind, source, Answer(422, "refused", str(exc)), key, summary)


def _answer(db: Database, kind: str, source: str, answer: Answer, key: str, summary: dict[str, Any]) -> Answer:
    answer.delivery_id = record_delivery(
        db,
        kind=kind,
        source=source,
        outcome=answer.outcome,
        http_status=answer.status,
        reason=answer.reason,
        delivery_key=key,
        summary=summary,
    )
    return answer
