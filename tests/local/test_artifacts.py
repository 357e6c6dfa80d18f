"""Content-addressed artifacts: deterministic, verified, found by name and tags."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from gennaker.cloud.local.artifacts import ArtifactNotFound, ArtifactStore
from gennaker.errors import InvalidInput
from gennaker.sample_app import SOURCE_DIR


def make_source(path: Path) -> Path:
    (path / "lib").mkdir(parents=True)
    (path / "app.py").write_text("print('hi')\n")
    (path / "lib" / "util.py").write_text("X = 1\n")
    (path / "run.sh").write_text("#!/bin/sh\nexec python3 app.py\n")
    (path / "run.sh").chmod(0o755)
    (path / "__pycache__").mkdir()
    (path / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"junk")
    return path


def test_bake_is_deterministic_whatever_the_mtimes(tmp_path: Path) -> None:
    one = make_source(tmp_path / "one")
    two = make_source(tmp_path / "two")
    past = time.time() - 86400
    for p in two.rglob("*"):
        os.utime(p, (past, past))
    a = ArtifactStore(tmp_path / "s1").bake(one, "shop", "1.0.0")
    b = ArtifactStore(tmp_path / "s2").bake(two, "shop", "1.0.0")
    assert a.id == b.id and a.id.startswith("sha256-") and len(a.id) == 71
    assert a.files == 3  # the __pycache__ is not packaged
    (two / "app.py").write_text("print('changed')\n")
    assert ArtifactStore(tmp_path / "s2").bake(two, "shop", "1.0.1").id != a.id


def test_bake_again_returns_the_same_artifact(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    first = store.bake(SOURCE_DIR, "sample", "1.0.0", {"team": "web"})
    assert store.bake(SOURCE_DIR, "sample", "1.0.0") == first
    assert store.get(first.id).tags == {"team": "web"}


def test_find_by_name_and_tags_newest_first(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    src = make_source(tmp_path / "src")
    old = store.bake(src, "shop", "1.0.0", {"stage": "prod"})
    (src / "app.py").write_text("print('v2')\n")
    new = store.bake(src, "shop", "2.0.0", {"stage": "test"})
    other = store.bake(SOURCE_DIR, "sample", "1.0.0")
    assert [a.id for a in store.find("shop")] == [new.id, old.id]
    assert [a.id for a in store.find("sh*", {"stage": "prod"})] == [old.id]
    assert [a.id for a in store.find(None, {"version": "1.0.0"})] == [other.id, old.id]
    assert store.resolve("shop") == new.id
    assert store.resolve(old.id) == old.id
    assert store.find("nothing") == []


def test_unpack_verifies_and_is_idempotent(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    src = make_source(tmp_path / "src")
    art = store.bake(src, "shop", "1.0.0")
    dest = store.unpack(art.id)
    assert (dest / "app.py").read_text() == "print('hi')\n"
    assert os.access(dest / "run.sh", os.X_OK)
    assert not (dest / "__pycache__").exists()
    (dest / "marker").write_text("kept")
    assert store.unpack(art.id) == dest and (dest / "marker").exists()  # not extracted twice
    other = store.unpack(art.id, tmp_path / "elsewhere")
    assert (other / "lib" / "util.py").read_text() == "X = 1\n"


def test_a_corrupt_artifact_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    art = store.bake(make_source(tmp_path / "src"), "shop", "1.0.0")
    tar = store.dir / f"{art.id}.tar"
    tar.write_bytes(tar.read_bytes()[:-512] + b"x" * 512)
    with pytest.raises(InvalidInput, match="is corrupt"):
        store.unpack(art.id)


def test_missing_artifacts_and_sources_are_clear_errors(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with pytest.raises(ArtifactNotFound, match="not found"):
        store.unpack("sha256-" + "0" * 64)
    with pytest.raises(ArtifactNotFound, match="not a local artifact id"):
        store.get("ami-123")
    with pytest.raises(ArtifactNotFound, match="no local artifact named 'shop'"):
        store.resolve("shop")
    with pytest.raises(Exception, match="does not exist"):
        store.bake(tmp_path / "missing", "shop", "1")
    link_src = make_source(tmp_path / "links")
    (link_src / "link").symlink_to(link_src / "app.py")
    with pytest.raises(InvalidInput, match="symbolic links"):
        store.bake(link_src, "shop", "1")
    shutil.rmtree(link_src)
