"""The node's start-up checks: refuse to serve what the chain would not back.

Each failed check raises :class:`spotcheck.errors.StartupError` with one line saying what is
wrong and what to do; ``spotcheck node run`` prints it and exits non-zero.

- every configured model is registered (``getModel`` does not revert ``UnknownModel``);
- the ONNX file's bytes hash (keccak256) to the model's registered ``onnxHash``: a node that
  serves another file under a registered id answers questions nobody asked, and loses every
  dispute;
- the configured scales and tau equal the registry's;
- the node is not unbonding and stakes at least the minimum (a commitment would revert),
  unless it still has commitments to answer for: then it starts winding down (no new work;
  disputes, leaf requests and finalizations answered);
- the public URL written into every batch commitment is one a challenger elsewhere can reach:
  set, http(s), and not a loopback or unspecified host (``127.0.0.1``, ``localhost``,
  ``0.0.0.0``, ``::1``), except on a local dev chain (chain id 31337, anvil and hardhat),
  where a missing one defaults to the listening address;
- the HTTP port can be bound (checked before anything is built, and again when the server
  starts: :func:`prover.runner.start_http`).

Models the registry deactivated are served no new work and logged (not an error: their
disputes still need answers).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prover.chain_io import NodeChain, StakeView
from spotcheck.chain import RegisteredModel
from spotcheck.cli_options import format_tokens
from spotcheck.encoding import to_hex
from spotcheck.errors import RevertError, StartupError, describe_revert
from spotcheck.kit import serve

log = logging.getLogger(__name__)


def onnx_hash(path: Path) -> bytes:
    """keccak256 of the ONNX file's bytes: the registry's ``onnxHash``."""
    from eth_utils import keccak

    try:
        return bytes(keccak(Path(path).read_bytes()))
    except OSError as err:
        raise StartupError(f"cannot read ONNX file {path}: {err.strerror or err}") from err


def check_models(chain: NodeChain, specs: Mapping[bytes, Any]) -> dict[bytes, RegisteredModel]:
    """Each configured model against the registry: known, same ONNX bytes, same scales and tau.
    ``specs``: model id -> anything with ``onnx_path``, ``input_scale``, ``output_scale``,
    ``tau``. Returns the registered models (an RPC failure is a ChainError: retried by the
    caller)."""
    found: dict[bytes, RegisteredModel] = {}
    for model_id, spec in specs.items():
        mid = to_hex(model_id)
        try:
            m = chain.model(model_id)
        except RevertError as err:
            raise StartupError(
                f"model {mid} is not registered ({describe_revert(err)}): "
                "onboard it or fix its id in the node config"
            ) from err
        have = onnx_hash(spec.onnx_path)
        if have != m.onnx_hash:
            raise StartupError(
                f"model {mid}: {spec.onnx_path} is not the registered ONNX file "
                f"(keccak256 {to_hex(have)}, registered {to_hex(m.onnx_hash)})"
            )
        mine = (spec.input_scale, spec.output_scale, spec.tau)
        theirs = (m.input_scale, m.output_scale, m.tau)
        if mine != theirs:
            raise StartupError(
                f"model {mid}: configured (input_scale, output_scale, tau) {mine} "
                f"differ from the registry's {theirs}"
            )
        if not m.active:
            log.warning("model deactivated: no new commitments", extra={"model_id": mid})
        found[model_id] = m
    return found


def check_stake(chain: NodeChain, models: Mapping[bytes, RegisteredModel]) -> StakeView:
    """A node that is unbonding, or stakes less than the minimum, cannot commit: it is refused
    when nothing of its own is left on the chain, and otherwise starts *winding down* (logged):
    it takes no new work (:mod:`prover.work_gate`) but answers the disputes, leaf requests and
    finalizations of the commitments it still has (locked stake or open disputes), or it would
    be slashed for them. A free stake below one commitment of a model is logged (the HTTP API
    refuses that model's jobs until it is topped up)."""
    s = chain.stake()
    problem = None
    if s.unbond_requested_at:
        problem = (
            f"node {chain.address} is unbonding (requested at {s.unbond_requested_at}): "
            "every commitment would revert NodeUnbonding"
        )
        remedy = "withdraw (`spotcheck node withdraw`) and stake again to serve"
    elif s.amount < s.min_stake:
        short = s.min_stake - s.amount
        problem = (
            f"node {chain.address} stakes {format_tokens(s.amount)} tokens, below the minimum "
            f"{format_tokens(s.min_stake)}"
        )
        remedy = f"run `spotcheck node stake {format_tokens(short)}`"
    if problem is not None:
        if s.locked == 0 and s.open_disputes == 0:
            raise StartupError(f"{problem}; {remedy}")
        log.error(
            "%s; winding down: no new work, answering the disputes, leaf requests and "
            "finalizations of its open commitments (%s tokens locked, %d open dispute(s))",
            problem,
            format_tokens(s.locked),
            s.open_disputes,
            extra={"node": chain.address},
        )
        return s
    for model_id, m in models.items():
        if s.free < m.slash_amount:
            log.error(
                "free stake %s tokens cannot back one commitment of this model (%s): its jobs "
                "are refused until the stake is topped up",
                format_tokens(s.free),
                format_tokens(m.slash_amount),
                extra={"model_id": to_hex(model_id), "node": chain.address},
            )
    return s


#: The HTTP port can be bound now (``spotcheck.kit.serve.check_port``; the hint names --port).
check_port = partial(serve.check_port, flag="--port")


#: The chain id of a local development chain (anvil, hardhat): loopback URLs are allowed there.
DEV_CHAIN_ID = 31337


def _local_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(
        ".localhost"
    ):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def check_public_url(public_url: str | None, listen_url: str, chain_id: int) -> str:
    """The base URL the node commits in each batch (``<url>/v1/batches/<id>``). Challengers
    fetch the leaves there, so on a real chain it must be set and reachable from elsewhere;
    on a local dev chain (31337) ``listen_url`` stands in for a missing one."""
    dev = chain_id == DEV_CHAIN_ID
    if public_url is None:
        if dev:
            return listen_url
        raise StartupError(
            "http.public_url is not set: every batch commits the URL challengers fetch its "
            f"leaves from (chain {chain_id}); set it to this node's public address"
        )
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StartupError(
            f"http.public_url {public_url!r} is not an http(s) URL with a host "
            "(e.g. https://node.example.org)"
        )
    if not dev and _local_host(parts.hostname):
        raise StartupError(
            f"http.public_url {public_url!r} names a loopback or unspecified host: no "
            f"challenger can fetch a batch there (chain {chain_id}); set the public address"
        )
    return public_url.rstrip("/")
