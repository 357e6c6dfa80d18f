"""A deep state directory still gets a working HAProxy: a Unix socket's path is at most 108 bytes (and
haproxy binds "<path>.<pid>.tmp" first), so a long one moves to a private directory of ours."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gennaker.cloud.local.haproxy import HAProxy, HAProxyError, LoadBalancerSpec, admin_socket_path


def test_a_short_state_directory_keeps_its_socket(tmp_path: Path) -> None:
    assert admin_socket_path(Path("/srv/g")) == Path("/srv/g/admin.sock")


def test_a_deep_state_directory_gets_a_private_short_socket_path(
    tmp_path: Path, haproxy_binary: str, lb_spec: LoadBalancerSpec
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 40) / "haproxy"
    deep.mkdir(parents=True)
    path = admin_socket_path(deep)
    assert len(str(path)) < 90 and path == admin_socket_path(deep)  # the same for every process
    info = path.parent.stat()
    assert info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == 0o700
    proxy = HAProxy(deep)
    proxy.declare(lb_spec)
    proxy.start()  # it failed here, "haproxy rejected …" with nothing said, before the move
    try:
        assert isinstance(proxy.show_stat(), list)  # the admin socket answers
    finally:
        proxy.stop(timeout=2)


def test_a_directory_someone_else_could_write_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    deep = tmp_path / ("x" * 100)
    first = admin_socket_path(deep)
    first.parent.chmod(0o777)
    with pytest.raises(HAProxyError, match="not a private directory"):
        admin_socket_path(deep)
