"""The challenger's start-up checks: refuse to run a configuration that would judge wrongly
or judge nothing (issue 13).

Each failed check raises :class:`spotcheck.errors.StartupError` with one line saying what is
wrong and what to do; ``spotcheck challenger run`` prints it and exits non-zero.

- **models configured**: a live challenger with no ``[models]`` table would follow the chain
  and sample nothing, while ``/ready`` says it is fine: refused (the operator forgot the
  table, or pointed at the wrong config). A dry run with no models only warns: it is a way to
  watch a deployment.
- **every configured model is registered** (``getModel`` does not revert ``UnknownModel``):
  a typo in a model id would otherwise mean "never sampled", silently.
- **the ONNX file's bytes hash (keccak256) to the registered ``onnxHash``**, at start, for
  every model (the circuit's settings hash is checked when the circuit is first built, at the
  first job of the model: building it takes seconds per model). Re-running another file would
  dispute honest nodes and lose bonds.
- **proving keys** (``defend`` is not ``never``): the keys of every configured model are built
  or loaded from the content-hashed cache (the node's), so a dispute on a job we claimed can be
  proven in time (:func:`check_proving_keys`).
- **the HTTP port can be bound** (before anything is built), and the server really listens
  (:func:`serve_checked`); the start line prints the bound port.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from spotcheck.chain import RegisteredModel
from spotcheck.encoding import to_hex
from spotcheck.errors import RevertError, StartupError, describe_revert
from spotcheck.kit import serve
from spotcheck.kit.serve import HttpThread

log = logging.getLogger(__name__)


class ModelSource(Protocol):
    def model(self, model_id: bytes) -> RegisteredModel: ...


def onnx_hash(path: Path) -> bytes:
    """keccak256 of the ONNX file's bytes: the registry's ``onnxHash``."""
    from eth_utils import keccak

    try:
        return bytes(keccak(Path(path).read_bytes()))
    except OSError as err:
        raise StartupError(f"cannot read ONNX file {path}: {err.strerror or err}") from err


def check_model_count(n_models: int, *, dry_run: bool) -> None:
    """Refuse a live challenger with no models; warn in a dry run."""
    if n_models:
        return
    if dry_run:
        log.warning("no models configured: this dry run samples nothing, it only follows")
        return
    raise StartupError(
        "no models configured: a live challenger would sample nothing; add a "
        '[models."0x<model id>"] table with onnx_path (and calibration_path) to the config'
    )


def check_models(chain: ModelSource, onnx_paths: Mapping[bytes, Path]) -> dict[bytes, Any]:
    """Each configured model (id -> ONNX path) is registered and its ONNX bytes are the
    registered ones. Returns the registered models. An RPC failure stays a ChainError."""
    found: dict[bytes, Any] = {}
    for model_id, path in onnx_paths.items():
        mid = to_hex(model_id)
        try:
            m = chain.model(model_id)
        except Exception as err:
            if not _is_revert(err):
                raise  # an RPC failure (ChainError, after the port's retries) or a bug
            raise StartupError(
                f"model {mid} is not registered ({describe_revert(err)}): "
                "fix its id in the challenger config"
            ) from err
        have = onnx_hash(path)
        if have != m.onnx_hash:
            raise StartupError(
                f"model {mid}: {path} is not the registered ONNX file "
                f"(keccak256 {to_hex(have)}, registered {to_hex(m.onnx_hash)}); "
                "judging with another file would dispute honest nodes"
            )
        found[model_id] = m
    return found


def check_claim_rates(chain: Any, policy: Any) -> None:
    """Warn when a model's configured rate is below the CheckPool's: the pool pays for jobs
    this challenger never samples (the same VRF output decides both, so a rate at or above
    the pool's claims every job the pool would pay for)."""
    for model_id in policy.rates:
        pool_bps = int(chain.pool_sampling_bps(model_id))
        ours = policy.rate_bps(model_id)
        if ours < pool_bps:
            log.warning(
                "model %s: sampling rate %d bps is below the CheckPool's %d bps: paid checks "
                "are missed (set rate >= %s)",
                to_hex(model_id),
                ours,
                pool_bps,
                pool_bps / 10_000,
            )


def check_proving_keys(
    files: Mapping[bytes, Any],
    registered: Mapping[bytes, RegisteredModel],
    load: Any = None,
) -> dict[bytes, Any]:
    """Build or load each model's proving keys (``challenger.defence.load_artifacts``); the
    circuit must be the registered one. One-line StartupError for a model that fails."""
    from challenger.defence import load_artifacts

    loader = load or load_artifacts
    built: dict[bytes, Any] = {}
    for model_id, f in files.items():
        mid = to_hex(model_id)
        try:
            artifacts = loader(f)
        except Exception as err:  # ezkl, files, SRS: all one line
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise StartupError(
                f"model {mid}: cannot build its proving keys for defences ({first}); fix "
                'the model files / srs_path, or set defend = "never"'
            ) from err
        m = registered.get(model_id)
        if m is not None and artifacts.settings_hash != m.settings_hash:
            raise StartupError(
                f"model {mid}: the circuit built from {f.onnx_path} is not the registered one "
                "(settings hash differs): its proofs would be refused; fix calibration_path"
            )
        built[model_id] = artifacts
    return built


def _is_revert(err: BaseException) -> bool:
    """A contract call that reverted (Ape's ContractLogicError, or our RevertError)."""
    if isinstance(err, RevertError):
        return True
    try:
        from ape.exceptions import ContractLogicError
    except ImportError:  # pragma: no cover - Ape is a dependency
        return False
    return isinstance(err, ContractLogicError)


#: The HTTP port can be bound now (``spotcheck.kit.serve.check_port``; the hint names --http-port).
check_port = partial(serve.check_port, flag="--http-port")


def serve_checked(app: Any, host: str, port: int, wait_s: float = 15.0) -> HttpThread:
    """Serve ``app`` and wait until the socket listens (StartupError, one line, if not)."""
    http = HttpThread(app, host, port, name="challenger-http")
    try:
        return http.start(wait_s=wait_s)
    except RuntimeError as err:
        http.stop()
        raise StartupError(
            f"cannot listen on {host}:{port}: the HTTP server did not start"
        ) from err
