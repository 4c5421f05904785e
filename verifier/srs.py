"""Where the KZG structured reference string (SRS) comes from, honestly.

Production: a user-supplied SRS file from a public ceremony, checked against the SHA-256 the
user states (``SrsSource.file``). Tests and demos: ``SrsSource.dev()`` generates one locally
with ezkl's ``gen_srs``. A dev SRS is NOT secure: whoever generated it can forge proofs, so
the first use of each dev SRS file in a process logs a loud warning and the artifacts remember
it (``ModelArtifacts.dev_srs``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from spotcheck.errors import ConfigError
from verifier import ezkl_backend

log = logging.getLogger(__name__)

DEV_SRS_WARNING = (
    "using a locally generated DEV SRS: NOT SECURE (its generator can forge proofs); "
    "use --srs FILE --srs-sha256 HEX from a public ceremony in production"
)


@dataclass(frozen=True)
class SrsSource:
    """Either a dev SRS (generated, cached per logrows) or a user file with its SHA-256."""

    path: Path | None = None
    sha256: str | None = None

    @classmethod
    def dev(cls) -> SrsSource:
        return cls()

    @classmethod
    def file(cls, path: Path | str, sha256: str) -> SrsSource:
        digest = sha256.lower().removeprefix("0x")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(f"--srs-sha256 must be 64 hex digits, got {sha256!r}")
        return cls(Path(path), digest)

    @classmethod
    def from_config(cls, path: Path | str | None, sha256: str | None) -> SrsSource:
        """A service config's ``srs_path`` / ``srs_sha256``: no path means the dev SRS."""
        if path is None:
            return cls.dev()
        if not sha256:
            raise ConfigError("srs_path needs srs_sha256")
        return cls.file(path, sha256)

    @property
    def is_dev(self) -> bool:
        return self.path is None

    def describe(self) -> str:
        return "dev SRS (insecure)" if self.is_dev else f"{self.path} (sha256 {self.sha256})"


#: dev SRS files this process has warned about
_warned: set[Path] = set()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dev_path(cache_root: Path, logrows: int) -> Path:
    return cache_root / "srs" / f"dev-k{logrows}.srs"


def is_cached(source: SrsSource, logrows: int, cache_root: Path) -> bool:
    """Whether :func:`resolve` returns at once: a dev SRS already generated (a user's file is
    hashed, which takes seconds)."""
    return source.is_dev and _dev_path(cache_root, logrows).exists()


def resolve(source: SrsSource, logrows: int, cache_root: Path) -> tuple[Path, str]:
    """Return ``(path, sha256)`` of an SRS usable for ``logrows``.

    Dev SRS files are cached under ``cache_root/srs/`` and created without ever replacing an
    existing file (link-if-absent), so concurrent builds agree on one SRS per logrows.
    """
    if not source.is_dev:
        assert source.path is not None and source.sha256 is not None
        if not source.path.is_file():
            raise ConfigError(f"SRS file not found: {source.path}")
        actual = sha256_file(source.path)
        if actual != source.sha256:
            raise ConfigError(f"SRS {source.path} has sha256 {actual}, expected {source.sha256}")
        return source.path, actual
    final = _dev_path(cache_root, logrows)
    folder = final.parent
    folder.mkdir(parents=True, exist_ok=True)
    if final not in _warned:  # loud once per process and file, not on every witness
        _warned.add(final)
        log.warning(DEV_SRS_WARNING, extra={"srs": str(final)})
    digest_file = folder / f"dev-k{logrows}.sha256"
    if not final.exists():
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".dev-k{logrows}-")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            log.info("generating dev SRS for logrows %d", logrows)
            ezkl_backend.gen_dev_srs(tmp, logrows)
            # os.link fails if another process won the race: keep theirs
            with contextlib.suppress(FileExistsError):
                os.link(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
    if digest_file.exists() and digest_file.stat().st_mtime >= final.stat().st_mtime:
        return final, digest_file.read_text().strip()
    digest = sha256_file(final)
    _write_atomic(digest_file, digest)
    return final, digest


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp_name, path)


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (same filesystem) or copy it."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
