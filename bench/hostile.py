"""Hostile input against the CLI and a live server: what it costs to refuse it (issue 8's figures).

- ``gennaker validate`` on documents built to hurt a parser: wall time and peak memory of the process;
- a live ``gennaker server`` with access control: 100 concurrent wrong passwords (how many got a
  password check, the server's peak memory), 2,000 refused anonymous requests with long paths (how
  much the database grew), and the health route's latency while hostile documents are posted.

Run: python bench/hostile.py   (writes a section of docs/benchmarks.md)
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine_line, write_section

SRC = str(Path(__file__).resolve().parent.parent / "src")
ENV = {**os.environ, "PYTHONPATH": SRC}


def _measure(argv: list[str], cwd: Path) -> tuple[float, float, int, str]:
    """Wall seconds, peak RSS in MB, exit code and the first line of stderr of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read(4096).decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, proc.returncode, (err.splitlines() or [""])[0]


def validate_cases(work: Path) -> list[str]:
    docs = {
        '`command: "${"` + 5,000 spaces': 'name: p\napplication: a\nstages:\n  - {id: r, type: run, command: "${'
        + " " * 5000
        + '"}\n',
        "`when:` of 200,000 `not`s": 'name: p\napplication: a\nstages:\n  - {id: w, type: wait, duration: 1s, when: "'
        + "not " * 200_000
        + 'true"}\n',
        "10 MB pipeline": "name: p\napplication: a\nstages:\n"
        + "".join(f"  - {{id: s{i}, type: wait, duration: 1s}}\n" for i in range(300_000)),
        "YAML alias bomb (10^8 values expanded)": "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
        + "".join(f"{n}: &{n} [{','.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdefg", "bcdefgh", strict=True))
        + "name: *h\n",
    }
    rows = []
    for title, text in docs.items():
        path = work / "doc.yml"
        path.write_text(text)
        secs, mb, code, line = _measure([sys.executable, "-m", "gennaker", "validate", path.name], work)
        rows.append(
            f"| validate: {title} ({len(text) / 1e6:.2f} MB) | {secs:.2f} s | {mb:.0f} MB | {code} | {line[:90]} |"
        )
    secs, mb, code, line = _measure([sys.executable, "-m", "gennaker", "validate", "/dev/zero"], work)
    rows.append(f"| validate: /dev/zero | {secs:.2f} s | {mb:.0f} MB | exit {code} | {line[:90]} |")
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _audit_rows(db: Path) -> tuple[int, int, int]:
    """Rows, characters of text and counted hits in the audit log."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        n, chars, hits = conn.execute(
            "select count(*), coalesce(sum(length(path) + length(coalesce(details, ''))), 0), coalesce(sum(hits), 0) "
            "from audit_log"
        ).fetchone()
    return int(n), int(chars), int(hits)


def server_cases(work: Path) -> list[str]:
    from gennaker.web.security import hash_password

    cfg = work / "gennaker.yml"
    cfg.write_text(
        "auth:\n  secret_key: " + "k" * 40 + "\n  secure_cookies: false\n"
        "  login_rate: {attempts: 5, per_seconds: 60}\n"
        f"  users:\n    alice: {{password_hash: '{hash_password('right')}', roles: [admin]}}\n"
    )
    db = work / "server.db"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gennaker",
            "--config",
            str(cfg),
            "--db",
            str(db),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=work,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows = []
    try:
        end = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < end and server.poll() is None, "the server did not start"
            time.sleep(0.2)
        base_rss = _rss_mb(server.pid)

        with httpx.Client(base_url=url, timeout=30) as c:
            c.get("/login")
            csrf = str(c.cookies.get("gk_csrf"))

        def wrong(_: int) -> int:
            form = {"username": "alice", "password": "wrong", "csrf_token": csrf}
            with httpx.Client(base_url=url, timeout=60, cookies={"gk_csrf": csrf}) as c:
                return c.post("/login", data=form, follow_redirects=False).status_code

        t0 = time.perf_counter()
        with ThreadPoolExecutor(100) as pool:
            codes = list(pool.map(wrong, range(100)))
        burst = time.perf_counter() - t0
        checked = codes.count(401)
        rows.append(
            f"| 100 concurrent wrong passwords (limit 5/min) | {burst:.2f} s | server {base_rss:.0f} → peak "
            f"{_rss_mb(server.pid, 'VmHWM'):.0f} MB | {checked} checked (401), {codes.count(429)} refused (429), "
            f"{len(codes) - checked - codes.count(429)} other | |"
        )

        rows0 = _audit_rows(db)
        long_path = "/api/executions/" + "x" * 4000
        t0 = time.perf_counter()
        with httpx.Client(base_url=url, timeout=30) as c:
            for i in range(2000):
                c.post(f"{long_path}{i}/cancel")
        refused = time.perf_counter() - t0
        rows1 = _audit_rows(db)
        rows.append(
            f"| 2,000 refused anonymous POSTs, 4 KB paths | {refused:.2f} s | audit log +{rows1[0] - rows0[0]} rows, "
            f"+{(rows1[1] - rows0[1]) / 1e3:.1f} KB of text | {rows1[2] - rows0[2]} hits counted | |"
        )

        # Health latency while two clients post hostile documents with an admin's API token.
        from gennaker.runtime import build_runtime
        from gennaker.web import store

        rt = build_runtime(str(db))
        token = store.create_token(rt.db, "bench", "alice", ["admin"], "bench")["token"]
        rt.db.dispose()
        hostile = 'name: p\napplication: a\nstages:\n  - {id: r, type: run, command: "${' + " " * 900_000 + '"}\n'
        stop = threading.Event()

        def post_hostile() -> None:
            with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as c:
                while not stop.is_set():
                    c.post("/api/pipelines", json={"yaml": hostile})

        threads = [threading.Thread(target=post_hostile, daemon=True) for _ in range(2)]
        for t in threads:
            t.start()
        lat = []
        with httpx.Client(base_url=url, timeout=30) as c:
            for _ in range(50):
                t1 = time.perf_counter()
                c.get("/api/health")
                lat.append(time.perf_counter() - t1)
                time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join(60)
        lat.sort()
        rows.append(
            "| /api/health while 2 clients post 0.9 MB hostile documents | "
            f"median {statistics.median(lat) * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms | | | |"
        )
    finally:
        server.terminate()
        server.wait(15)
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = validate_cases(work) + server_cases(work)
    body = "\n".join(
        [
            machine_line(),
            "",
            "| input | time | memory | outcome | first line |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    print(body)
    write_section("Hostile input (bench/hostile.py)", body)


if __name__ == "__main__":
    main()
