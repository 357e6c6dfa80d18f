"""Pushes from GitHub, GitLab and any other host (the generic form), verified and read the same way.

- GitHub signs the raw body: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256>``; its delivery id is
  ``X-GitHub-Delivery``; the event is ``X-GitHub-Event`` (``ping`` is answered, not built).
- GitLab sends the secret itself in ``X-Gitlab-Token``; its delivery id is ``X-Gitlab-Event-UUID``.
- The generic form is a small JSON document (``repository``, ``branch``, ``commit``, ``author``,
  ``message``, ``paths``, ``deleted``) signed like a webhook: ``X-Gennaker-Signature: sha256=<hex>``,
  with ``X-Delivery-Id``.
Secrets and signatures are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

MAX_PATHS = 10_000
ZERO_SHA = "0" * 40


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Push:
    repository: str
    branch: str
    commit: str
    author: str
    message: str
    paths: list[str] = field(default_factory=list)
    deleted: bool = False

    def values(self) -> dict[str, Any]:
        """What ``${trigger.*}`` reads."""
        return {
            "repository": self.repository,
            "branch": self.branch,
            "commit": self.commit,
            "author": self.author,
            "message": self.message,
        }

    @property
    def label(self) -> str:
        return f"push {self.commit[:7]} by {self.author}" if self.author else f"push {self.commit[:7]}"


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """``sha256=<hex>`` of HMAC-SHA256(secret, raw body), compared in constant time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "replace"))


def authentic(provider: str, secret: str, body: bytes, headers: dict[str, str]) -> bool:
    if provider == "gitlab":
        return hmac.compare_digest(secret.encode(), headers.get("x-gitlab-token", "").encode("utf-8", "replace"))
    header = headers.get("x-hub-signature-256") if provider == "github" else headers.get("x-gennaker-signature")
    return signature_ok(secret, body, header)


def delivery_id(provider: str, headers: dict[str, str], body: bytes) -> str:
    """The sender's id for this delivery; a body's digest when it sends none (the same body twice is
    the same delivery)."""
    name = {"github": "x-github-delivery", "gitlab": "x-gitlab-event-uuid"}.get(provider, "x-delivery-id")
    given = headers.get(name, "").strip()
    return given[:200] if given else "sha256:" + hashlib.sha256(body).hexdigest()


def event_of(provider: str, headers: dict[str, str]) -> str:
    if provider == "github":
        return headers.get("x-github-event", "").strip().lower() or "push"
    if provider == "gitlab":
        return headers.get("x-gitlab-event", "").strip().lower() or "push hook"
    return "push"


def read_push(provider: str, doc: Any) -> Push:
    """The push a payload describes; ``Refused`` (422) for what is not a branch push."""
    if not isinstance(doc, dict):
        raise Refused(400, "the payload must be a JSON object")
    if provider == "generic":
        return _generic(doc)
    ref = _text(doc.get("ref"))
    if not ref.startswith("refs/heads/"):
        raise Refused(422, f"'{ref[:100]}' is not a branch (git triggers follow branch pushes)")
    branch = ref[len("refs/heads/") :]
    paths = _paths(doc.get("commits"))
    if provider == "github":
        repo, head, pusher = _obj(doc, "repository"), _obj(doc, "head_commit"), _obj(doc, "pusher")
        author = _obj(head, "author")
        return Push(
            repository=_text(repo.get("full_name")),
            branch=branch,
            commit=_text(doc.get("after")),
            author=_text(author.get("username") or author.get("name") or pusher.get("name")),
            message=_text(head.get("message")),
            paths=paths,
            deleted=bool(doc.get("deleted")) or _text(doc.get("after")) == ZERO_SHA,
        )
    project = _obj(doc, "project")
    commits = doc.get("commits") if isinstance(doc.get("commits"), list) else []
    last = commits[-1] if commits and isinstance(commits[-1], dict) else {}
    after = _text(doc.get("checkout_sha") or doc.get("after"))
    return Push(
        repository=_text(project.get("path_with_namespace")),
        branch=branch,
        commit=after,
        author=_text(doc.get("user_username") or doc.get("user_name")),
        message=_text(last.get("message")),
        paths=paths,
        deleted=not after or after == ZERO_SHA,
    )


def _generic(doc: dict[str, Any]) -> Push:
    missing = [k for k in ("repository", "branch", "commit") if not _text(doc.get(k))]
    if missing:
        raise Refused(422, f"the generic push needs {', '.join(missing)}")
    raw_paths = doc.get("paths")
    if raw_paths is not None and not (isinstance(raw_paths, list) and all(isinstance(p, str) for p in raw_paths)):
        raise Refused(422, "paths must be a list of strings")
    return Push(
        repository=_text(doc["repository"]),
        branch=_text(doc["branch"]),
        commit=_text(doc["commit"]),
        author=_text(doc.get("author")),
        message=_text(doc.get("message")),
        paths=list(raw_paths or [])[:MAX_PATHS],
        deleted=bool(doc.get("deleted")),
    )


def _paths(commits: Any) -> list[str]:
    out: list[str] = []
    if not isinstance(commits, list):
        return out
    for c in commits:
        if not isinstance(c, dict):
            continue
        for key in ("added", "modified", "removed"):
            for p in c.get(key) or []:
                if isinstance(p, str) and len(out) < MAX_PATHS:
                    out.append(p)
    return out


def _obj(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _text(v: Any) -> str:
    return v[:500] if isinstance(v, str) else ""
