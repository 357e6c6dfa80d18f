"""Credentials: password hashes, signed session cookies, CSRF tokens, API tokens and login throttling."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "gk_session"
CSRF_COOKIE = "gk_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
TOKEN_PREFIX = "gk_"

_hasher = PasswordHasher()  # immutable parameters object, safe to share
# Verifying against this when the user is unknown costs the same time as a real check, so response
# time does not tell which user names exist.
_DUMMY_HASH = _hasher.hash("not a password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


class Sessions:
    """Signed, timestamped session cookies. The cookie holds the user name and a CSRF token; roles are
    looked up on every request, so removing a user from the config takes effect at once."""

    def __init__(self, secret_key: str, max_age: float):
        self._s = URLSafeTimedSerializer(secret_key, salt="gennaker.session")
        self.max_age = max_age

    def dump(self, user: str, csrf: str) -> str:
        return self._s.dumps({"u": user, "c": csrf})

    def load(self, cookie: str | None) -> dict[str, Any] | None:
        if not cookie:
            return None
        try:
            data = self._s.loads(cookie, max_age=int(self.max_age))
        except BadSignature:
            return None
        return data if isinstance(data, dict) and isinstance(data.get("u"), str) else None


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def same_token(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def new_api_token() -> tuple[str, str, str]:
    """A fresh token: (the secret shown once, its sha256 to store, a short prefix to recognise it by)."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return secret, token_hash(secret), secret[:10]


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class LoginLimiter:
    """At most ``attempts`` failed logins per ``per_seconds``, per client address and per user name.
    In memory, per server process: enough to make online guessing slow."""

    def __init__(self, attempts: int, per_seconds: float):
        self.attempts = attempts
        self.per_seconds = per_seconds
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and q[0] <= now - self.per_seconds:
            q.popleft()
        return q

    def retry_after(self, keys: list[str], now: float | None = None) -> float:
        """Seconds until another attempt is allowed (0 if allowed now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            waits = [q[0] + self.per_seconds - now for k in keys
                     if len(q := self._recent(k, now)) >= self.attempts]
        return max(waits, default=0.0)

    def failed(self, keys: list[str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            for k in keys:
                self._recent(k, now).append(now)
            if len(self._failures) > 10_000:  # forget idle keys so the map cannot grow without bound
                for k in [k for k, q in self._failures.items() if not q]:
                    del self._failures[k]

    def succeeded(self, keys: list[str]) -> None:
        with self._lock:
            for k in keys:
                self._failures.pop(k, None)
