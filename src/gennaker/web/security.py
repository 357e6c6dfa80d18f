"""Credentials: password hashes, server-side sessions behind signed cookies, CSRF tokens, API token
secrets, which roles a grant still carries, and login throttling.

Sessions and throttle counters are rows in the database (``gennaker.web.tables``), not a server's
memory: a logout or a lockout holds on every replica, and a restart forgets neither.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from starlette.concurrency import run_in_threadpool

from gennaker.store.db import Database
from gennaker.web.settings import LEVELS, AuthSettings
from gennaker.web.tables import login_throttle, sessions

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


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- what a grant still carries -------------------------------------------------------------------


def _level_role(role: str) -> tuple[str | None, int] | None:
    """(application or None for all, level) of a level role; None for a plain role."""
    app, sep, level = role.rpartition(":")
    value = LEVELS.get(level if sep else role)
    return None if value is None else (app if sep else None, value)


def _named(app: str | None, value: int) -> str:
    level = next(name for name, v in LEVELS.items() if v == value)
    return level if app is None else f"{app}:{level}"


def covers(held: Iterable[str], role: str) -> bool:
    """Whether holding ``held`` includes ``role``: ``admin`` includes everything, a level includes
    the lower levels (on every application, or on the one it names), a plain role only itself."""
    return role in meet([role], held)


def meet(granted: Iterable[str], held: Iterable[str]) -> set[str]:
    """What ``granted`` still carries for a holder of ``held``: each granted role as far as ``held``
    reaches (an ``operator`` grant held as ``shop:viewer`` is ``shop:viewer``); a plain role only if it
    is held (or ``admin`` is)."""
    held, granted = set(held), set(granted)
    out: set[str] = set(held) if "admin" in granted else set()  # an admin grant carries all one holds
    for role in granted:
        if role in held or "admin" in held:
            out.add(role)
            continue
        mine = _level_role(role)
        if mine is None:
            continue
        for h in held:
            theirs = _level_role(h)
            if theirs is None or (mine[0] and theirs[0] and mine[0] != theirs[0]):
                continue
            out.add(_named(mine[0] or theirs[0], min(mine[1], theirs[1])))
    return out


def still_granted(granted: Iterable[str], *holders: Iterable[str]) -> list[str]:
    """What a grant carries for every holder in turn (the token above, the user now)."""
    roles = set(granted)
    for held in holders:
        roles = meet(roles, held)
    return sorted(roles)


# --- sessions -------------------------------------------------------------------------------------


class Sessions:
    """A session is a row in ``sessions`` (its id stored hashed) with an expiry; the cookie is the id,
    signed, plus the session's CSRF token. Every request looks the row up, so logging out (which
    deletes it) ends the session everywhere, whoever kept a copy of the cookie. Roles are looked up
    per request too, so removing a user from the config signs them out at once."""

    def __init__(self, secret_key: str, max_age: float, db: Database):
        self._s = URLSafeTimedSerializer(secret_key, salt="gennaker.session")
        self.max_age = max_age
        self.db = db

    @property
    def whole_seconds(self) -> int:
        """The lifetime rounded up to whole seconds, for the cookie's Max-Age and the signature's age
        (both whole seconds): the row's exact expiry decides, never a truncated limit before it."""
        return math.ceil(self.max_age)

    def start(self, user: str, csrf: str) -> str:
        """Record a new session for ``user`` and return its cookie value."""
        sid = secrets.token_urlsafe(32)
        now = time.time()
        with self.db.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.expires_at < now))  # forget the dead ones
            conn.execute(
                insert(sessions).values(id_hash=digest(sid), user=user, created_at=now, expires_at=now + self.max_age)
            )
        return self._s.dumps({"s": sid, "u": user, "c": csrf})

    dump = start  # the older name: a session is a database row now, so it is started, not just signed

    def _signed(self, cookie: str | None) -> dict[str, Any] | None:
        if not cookie:
            return None
        try:
            data = self._s.loads(cookie, max_age=self.whole_seconds)
        except BadSignature:
            return None
        ok = isinstance(data, dict) and all(isinstance(data.get(k), str) for k in ("s", "u", "c"))
        return data if ok else None

    def load(self, cookie: str | None) -> dict[str, Any] | None:
        """The live session of this cookie (``u`` the user, ``c`` its CSRF token), or None."""
        data = self._signed(cookie)
        if data is None:
            return None
        with self.db.read() as conn:
            row = conn.execute(
                select(sessions.c.user, sessions.c.expires_at).where(sessions.c.id_hash == digest(data["s"]))
            ).first()
        if row is None or row.user != data["u"] or row.expires_at <= time.time():
            return None
        return data

    def end(self, cookie: str | None) -> None:
        data = self._signed(cookie)
        if data is not None:
            with self.db.begin() as conn:
                conn.execute(delete(sessions).where(sessions.c.id_hash == digest(data["s"])))


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def same_token(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def new_api_token() -> tuple[str, str, str]:
    """A fresh token: (the secret shown once, its sha256 to store, a short prefix to recognise it by)."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return secret, token_hash(secret), secret[:10]


def token_hash(secret: str) -> str:
    return digest(secret)


# --- login throttling -----------------------------------------------------------------------------


def _network_of(address: str) -> str:
    """The unit a client controls: its IPv4 address, or its IPv6 /64 (one host often holds a whole
    /64, so counting single IPv6 addresses would let it try again from the next one)."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class _Locked(Exception):
    def __init__(self, wait: float):
        self.wait = wait


class LoginLimiter:
    """Sign-in attempts are counted *before* the password is checked, in fixed windows of
    ``per_seconds``: ``attempts`` per (user name, address) — so one locked user leaves the others at
    that address alone —, ten times that per address, a hundred times that in all. Each count is one
    atomic UPDATE (or INSERT ... ON CONFLICT) in the database, so a burst of concurrent tries gets no
    more checks than the limit, on one server or several. A successful sign-in gives its attempt back.

    Password checks (argon2: 64 MiB and tens of milliseconds each) run at most ``pool`` at a time,
    with at most ``queue`` more waiting; beyond that a sign-in is refused at once (429) instead of
    queueing threads and memory without bound."""

    def __init__(self, attempts: int, per_seconds: float, pool: int = 2, queue: int = 8):
        self.attempts = attempts
        self.per_seconds = per_seconds
        self.pool = pool
        self.queue = queue
        self.verifications = 0  # password checks made (tests count them)
        self._slots = threading.BoundedSemaphore(pool)
        self._lock = threading.Lock()
        self._admitted = 0

    def _keys(self, user: str, address: str) -> list[tuple[str, int]]:
        user, address = user.lower()[:200], _network_of(address)[:100]
        return [
            (f"pair:{user}|{address}", self.attempts),
            (f"addr:{address}", self.attempts * 10),
            ("all", self.attempts * 100),
        ]

    def claim(self, db: Database, user: str, address: str, now: float | None = None) -> float:
        """Count one attempt on every key; 0 if it may go ahead, else the seconds until it may."""
        now = time.time() if now is None else now
        try:
            with db.begin() as conn:  # one key over its limit rolls back the counts of the others
                started = [self._count(db, conn, key, limit, now) for key, limit in self._keys(user, address)]
        except _Locked as locked:
            return max(locked.wait, 0.001)
        if started[-1]:  # a new window in all: once a window, forget the idle keys
            self._forget_idle(db, now)
        return 0.0

    def _count(self, db: Database, conn: Connection, key: str, limit: int, now: float) -> bool:
        """Count one attempt on ``key`` (raise ``_Locked`` when it is at its limit); True when this
        started a new window."""
        t = login_throttle
        fresh = now - self.per_seconds
        dialect_insert = sqlite.insert if db.is_sqlite else postgresql.insert
        for _ in range(2):  # twice: a concurrent request may have started the window in between
            counted = conn.execute(
                update(t)
                .where(t.c.key == key, t.c.window_start > fresh, t.c.attempts < limit)
                .values(attempts=t.c.attempts + 1)
                .returning(t.c.key)
            ).first()
            if counted is not None:
                return False
            # No row, or its window is over: start a new window (unless a concurrent request just did).
            started = conn.execute(
                dialect_insert(t)
                .values(key=key, window_start=now, attempts=1)
                .on_conflict_do_update(
                    index_elements=[t.c.key], set_={"window_start": now, "attempts": 1}, where=t.c.window_start <= fresh
                )
                .returning(t.c.key)
            ).first()
            if started is not None:
                return True
            row = conn.execute(select(t.c.window_start, t.c.attempts).where(t.c.key == key)).one()
            if row.attempts >= limit:
                raise _Locked(row.window_start + self.per_seconds - now)
        raise _Locked(1.0)  # still contended after a retry: refuse rather than wait

    def _forget_idle(self, db: Database, now: float) -> None:
        """Delete the counts of windows that are over, so idle keys cannot pile up. Rows another
        request holds are skipped (PostgreSQL), so this never waits on, or deadlocks with, a sign-in."""
        t = login_throttle
        stale = select(t.c.key).where(t.c.window_start <= now - self.per_seconds).with_for_update(skip_locked=True)
        with db.begin() as conn:
            conn.execute(delete(t).where(t.c.key.in_(stale)))

    def give_back(self, db: Database, user: str, address: str, *, forget_pair: bool = False) -> None:
        """Return an attempt (the sign-in succeeded, or its password was never checked)."""
        t = login_throttle
        keys = self._keys(user, address)
        with db.begin() as conn:
            if forget_pair:
                conn.execute(delete(t).where(t.c.key == keys[0][0]))
                keys = keys[1:]
            for key, _ in keys:
                conn.execute(update(t).where(t.c.key == key, t.c.attempts > 0).values(attempts=t.c.attempts - 1))

    async def verify(self, password_hash: str | None, password: str) -> bool | None:
        """Check a password on the bounded pool; None when the pool and its queue are full."""
        with self._lock:
            if self._admitted >= self.pool + self.queue:
                return None
            self._admitted += 1
        try:
            return await run_in_threadpool(self._verify, password_hash, password)
        finally:
            with self._lock:
                self._admitted -= 1

    def _verify(self, password_hash: str | None, password: str) -> bool:
        with self._slots:
            with self._lock:
                self.verifications += 1
            return verify_password(password_hash, password)


def roles_of(auth: AuthSettings) -> Callable[[str], list[str] | None]:
    """What a user holds now, by the configuration (None: no such user, any more). Tokens ask this on
    every use, so a token never carries more than its user does today."""

    def held(user: str) -> list[str] | None:
        entry = auth.users.get(user)
        return list(entry.roles) if entry is not None else None

    return held
