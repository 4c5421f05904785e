"""The demo's actors, assembled in-process from the services' own building blocks.

Each long-running actor is a thread with a stop event and an error counter; the HTTP API of a
node is a uvicorn server in its own thread. Every actor is stopped by :meth:`stop` (the demo
calls it from a ``finally``, so Ctrl-C and failures stop them too). All threads share the one
Ape connection to the demo's anvil; every actor sends from its own account.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class LoopThread:
    """Call ``step`` every ``interval`` seconds until stopped; errors are counted and logged."""

    def __init__(self, name: str, step: Callable[[], object], interval: float) -> None:
        self.name = name
        self._step = step
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.errors: list[str] = []
        self.steps = 0

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
                self.steps += 1
            except Exception as err:  # an actor must survive a failed round, like the services
                message = f"{type(err).__name__}: {err}"
                self.errors.append(message)
                log.warning("%s: step failed (retrying): %s", self.name, message)
            self._stop.wait(self._interval)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("%s did not stop within %.0f s", self.name, timeout)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HttpServer:
    """A FastAPI app served by uvicorn in a thread on 127.0.0.1."""

    def __init__(self, app: Any, name: str, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)

    def start(self, timeout: float = 15.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"HTTP server on {self.url} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10)


@dataclass
class NodeActor:
    """One inference node: the chain loop (NodeService.step) and its HTTP API."""

    label: str
    account: Any
    node: Any  # prover.node.Node
    http: HttpServer
    loop: LoopThread
    fault_rate: float

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def store(self) -> Any:
        return self.node.store

    @property
    def metrics(self) -> Any:
        return self.node.metrics

    def start(self) -> None:
        self.http.start()
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()
        self.http.stop()
        self.node.engine.close()

    def counter(self, name: str, **labels: str) -> int:
        value = self.metrics.registry.get_sample_value(f"{name}_total", labels)
        return int(value or 0)


def build_node(
    *,
    label: str,
    account: Any,
    contracts: Any,
    model_id: bytes,
    artifacts: Any,
    tau: int,
    workdir: Path,
    fault_rate: float,
    fault_seed: int,
    batch_size: int,
    batch_interval_s: float,
    self_audit_rate: float,
    poll_interval_s: float,
) -> NodeActor:
    """A node assembled by ``prover.node.build_node`` (what ``spotcheck node run`` runs)."""
    from prover.config import load_settings
    from prover.node import build_node as assemble

    folder = workdir / label.lower().replace(" ", "-")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    settings = load_settings(
        None,
        models={
            "0x" + model_id.hex(): {
                "onnx_path": str(artifacts.onnx_path),
                "calibration_path": str(artifacts.calibration_path),
                "input_scale": artifacts.input_scale,
                "output_scale": artifacts.output_scale,
                "tau": tau,
            }
        },
        db_path=str(folder / "node.sqlite"),
        batch_size=batch_size,
        batch_interval_s=batch_interval_s,
        http={"host": "127.0.0.1", "port": port},
        fault_injection={"corrupt_rate": fault_rate, "seed": fault_seed},
        self_audit_rate=self_audit_rate,
        poll_interval_s=poll_interval_s,
    )
    node = assemble(settings, account, contracts)
    http = HttpServer(node.app, f"{label}-http", port)
    loop = LoopThread(f"{label}-loop", node.service.step, poll_interval_s)
    return NodeActor(label, account, node, http, loop, fault_rate)


@dataclass
class ChallengerActor:
    """The challenger: its state machine ticking in a thread."""

    account: Any
    challenger: Any  # challenger.service.Challenger
    db_path: Path
    loop: LoopThread

    @property
    def address(self) -> str:
        return str(self.account.address)

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()


def build_challenger(
    *,
    account: Any,
    contracts: Any,
    model_id: bytes,
    artifacts: Any,
    sampling_rate: float,
    workdir: Path,
    max_bond_at_risk: int,
    poll_interval_s: float,
) -> ChallengerActor:
    """A challenger assembled by ``challenger.runner`` (what ``spotcheck challenger run`` runs).

    It gets the model's files like any validator and checks them against the registry's
    hashes before judging (``challenger.runner.ModelCatalog``).
    """
    from challenger.config import load_settings
    from challenger.runner import build_challenger as assemble

    settings = load_settings(
        None,
        state_dir=str(workdir / "challenger"),
        models={
            "0x" + model_id.hex(): {
                "onnx_path": str(artifacts.onnx_path),
                "calibration_path": str(artifacts.calibration_path),
            }
        },
        default_rate=sampling_rate,
        # anvil does not reorganise; a public chain wants the default depth
        confirmations=0,
        max_bond_at_risk=max_bond_at_risk,
        poll_interval_s=poll_interval_s,
    )
    ch = assemble(settings, account, contracts)
    loop = LoopThread("challenger-loop", ch.tick, poll_interval_s)
    return ChallengerActor(account, ch, settings.db_path, loop)


class Heartbeat:
    """Mines an empty block every ``interval`` seconds, so sampling seeds and time advance."""

    def __init__(self, interval: float = 1.0) -> None:
        from ape import chain

        def mine() -> None:
            chain.mine(1)

        self.loop = LoopThread("heartbeat", mine, interval)

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()
