"""``spotcheck challenger keygen`` / ``key show``: the VRF key a challenger registers (issue 15)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from challenger.cli import challenger
from spotcheck import vrf


def _words(out: str) -> dict[str, Any]:
    return json.loads(out)  # type: ignore[no-any-return]


def test_keygen_createsA0600Key_andShowsItsPublicKey(tmp_path: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(challenger, ["keygen", "--state-dir", str(tmp_path), "--json"])
    assert made.exit_code == 0, made.output
    path = tmp_path / "vrf.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    words = _words(made.output)
    sk = int.from_bytes(path.read_bytes(), "big")
    pk = vrf.G2Point(*(int(w, 16) for w in words["public_key"]))
    assert pk == vrf.public_key(sk)
    shown = runner.invoke(challenger, ["key", "show", "--state-dir", str(tmp_path), "--json"])
    assert shown.exit_code == 0 and _words(shown.output) == words


def test_proofOfPossession_verifiesUnderThePublicKey(tmp_path: Path) -> None:
    """The PoP ``register`` sends (bound to the registrant, pool and chain where the installed
    spotcheck.vrf binds it) verifies under the key's public key."""
    import inspect

    from challenger.sampling import load_or_create_secret, proof_of_possession

    secret = load_or_create_secret(tmp_path / "vrf.key")
    sk = int.from_bytes(secret, "big")
    who, pool = "0x" + "11" * 20, "0x" + "22" * 20
    pop = proof_of_possession(secret, who, pool, 31337)
    verify: Any = vrf.verify_possession
    if len(inspect.signature(verify).parameters) > 2:
        assert verify(vrf.public_key(sk), pop, who, pool, 31337)
        assert not verify(vrf.public_key(sk), pop, "0x" + "33" * 20, pool, 31337)
    else:
        assert verify(vrf.public_key(sk), pop)


def test_keygen_twice_keepsTheFirstKey(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(challenger, ["keygen", "--state-dir", str(tmp_path)])
    first = (tmp_path / "vrf.key").read_bytes()
    again = runner.invoke(challenger, ["keygen", "--state-dir", str(tmp_path)])
    assert again.exit_code == 0 and "kept the existing VRF key" in again.output
    assert (tmp_path / "vrf.key").read_bytes() == first


def test_keyShow_withoutAKey_isOneLineAndCreatesNothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(challenger, ["key", "show", "--state-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "no VRF key at" in result.output and "keygen" in result.output
    assert not (tmp_path / "vrf.key").exists()


def test_keyShow_keyReadableByOthers_isRefused(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(challenger, ["keygen", "--state-dir", str(tmp_path)])
    os.chmod(tmp_path / "vrf.key", 0o644)
    result = runner.invoke(challenger, ["key", "show", "--state-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "0600" in str(result.exception) + result.output
