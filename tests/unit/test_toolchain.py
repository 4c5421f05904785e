"""spotcheck.toolchain: the stale-build guard around ape-solidity's incremental compile."""

from __future__ import annotations

from pathlib import Path

from spotcheck.toolchain import ensure_full_compile


def _manifest(root: Path) -> Path:
    path = root / ".build" / "__local__.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text("{}")
    return path


def test_ensureFullCompile_dropsTheManifest_onlyWhenASourceChanged(tmp_path: Path) -> None:
    lib = tmp_path / "contracts" / "libraries" / "Lib.sol"
    lib.parent.mkdir(parents=True)
    lib.write_text("library Lib {}")
    (tmp_path / "contracts" / "User.sol").write_text('import "./libraries/Lib.sol";')
    manifest = _manifest(tmp_path)

    assert ensure_full_compile(tmp_path)  # first check: nothing recorded yet
    assert not manifest.exists()
    _manifest(tmp_path)  # Ape compiles everything and writes it again
    assert not ensure_full_compile(tmp_path)
    assert manifest.exists()

    lib.write_text("library Lib { uint256 constant X = 1; }")  # an imported file changes
    assert ensure_full_compile(tmp_path)
    assert not manifest.exists()
