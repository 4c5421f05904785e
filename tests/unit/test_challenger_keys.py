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
    """The PoP ``register`` sends (``spotcheck.check_pool.possession``, bound to the
    registrant, the pool and the chain) verifies under the key's public key, and only for
    that registrant, pool and chain."""
    from types import SimpleNamespace

    from challenger.sampling import load_or_create_secret, secret_scalar
    from spotcheck.check_pool import possession

    secret = load_or_create_secret(tmp_path / "vrf.key")
    key = vrf.keypair(secret_scalar(secret))
    who, other = "0x" + "11" * 20, "0x" + "33" * 20
    pool: Any = SimpleNamespace(
        address="0x" + "22" * 20, chain_manager=SimpleNamespace(chain_id=31337)
    )
    pop = possession(pool, key, who)
    assert vrf.verify_possession(key.public, pop, who, pool.address, 31337)
    assert not vrf.verify_possession(key.public, pop, other, pool.address, 31337)
    assert not vrf.verify_possession(key.public, pop, who, other, 31337)
    assert not vrf.verify_possession(key.public, pop, who, pool.address, 1)


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
