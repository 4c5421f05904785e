"""Locate the offline toolchain installed by scripts/bootstrap.sh (anvil from npm, solc shim)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from spotcheck.errors import ToolchainError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def anvil_bin_dir(root: Path = PROJECT_ROOT) -> Path | None:
    """Folder of the native anvil binary shipped by the npm package, if installed."""
    for candidate in sorted((root / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil")):
        if os.access(candidate, os.X_OK):
            return candidate.parent
    return None


def ensure_anvil_on_path() -> str:
    """Put the npm anvil's native binary folder first on PATH (so signals reach anvil).

    Returns the path of the anvil that Ape will start. An anvil already on PATH is kept.
    """
    existing = shutil.which("anvil")
    if existing:
        return existing
    folder = anvil_bin_dir()
    if folder is None:
        raise ToolchainError("anvil not found: run `make setup` (installs @foundry-rs/anvil)")
    os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
    return str(folder / "anvil")


def ensure_full_compile(root: Path = PROJECT_ROOT) -> bool:
    """Make Ape recompile every contract when any Solidity source changed since the last check.

    ape-solidity 0.8.6 recompiles only the files that changed, not the files that import them:
    after an edit to ``libraries/SpotcheckHash.sol`` the contracts using it kept their old
    bytecode, and tests and deployments silently ran it. When the hash of all sources under
    ``contracts/`` differs from the one recorded at the last check, this removes Ape's build
    manifest, so that the next use of ``ape.project`` compiles everything. Returns True then.
    """
    digest = hashlib.sha256()
    for path in sorted((root / "contracts").rglob("*.sol")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    build = root / ".build"
    stamp = build / ".spotcheck-sources"
    if stamp.is_file() and stamp.read_text() == digest.hexdigest():
        return False
    build.mkdir(exist_ok=True)
    (build / "__local__.json").unlink(missing_ok=True)
    stamp.write_text(digest.hexdigest())
    return True
