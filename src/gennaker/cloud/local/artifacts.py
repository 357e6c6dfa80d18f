"""Immutable, content-addressed artifacts: the local provider's images (the analogue of an AMI).

``bake`` packs a directory into a tar whose bytes depend only on the files' paths, contents and
executable bits (entries sorted, fixed mtime, owner and mode), so the same source always gives the
same id: ``sha256-<hex digest>``. Metadata (name, version, tags, created) lives beside the tar.
``unpack`` verifies the digest before extracting, and extracts once (idempotent).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gennaker.errors import InvalidInput, NotFound

_ID = re.compile(r"^sha256-[0-9a-f]{64}$")
# Never packaged: caches and VCS directories are not part of what runs.
_SKIP = {"__pycache__", ".git", ".hg", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
_FIXED_MTIME = 0


@dataclass(frozen=True)
class Artifact:
    id: str  # sha256-<digest of the tar>
    name: str
    version: str
    tags: dict[str, str] = field(default_factory=dict)
    created: str = ""
    size: int = 0
    files: int = 0


class ArtifactNotFound(NotFound):
    pass


def _entries(source: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP)
        base = Path(root)
        found += [base / d for d in dirs]
        found += [base / f for f in sorted(files) if not f.endswith((".pyc", ".pyo"))]
    return sorted(found, key=lambda p: p.relative_to(source).as_posix())


def pack(source: Path) -> tuple[bytes, int]:
    """The deterministic tar of ``source`` and its number of files."""
    buffer = io.BytesIO()
    count = 0
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _entries(source):
            rel = path.relative_to(source).as_posix()
            if path.is_symlink():
                raise InvalidInput(f"{path}: symbolic links are not packaged (copy the file instead)")
            info = tarfile.TarInfo(rel)
            info.mtime = _FIXED_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
                continue
            data = path.read_bytes()
            info.size = len(data)
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            tar.addfile(info, io.BytesIO(data))
            count += 1
    return buffer.getvalue(), count


class ArtifactStore:
    """Artifacts kept in ``state_dir/artifacts``: ``<id>.tar`` and ``<id>.json``."""

    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir) / "artifacts"
        self.unpacked_dir = Path(state_dir) / "unpacked"

    def _tar(self, image_id: str) -> Path:
        return self.dir / f"{image_id}.tar"

    def _meta(self, image_id: str) -> Path:
        return self.dir / f"{image_id}.json"

    def bake(self, source_dir: Path, name: str, version: str, tags: dict[str, str] | None = None) -> Artifact:
        """Package ``source_dir``; baking the same content again returns the artifact already there."""
        source = Path(source_dir)
        if not source.is_dir():
            raise NotFound(f"bake: source directory {source} does not exist")
        if not name:
            raise InvalidInput("bake: an artifact needs a name")
        data, count = pack(source)
        image_id = f"sha256-{hashlib.sha256(data).hexdigest()}"
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._meta(image_id).exists() and self._tar(image_id).exists():
            return self.get(image_id)
        artifact = Artifact(
            image_id, name, str(version), dict(tags or {}), datetime.now(UTC).isoformat(), len(data), count
        )
        _write_atomic(self._tar(image_id), data)
        _write_atomic(self._meta(image_id), json.dumps(asdict(artifact), indent=2).encode())
        return artifact

    def get(self, image_id: str) -> Artifact:
        if not _ID.match(image_id):
            raise ArtifactNotFound(f"{image_id!r} is not a local artifact id (sha256-<64 hex digits>)")
        meta = self._meta(image_id)
        if not meta.exists() or not self._tar(image_id).exists():
            raise ArtifactNotFound(f"artifact {image_id} not found in {self.dir}")
        return Artifact(**json.loads(meta.read_text()))

    def artifacts(self) -> list[Artifact]:
        if not self.dir.exists():
            return []
        found = [self.get(p.stem) for p in self.dir.glob("sha256-*.json") if self._tar(p.stem).exists()]
        return sorted(found, key=lambda a: (a.created, a.id), reverse=True)

    def find(self, name: str | None = None, tags: dict[str, str] | None = None) -> list[Artifact]:
        """Artifacts whose name matches the glob ``name`` and that carry every tag, newest first.

        The version counts as the tag ``version``.
        """
        wanted = tags or {}
        result = []
        for a in self.artifacts():
            if name and not fnmatch.fnmatch(a.name, name):
                continue
            have = {**a.tags, "version": a.version}
            if all(have.get(k) == v for k, v in wanted.items()):
                result.append(a)
        return result

    def resolve(self, image: str) -> str:
        """An artifact id as is (if present), or the newest artifact named ``image`` (glob allowed)."""
        if image.startswith("sha256-"):
            return self.get(image).id
        found = self.find(image)
        if not found:
            raise ArtifactNotFound(f"no local artifact named {image!r} in {self.dir}")
        return found[0].id

    def verify(self, image_id: str) -> None:
        self.get(image_id)
        digest = hashlib.sha256(self._tar(image_id).read_bytes()).hexdigest()
        if f"sha256-{digest}" != image_id:
            raise InvalidInput(f"artifact {image_id} is corrupt: its content hashes to sha256-{digest}")

    def unpack(self, image_id: str, dest: Path | None = None) -> Path:
        """Extract the artifact into ``dest`` (default ``unpacked/<id>``), once; returns the directory."""
        target = Path(dest) if dest is not None else self.unpacked_dir / image_id
        marker = target / ".gennaker-artifact"
        if marker.exists() and marker.read_text().strip() == image_id:
            return target
        self.verify(image_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
        try:
            with tarfile.open(self._tar(image_id)) as tar:
                tar.extractall(staging, filter="data")
            (staging / ".gennaker-artifact").write_text(image_id + "\n")
            if target.exists():
                shutil.rmtree(target)
            try:
                staging.rename(target)
            except OSError:
                # Another process unpacked the same artifact meanwhile: theirs is as good as ours.
                if not (marker.exists() and marker.read_text().strip() == image_id):
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        return target


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
