"""Sign-in under a burst (issue 8, item 8), against a live server: 100 concurrent wrong passwords get
no more password checks than the limit, memory stays bounded (each argon2 check takes 64 MiB), and one
user's lockout leaves the other users at the same address alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from gennaker.api.app import create_app
from gennaker.runtime import Runtime, build_runtime
from gennaker.web.state import WebState
from tests.conftest import fresh_postgres

from .conftest import PASSWORD, auth_config, free_port

LIMIT = 5


@dataclass
class Live:
    url: str
    web: WebState


@contextmanager
def serving(rt: Runtime) -> Iterator[Live]:
    """A live server (uvicorn on a thread) for ``rt``; several may share one database, as replicas do."""
    app = create_app(rt)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1, lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < end and thread.is_alive(), "the test server did not start"
        time.sleep(0.05)
    try:
        yield Live(f"http://127.0.0.1:{port}", app.state.web)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    rt = build_runtime(str(tmp_path / "g.db"), config=auth_config())
    with serving(rt) as server:
        yield server
    rt.db.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database (dropped afterwards)."""
    with fresh_postgres("gennaker_web") as (_name, url):
        yield url


@contextmanager
def replicas(url: str, count: int = 2) -> Iterator[list[Live]]:
    """``count`` servers on one database with one configuration (the same users and key)."""
    config = auth_config()
    runtimes = [build_runtime(url, config=config) for _ in range(count)]
    try:
        with ExitStack() as stack:
            yield [stack.enter_context(serving(rt)) for rt in runtimes]
    finally:
        for rt in runtimes:
            rt.db.dispose()


def rss_mb() -> float:
    """This process's resident memory (the server runs in it, on a thread)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def login_form(url: str) -> tuple[dict[str, str], str]:
    with httpx.Client(base_url=url) as c:
        c.get("/login")
        csrf = str(c.cookies.get("gk_csrf"))
    return {"gk_csrf": csrf}, csrf


def attempt(url: str, cookies: dict[str, str], csrf: str, user: str, password: str) -> int:
    with httpx.Client(base_url=url, cookies=cookies, timeout=60) as c:
        r = c.post("/login", data={"username": user, "password": password, "csrf_token": csrf}, follow_redirects=False)
        return r.status_code


def burst(live: Live, users: list[str], password: str = "wrong guess") -> tuple[list[int], float]:
    """Every user's attempt at once; their statuses and the peak growth of memory meanwhile (MB)."""
    cookies, csrf = login_form(live.url)
    before, peak, done = rss_mb(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # One client for all (thread-safe, one connection each): the memory measured is the server's,
    # not a hundred clients' TLS contexts (the server runs in this process).
    limits = httpx.Limits(max_connections=len(users), max_keepalive_connections=0)
    try:
        with httpx.Client(base_url=live.url, cookies=cookies, timeout=60, limits=limits) as client:

            def one(user: str) -> int:
                data = {"username": user, "password": password, "csrf_token": csrf}
                return client.post("/login", data=data, follow_redirects=False).status_code

            with ThreadPoolExecutor(max_workers=len(users)) as pool:
                statuses = list(pool.map(one, users))
    finally:
        done.set()
        sampler.join()
    return statuses, max(peak[0], rss_mb()) - before


def test_a_burst_of_wrong_passwords_gets_no_more_checks_than_the_limit(live: Live) -> None:
    statuses, grown = burst(live, ["rita"] * 100)
    assert live.web.limiter.verifications <= LIMIT
    assert statuses.count(401) <= LIMIT and set(statuses) <= {401, 429}
    assert statuses.count(429) >= 100 - LIMIT
    assert grown < 200
    # Still locked for rita, with the right password too.
    cookies, csrf = login_form(live.url)
    assert attempt(live.url, cookies, csrf, "rita", PASSWORD) == 429


def test_a_spray_over_many_names_is_bounded_in_checks_and_memory(live: Live) -> None:
    statuses, grown = burst(live, [f"user{i}" for i in range(100)])
    # Per address at most ten times the per-user limit, two checks at a time: beyond the checkers'
    # short queue a sign-in is refused at once instead of waiting with its memory.
    assert live.web.limiter.verifications <= LIMIT * 10
    assert set(statuses) <= {401, 429} and statuses.count(429) >= 50
    assert grown < 200


def test_one_locked_user_leaves_the_others_at_that_address_alone(live: Live) -> None:
    cookies, csrf = login_form(live.url)
    for _ in range(LIMIT):
        assert attempt(live.url, cookies, csrf, "rita", "wrong") == 401
    assert attempt(live.url, cookies, csrf, "rita", PASSWORD) == 429
    assert attempt(live.url, cookies, csrf, "olga", PASSWORD) == 303  # same address, another user
    assert attempt(live.url, cookies, csrf, "vic", "wrong") == 401


def test_a_good_sign_in_gives_its_attempt_back(live: Live) -> None:
    cookies, csrf = login_form(live.url)
    for _ in range(LIMIT - 1):
        assert attempt(live.url, cookies, csrf, "vic", "wrong") == 401
    assert attempt(live.url, cookies, csrf, "vic", PASSWORD) == 303
    for _ in range(LIMIT):  # the window starts over for vic after a good sign-in
        assert attempt(live.url, cookies, csrf, "vic", "wrong") == 401


def test_the_throttle_is_shared_through_the_database(live: Live, tmp_path: Path) -> None:
    """A second server on the same database (another replica) sees the first one's counts."""
    cookies, csrf = login_form(live.url)
    for _ in range(LIMIT):
        assert attempt(live.url, cookies, csrf, "rita", "wrong") == 401
    other = WebState.build(live.web.runtime)
    assert other.limiter.claim(other.db, "rita", "127.0.0.1") > 0
    assert other.limiter.claim(other.db, "olga", "127.0.0.1") == 0


def test_replicas_on_postgresql_share_one_limit(postgres_url: str) -> None:
    """Two servers on one PostgreSQL database: a burst split over both still gets at most the limit."""
    with replicas(postgres_url) as (a, b):
        cookies, csrf = login_form(a.url)
        targets = [a.url, b.url] * 50
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            statuses = list(pool.map(lambda url: attempt(url, cookies, csrf, "rita", "wrong"), targets))
        assert a.web.limiter.verifications + b.web.limiter.verifications <= LIMIT
        assert statuses.count(401) <= LIMIT and set(statuses) <= {401, 429}
        assert attempt(b.url, cookies, csrf, "olga", PASSWORD) == 303


def test_an_ipv6_client_is_counted_by_its_64(tmp_path: Path) -> None:
    """A host usually holds a whole IPv6 /64: the next address in it is the same client."""
    config = auth_config()
    config.server = {"forwarded_allow": ["127.0.0.1"]}  # the test plays a proxy naming the client
    rt = build_runtime(str(tmp_path / "g.db"), config=config)
    with serving(rt) as live:
        cookies, csrf = login_form(live.url)

        def from_(address: str, password: str = "wrong") -> int:
            with httpx.Client(base_url=live.url, cookies=cookies, headers={"X-Forwarded-For": address}) as c:
                data = {"username": "rita", "password": password, "csrf_token": csrf}
                return c.post("/login", data=data, follow_redirects=False).status_code

        for i in range(LIMIT):
            assert from_(f"2001:db8:0:1::{i + 1}") == 401
        assert from_("2001:db8:0:1::ffff") == 429  # same /64
        assert from_("2001:db8:0:2::1", PASSWORD) == 303  # another network
    rt.db.dispose()
