"""Locate the offline toolchain installed by scripts/bootstrap.sh (anvil from npm, solc shim)."""

from __future__ import annotations

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
