"""The local admin credential of a server without an ``auth:`` section.

Such a server still refuses anonymous changes. On start, ``gennaker server`` (and ``gennaker demo``)
make sure there is an admin API token (stored hashed, like every token), write its secret to a file
only the current OS user can read (``<user data dir>/credentials/<server>.json``, mode 0600) that the
CLI's ``HttpClient`` finds by itself, and print a one-time login link for the browser (the link's token
is spent when it sets a session, as Jupyter's first link does).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from gennaker.store.db import Database
from gennaker.web import store
from gennaker.web.tables import api_tokens, server_keys

LOCAL_ADMIN = "admin"  # the one user of a server without an auth: section
ADMIN_TOKEN_NAME = "local admin credential"
LOGIN_LINK_NAME = "one-time login link"
LOGIN_LINK_SECONDS = 24 * 3600
SESSION_KEY = "session signing key"
WILDCARDS = {"0.0.0.0", "::", ""}


def credentials_dir() -> Path:
    return Path(platformdirs.user_data_dir("gennaker")) / "credentials"


def normalize(url: str) -> str:
    """``scheme://host:port`` with the default port made explicit, so equal servers compare equal."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = (parts.scheme or "http").lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:  # a port that is not a number: no credential matches it
        return f"{scheme}://{host}"
    return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"


def local_urls(host: str, port: int) -> list[str]:
    """The URLs a CLI on this machine may use for a server bound to ``host:port``."""
    if host in WILDCARDS:
        names = ["127.0.0.1", "localhost", "::1", socket.gethostname()]
    elif host in ("127.0.0.1", "localhost"):
        names = ["127.0.0.1", "localhost"]
    else:
        names = [host]
    out: list[str] = []
    for name in names:
        url = normalize(f"http://{'[' + name + ']' if ':' in name else name}:{port}")
        if url not in out:
            out.append(url)
    return out


def credential_file(url: str) -> Path:
    return credentials_dir() / (re.sub(r"[^A-Za-z0-9.]+", "_", normalize(url)).strip("_") + ".json")


def write_credential(urls: list[str], token: str, user: str) -> Path:
    """Write the credential where only this OS user can read it (directory 0700, file 0600)."""
    directory = credentials_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    path = credential_file(urls[0])
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"urls": urls, "user": user, "token": token, "created_at": time.time()}, f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def find_credential(server_url: str) -> dict[str, Any] | None:
    """The local credential for ``server_url`` (written by a server on this machine), or None."""
    wanted = normalize(server_url)
    directory = credentials_dir()
    if not directory.is_dir():
        return None
    for path in sorted(directory.glob("*.json")):
        try:
            if path.stat().st_mode & 0o077:  # readable by others: not a secret any more, do not use it
                continue
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(entry, dict) and wanted in entry.get("urls", []) and isinstance(entry.get("token"), str):
            return entry
    return None


def local_roles(user: str) -> list[str] | None:
    """What a user of a server without an ``auth:`` section holds: only the local admin exists."""
    return ["admin"] if user == LOCAL_ADMIN else None


def ensure_admin_token(db: Database, urls: list[str]) -> str:
    """The local admin token's secret: the one in the credential file if this database still accepts
    it, else a new one (written to the file)."""
    existing = find_credential(urls[0])
    if existing is not None:
        live = store.token_for_secret(db, existing["token"], local_roles)
        if live is not None and live["user"] == LOCAL_ADMIN and live["name"] == ADMIN_TOKEN_NAME:
            if existing.get("urls") != urls:
                write_credential(urls, existing["token"], LOCAL_ADMIN)
            return str(existing["token"])
    token = store.create_token(db, ADMIN_TOKEN_NAME, LOCAL_ADMIN, ["admin"], "gennaker server")
    write_credential(urls, token["token"], LOCAL_ADMIN)
    return str(token["token"])


def login_link(db: Database, base_url: str) -> str:
    """A fresh one-time link that signs a browser in as the local admin."""
    token = store.create_token(
        db, LOGIN_LINK_NAME, LOCAL_ADMIN, ["admin"], "gennaker server", expires_in=LOGIN_LINK_SECONDS
    )
    return f"{base_url.rstrip('/')}/login?token={token['token']}"


def spend_login_link(db: Database, secret: str) -> str | None:
    """The user a one-time login link signs in, or None; the link is revoked in the same step (a
    conditional update: of two concurrent uses only one wins)."""
    token = store.token_for_secret(db, secret, local_roles)
    if token is None or token["name"] != LOGIN_LINK_NAME:
        return None
    with db.begin() as conn:
        spent = conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == token["id"], api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )
    return str(token["user"]) if spent.rowcount == 1 else None


def shared_session_key(db: Database) -> str:
    """The key that signs session cookies when the configuration names none: one per database, made by
    the first server that asks, so every replica on this database reads the others' cookies (a
    per-process random key signed a user out whenever the load balancer picked another replica, and at
    every restart). Kept in the database, it is no weaker than the sessions themselves: a cookie is
    only good for a session row, whose id is stored hashed."""
    with db.read() as conn:
        found = conn.execute(select(server_keys.c.secret).where(server_keys.c.name == SESSION_KEY)).scalar()
    if found is not None:
        return str(found)
    try:
        with db.begin() as conn:
            conn.execute(
                insert(server_keys).values(name=SESSION_KEY, secret=secrets.token_urlsafe(48), created_at=time.time())
            )
    except IntegrityError:  # another replica made it first: use theirs
        pass
    with db.read() as conn:
        return str(conn.execute(select(server_keys.c.secret).where(server_keys.c.name == SESSION_KEY)).scalar_one())
