"""The artifacts cache with keys and the compiled EVM verifier (ezkl's verifier is compiled with
solc, so these need the Solidity toolchain; the cache's other rules are in tests/unit)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

from spotcheck.errors import ConfigError
from verifier import artifacts as art
from verifier.artifacts import PROJECT_ROOT
from verifier.srs import SrsSource, sha256_file


def test_secondBuild_isInstantAndIdentical(tiny_mlp_artifacts: Any, tiny_mlp_onnx: Path) -> None:
    start = time.perf_counter()
    again = art.build_artifacts(tiny_mlp_onnx, srs=SrsSource.dev())
    assert time.perf_counter() - start < 1.0
    assert again == tiny_mlp_artifacts


def test_circuitOnlyBuild_makesNoKeys_andMatchesTheFullBuildsCircuit(
    tmp_path: Path, tiny_mlp_onnx: Path, tiny_mlp_artifacts: Any
) -> None:
    """What a challenger builds: settings and compiled circuit, no SRS, no proving key."""
    circuit = art.build_circuit(tiny_mlp_onnx, cache_root=tmp_path)
    assert not list(tmp_path.rglob("pk")) and not list(tmp_path.rglob("srs*"))
    assert circuit.compiled_path.is_file()
    full = {f.name: getattr(tiny_mlp_artifacts, f.name) for f in dataclasses.fields(circuit)}
    for name in ("onnx_path", "calibration_path", "settings_path", "compiled_path"):
        full.pop(name)  # same content, another cache root
    assert {k: v for k, v in dataclasses.asdict(circuit).items() if k in full} == full


_BUILD_IN_A_NEW_PROCESS = """
import sys
from pathlib import Path
from verifier.artifacts import build_circuit
print(build_circuit(Path(sys.argv[1]), cache_root=Path(sys.argv[2])).settings_hash.hex())
"""


def test_settingsHash_isTheSameInEveryProcess(
    tmp_path: Path, tiny_mlp_onnx: Path, tiny_mlp_artifacts: Any
) -> None:
    """A challenger rebuilds the circuit on its own machine and must get the registry's
    settingsHash. ezkl orders some settings lists by hash-set iteration, which changes between
    processes (the cause of a CI failure), so this builds in fresh processes."""
    hashes = {
        subprocess.run(
            [
                sys.executable,
                "-c",
                _BUILD_IN_A_NEW_PROCESS,
                str(tiny_mlp_onnx),
                str(tmp_path / str(i)),
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
        ).stdout.split()[-1]
        for i in range(3)
    }
    assert hashes == {tiny_mlp_artifacts.settings_hash.hex()}


def test_hashes_areKeccakOfFileBytes(tiny_mlp_artifacts: Any, tiny_mlp_onnx: Path) -> None:
    assert tiny_mlp_artifacts.onnx_hash == keccak(tiny_mlp_onnx.read_bytes())
    assert tiny_mlp_artifacts.settings_hash == keccak(tiny_mlp_artifacts.settings_path.read_bytes())


def test_artifacts_describeCircuitForRegistry(tiny_mlp_artifacts: Any) -> None:
    a = tiny_mlp_artifacts
    assert (a.input_len, a.output_len, a.input_shape) == (4, 2, (1, 4))
    assert 0 < a.input_scale <= 26 and 0 < a.output_scale <= 52
    assert a.logrows <= 17 and a.dev_srs
    for path in (a.pk_path, a.vk_path, a.compiled_path, a.verifier_sol_path, a.verifier_json_path):
        assert path.is_file() and path.stat().st_size > 0
    assert a.calibration_inputs().shape[1] == 4


def test_userSrsWithMatchingHash_reusesKeys(tiny_mlp_artifacts: Any, tiny_mlp_onnx: Path) -> None:
    srs_file = tiny_mlp_artifacts.srs_path
    user = SrsSource.file(srs_file, sha256_file(srs_file))
    built = art.build_artifacts(tiny_mlp_onnx, srs=user)
    assert built.pk_path == tiny_mlp_artifacts.pk_path
    assert not built.dev_srs


def test_userSrsWithWrongHash_raisesConfigError(
    tiny_mlp_artifacts: Any, tiny_mlp_onnx: Path
) -> None:
    user = SrsSource.file(tiny_mlp_artifacts.srs_path, "00" * 32)
    with pytest.raises(ConfigError, match="expected 0000"):
        art.build_artifacts(tiny_mlp_onnx, srs=user)


def test_frozenArtifacts_cannotBeMutated(tiny_mlp_artifacts: Any) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny_mlp_artifacts.logrows = 3


def test_buildFromFiles_equalsBuildArtifacts(tiny_mlp_artifacts: Any, tiny_mlp_onnx: Path) -> None:
    built = art.build_artifacts_from_files(tiny_mlp_onnx, None, None, None)
    assert built == art.build_artifacts(tiny_mlp_onnx, srs=SrsSource.dev())
