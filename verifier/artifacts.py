"""Everything a registered model needs, built once and cached by content hash.

``build_artifacts`` turns an ONNX file (plus calibration inputs and an SRS) into ezkl settings,
a compiled circuit, proving and verifying keys, and a compiled Solidity verifier. The cache has
two levels under ``cache_root/models/<circuit key>/``:

- ``circuit/``: model.onnx, calibration.json, settings.json, model.compiled. The circuit key
  hashes the ONNX bytes, the calibration inputs, the :class:`CircuitParams`, the ezkl version
  and :data:`RECIPE_VERSION`, so a changed model or setting never meets a stale circuit.
- ``keys-<srs sha256[:16]>/``: srs, pk, vk, Verifier.sol, Verifier.abi, verifier.json (solc
  output). Keys depend on the SRS too, so its hash names the folder.

Each level is written into a temporary folder and renamed into place, so a crash never leaves a
half entry and concurrent builders agree (the first rename wins).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from eth_utils import keccak

from spotcheck.errors import InputError, ModelError
from verifier import ezkl_backend, resources, solidity
from verifier.ezkl_backend import CircuitParams
from verifier.srs import SrsSource, is_cached, link_or_copy, resolve

log = logging.getLogger(__name__)

#: Bump when the build recipe changes in a way that changes artifacts.
#: 3: canonical settings.json (sorted keys and set-like lists, no build ``timestamp``): a
#: reproducible settingsHash.
#: 4: the calibration set covers its value range (corners and box points, v2 input domain).
RECIPE_VERSION = 4
#: settings.json lists that ezkl fills from hash sets, in an order that changes between runs.
_SET_LIKE_SETTINGS = ("required_lookups", "required_range_checks")
#: Default calibration when none is given: this many uniform samples in [-1, 1], seed 0,
#: followed by the covering points of the default domain (``verifier.domain``).
DEFAULT_CALIBRATION_SAMPLES = 32
#: The input domain of a model built without calibration data (floats, every element).
DEFAULT_FLOAT_DOMAIN = (-1.0, 1.0)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class StageEvent:
    """One build stage that finished, or (``started``) that starts and takes seconds, for
    progress display."""

    stage: str
    seconds: float
    cached: bool
    detail: str = ""
    started: bool = False


Progress = Callable[[StageEvent], None]


@dataclass(frozen=True)
class CircuitArtifacts:
    """Paths and parameters of one model's compiled circuit (inside the cache): all that
    re-execution and witnesses need. No SRS, no keys."""

    onnx_path: Path
    calibration_path: Path
    settings_path: Path
    compiled_path: Path
    input_scale: int
    output_scale: int
    input_shape: tuple[int, ...]
    output_shapes: tuple[tuple[int, ...], ...]
    input_len: int
    output_len: int
    logrows: int
    onnx_hash: bytes  # keccak256(ONNX bytes): ModelRegistry.registerModel's onnxHash
    settings_hash: bytes  # keccak256(settings.json bytes): registerModel's settingsHash
    circuit_key: str

    def calibration_inputs(self) -> np.ndarray:
        """The calibration set as an array of shape (samples, input_len)."""
        data = json.loads(self.calibration_path.read_text())
        return np.asarray(data["input_data"][0], dtype=np.float64).reshape(-1, self.input_len)


@dataclass(frozen=True)
class ModelArtifacts(CircuitArtifacts):
    """The circuit plus the SRS, proving and verifying keys and the EVM verifier: what proving,
    onboarding and deployment need."""

    srs_path: Path
    pk_path: Path
    vk_path: Path
    verifier_sol_path: Path
    verifier_abi_path: Path
    verifier_json_path: Path
    srs_sha256: str
    dev_srs: bool

    @property
    def entry_dir(self) -> Path:
        return self.pk_path.parent

    def compiled_verifier(self) -> solidity.CompiledVerifier:
        return solidity.CompiledVerifier.from_json(self.verifier_json_path.read_text())


def default_cache_root() -> Path:
    """``$SPOTCHECK_CACHE`` or ``.spotcheck-cache/`` in the project root (gitignored)."""
    env = os.environ.get("SPOTCHECK_CACHE")
    return Path(env) if env else PROJECT_ROOT / ".spotcheck-cache"


def keccak_file(path: Path) -> bytes:
    return bytes(keccak(path.read_bytes()))


def _noop(_: StageEvent) -> None:
    return None


@contextmanager
def _timed(
    progress: Progress, stage: str, detail: str = "", *, slow: bool = False
) -> Iterator[None]:
    if slow:
        progress(StageEvent(stage, 0.0, cached=False, started=True))
    start = time.perf_counter()
    yield
    progress(StageEvent(stage, time.perf_counter() - start, cached=False, detail=detail))


def load_model_meta(onnx_path: Path) -> tuple[bytes, tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """Read and check an ONNX file: (bytes, input shape, output shapes), or ModelError."""
    import onnx

    from verifier.onnx_runner import OnnxRunner

    if not onnx_path.is_file():
        raise ModelError(f"ONNX file not found: {onnx_path}")
    raw = onnx_path.read_bytes()
    try:
        proto = onnx.load_from_string(raw)
        onnx.checker.check_model(proto)
    except Exception as err:  # protobuf DecodeError, onnx ValidationError
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"{onnx_path.name} is not a valid ONNX model: {first}") from err
    runner = OnnxRunner(onnx_path)
    return raw, runner.input_shape, tuple(o.shape for o in runner.outputs)


def normalize_calibration(
    calibration: np.ndarray | None, input_shape: tuple[int, ...]
) -> np.ndarray:
    """Calibration inputs as float64 (samples, input_len), extended with the corners and
    random points that cover their value range unless they already do
    (``domain.ensure_covering``). Default: 32 samples uniform in [-1, 1] (seed 0) and the
    covering points of [-1, 1]. Every builder (registrar, node, challenger) calls this, so all
    get the same domain-covering circuit from the same file."""
    from verifier.domain import covering_calibration, ensure_covering

    input_len = int(np.prod(input_shape))
    if calibration is None:
        rng = np.random.default_rng(0)
        samples = rng.uniform(-1.0, 1.0, size=(DEFAULT_CALIBRATION_SAMPLES, input_len))
        return covering_calibration(samples, *DEFAULT_FLOAT_DOMAIN)
    arr = np.asarray(calibration, dtype=np.float64)
    if arr.size == 0 or arr.size % input_len != 0:
        raise InputError(
            f"calibration has {arr.size} values; need a multiple of the input length {input_len}"
        )
    if not np.all(np.isfinite(arr)):
        raise InputError("calibration inputs contain NaN or infinity")
    return ensure_covering(arr.reshape(-1, input_len))


def circuit_key(
    onnx_bytes: bytes, calibration: np.ndarray, params: CircuitParams, ezkl_version: str
) -> str:
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {"recipe": RECIPE_VERSION, "ezkl": ezkl_version, "params": params.as_dict()}
        ).encode()
    )
    h.update(hashlib.sha256(onnx_bytes).digest())
    h.update(np.ascontiguousarray(calibration, dtype="<f8").tobytes())
    h.update(repr(calibration.shape).encode())
    return h.hexdigest()


def _publish(tmp: Path, final: Path) -> None:
    """Rename a finished temp folder into place; if another builder won, keep theirs."""
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _build_circuit(
    folder: Path,
    onnx_bytes: bytes,
    calibration: np.ndarray,
    params: CircuitParams,
    progress: Progress,
) -> None:
    onnx_path = folder / "model.onnx"
    onnx_path.write_bytes(onnx_bytes)
    data_path = folder / "calibration.json"
    data_path.write_text(json.dumps({"input_data": [calibration.ravel().tolist()]}))
    settings_path = folder / "settings.json"
    with _timed(progress, "settings"):
        ezkl_backend.gen_settings(onnx_path, settings_path, params)
    with _timed(
        progress,
        "calibrate",
        f"{calibration.shape[0]} samples, target {params.calibration_target}",
        slow=True,
    ):
        ezkl_backend.calibrate(data_path, onnx_path, settings_path, params)
    _canonicalize_settings(settings_path)
    with _timed(progress, "compile"):
        ezkl_backend.compile_circuit(onnx_path, folder / "model.compiled", settings_path)


def _canonicalize_settings(settings_path: Path) -> None:
    """Rewrite settings.json so that the same model, calibration and parameters always give
    the same bytes: keys sorted, set-like lists sorted, and without the build time ezkl
    writes (``timestamp``).

    ``settingsHash`` is the keccak of these bytes, and challengers rebuild the circuit on
    their own machines and compare it with the registry's. ezkl's own file differs from build
    to build in the timestamp, in the order of keys, and in the order of the lookups and range
    checks it collects in hash sets (it differs between processes), so no rebuild would ever
    match; the content is otherwise a deterministic function of the circuit key's inputs
    (``tests/integration/test_verifier_artifacts_keys.py`` builds in other processes and compares).
    """
    settings = read_settings(settings_path)
    settings.pop("timestamp", None)
    for key in _SET_LIKE_SETTINGS:
        if isinstance(settings.get(key), list):
            settings[key] = sorted(settings[key], key=lambda v: json.dumps(v, sort_keys=True))
    settings_path.write_text(json.dumps(settings, sort_keys=True, separators=(",", ":")))


def _build_keys(folder: Path, circuit: Path, srs_path: Path, progress: Progress) -> None:
    link_or_copy(srs_path, folder / "srs")
    with _timed(progress, "setup", slow=True):
        ezkl_backend.setup(circuit / "model.compiled", folder / "vk", folder / "pk", folder / "srs")
    with _timed(progress, "verifier", slow=True):
        ezkl_backend.create_evm_verifier(
            folder / "vk",
            circuit / "settings.json",
            folder / "Verifier.sol",
            folder / "Verifier.abi",
            folder / "srs",
        )
    with _timed(progress, "solc", slow=True):
        compiled = solidity.compile_verifier(folder / "Verifier.sol")
    (folder / "verifier.json").write_text(compiled.to_json())


def read_settings(settings_path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(settings_path.read_text())
    return loaded


def _scales(settings: dict[str, Any]) -> tuple[int, int]:
    in_scales = settings.get("model_input_scales") or [settings["run_args"]["input_scale"]]
    out_scales = settings.get("model_output_scales") or []
    if len(set(out_scales)) != 1:
        raise ModelError(f"outputs have scales {out_scales}; Spotcheck needs one output scale")
    return int(in_scales[0]), int(out_scales[0])


def build_circuit_from_files(onnx_path: Path, calibration_path: Path | None) -> CircuitArtifacts:
    """:func:`build_circuit` from the files a challenger's config names (the calibration file
    in any format ``spotcheck model`` accepts)."""
    return build_circuit(onnx_path, calibration=_load_calibration(calibration_path))


def build_artifacts_from_files(
    onnx_path: Path,
    calibration_path: Path | None,
    srs_path: Path | None,
    srs_sha256: str | None,
) -> ModelArtifacts:
    """:func:`build_artifacts` from the files a node's config names.

    The calibration file may be in any format ``spotcheck model`` accepts; no ``srs_path``
    means the dev SRS (tests and demos only).
    """
    srs = SrsSource.from_config(srs_path, srs_sha256)
    return build_artifacts(onnx_path, calibration=_load_calibration(calibration_path), srs=srs)


def _load_calibration(path: Path | None) -> np.ndarray | None:
    from verifier.datafiles import load_calibration

    return load_calibration(path) if path is not None else None


def build_circuit(
    onnx_path: Path | str,
    calibration: np.ndarray | None = None,
    cache_root: Path | None = None,
    progress: Progress | None = None,
    params: CircuitParams | None = None,
) -> CircuitArtifacts:
    """Build (or load from cache) the settings, calibration and compiled circuit of
    ``onnx_path``: everything but the SRS and the keys."""
    report = progress or _noop
    params = params or CircuitParams()
    root = cache_root or default_cache_root()

    start = time.perf_counter()
    onnx_bytes, input_shape, output_shapes = load_model_meta(Path(onnx_path))
    cal = normalize_calibration(calibration, input_shape)
    key = circuit_key(onnx_bytes, cal, params, ezkl_backend.version())
    entry = root / "models" / key[:32]
    circuit = entry / "circuit"
    report(StageEvent("check", time.perf_counter() - start, cached=False, detail=f"key {key[:12]}"))

    if circuit.is_dir():
        report(StageEvent("circuit", 0.0, cached=True, detail=str(circuit)))
    else:
        entry.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=entry, prefix=".circuit-"))
        try:
            _build_circuit(tmp, onnx_bytes, cal, params, report)
            _publish(tmp, circuit)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    settings = read_settings(circuit / "settings.json")
    input_scale, output_scale = _scales(settings)
    return CircuitArtifacts(
        onnx_path=circuit / "model.onnx",
        calibration_path=circuit / "calibration.json",
        settings_path=circuit / "settings.json",
        compiled_path=circuit / "model.compiled",
        input_scale=input_scale,
        output_scale=output_scale,
        input_shape=input_shape,
        output_shapes=output_shapes,
        input_len=int(np.prod(input_shape)),
        output_len=sum(int(np.prod(s)) for s in output_shapes),
        logrows=int(settings["run_args"]["logrows"]),
        onnx_hash=bytes(keccak(onnx_bytes)),
        settings_hash=keccak_file(circuit / "settings.json"),
        circuit_key=key,
    )


def build_artifacts(
    onnx_path: Path | str,
    calibration: np.ndarray | None = None,
    cache_root: Path | None = None,
    srs: SrsSource | None = None,
    progress: Progress | None = None,
    params: CircuitParams | None = None,
) -> ModelArtifacts:
    """Build (or load from cache) the circuit, keys and verifier of ``onnx_path``."""
    report = progress or _noop
    srs = srs or SrsSource.dev()
    root = cache_root or default_cache_root()
    circuit = build_circuit(onnx_path, calibration, root, report, params)
    resources.check_fits(circuit.logrows)

    with _timed(report, "srs", srs.describe(), slow=not is_cached(srs, circuit.logrows, root)):
        srs_path, srs_digest = resolve(srs, circuit.logrows, root)
    entry = circuit.compiled_path.parent.parent
    keys = entry / f"keys-{srs_digest[:16]}"
    if keys.is_dir():
        report(StageEvent("keys", 0.0, cached=True, detail=str(keys)))
    else:
        tmp = Path(tempfile.mkdtemp(dir=entry, prefix=".keys-"))
        try:
            _build_keys(tmp, circuit.compiled_path.parent, srs_path, report)
            _publish(tmp, keys)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    return ModelArtifacts(
        **{f.name: getattr(circuit, f.name) for f in fields(CircuitArtifacts)},
        srs_path=keys / "srs",
        pk_path=keys / "pk",
        vk_path=keys / "vk",
        verifier_sol_path=keys / "Verifier.sol",
        verifier_abi_path=keys / "Verifier.abi",
        verifier_json_path=keys / "verifier.json",
        srs_sha256=srs_digest,
        dev_srs=srs.is_dev,
    )
