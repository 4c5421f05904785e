"""The real `spotcheck challenger run` process on anvil, reached through a TCP proxy:

- killed (SIGKILL) between sampling and dispute and again between dispute and settlement, then
  restarted: every cheat ends disputed once, slashed, and the bounty withdrawn, exactly as an
  uninterrupted run would end;
- the RPC endpoint goes away (proxy stopped) while jobs are committed and comes back: the
  challenger backs off, reports not-ready, then catches up.

The model is the tiny MLP (real onnxruntime and ezkl witness in the challenger) registered
with the MockVerifier; nobody defends, so disputes end in settlement.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spotcheck.chain import DisputeStatus, JobStatus, ModelParams
from spotcheck.encoding import onchain_job_key, quantize
from tests.fixtures.chain import MOCK_MODEL, advance
from tests.fixtures.processes import free_port, stop_process, wait_for

pytestmark = [pytest.mark.chain]
ROOT = Path(__file__).resolve().parents[2]


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the anvil endpoint; stop() drops every connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self._conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()


def _states(db: Path) -> dict[str, int]:
    if not db.is_file():
        return {}
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT state, COUNT(*) FROM ch_jobs GROUP BY state").fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()
    return {s: n for s, n in rows}


@pytest.fixture
def tiny_model(
    spotcheck: Any, deployer: Any, project: Any, tiny_mlp_artifacts: Any
) -> tuple[bytes, int]:
    """The tiny MLP registered with its real hashes and a MockVerifier of its own (a verifier
    serves one model); returns (id, tau)."""
    from verifier.tolerance import measure

    a = tiny_mlp_artifacts
    tau = measure(a, random_samples=20).tau
    params = ModelParams(
        input_len=a.input_len,
        output_len=a.output_len,
        input_scale=a.input_scale,
        output_scale=a.output_scale,
        tau=tau,
        challenge_window=MOCK_MODEL.challenge_window,
        proof_window=MOCK_MODEL.proof_window,
    )
    verifier = deployer.deploy(project.MockVerifier)
    struct = params.as_struct(str(verifier.address), a.onnx_hash, a.settings_hash)
    spotcheck.model_registry.registerModel(struct, sender=deployer)
    model_id = bytes(
        spotcheck.model_registry.computeModelId(a.onnx_hash, a.settings_hash, struct["verifier"])
    )
    return model_id, tau


def _start(
    tmp: Path, proxy: TcpProxy, deployment_file: Path, config: Path, account_index: int
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SPOTCHECK_CHALLENGER_POLL_INTERVAL_S": "0.3"}
    log = (tmp / "challenger.log").open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spotcheck.cli",
            "-v",
            "challenger",
            "run",
            "--network",
            f"http://127.0.0.1:{proxy.port}",
            "--account",
            f"TEST::{account_index}",
            "--deployment",
            str(deployment_file),
            "--config",
            str(config),
            "--confirmations",
            "0",
            "--http-port",
            "0",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def test_challengerProcess_killedAndRpcOutage_endsInSameStateAsUninterruptedRun(
    spotcheck: Any,
    tiny_model: tuple[bytes, int],
    tiny_mlp_artifacts: Any,
    node: Any,
    challenger: Any,
    accounts: Any,
    make_job: Callable[..., int],
    chain: Any,
    tmp_path: Path,
) -> None:
    import numpy as np

    from challenger.reexec import ModelReexecutor

    model_id, tau = tiny_model
    reexec = ModelReexecutor(tiny_mlp_artifacts)
    rng = np.random.default_rng(7)

    def commit_jobs(n: int, cheat_every: int) -> list[int]:
        cheats = []
        for k in range(n):
            x = quantize(
                rng.uniform(-1, 1, tiny_mlp_artifacts.input_len), tiny_mlp_artifacts.input_scale
            )
            y = reexec.screen_output(x)  # the honest node's output
            if k % cheat_every == 0:  # one element tau + 1 past the circuit's output
                y = [reexec.witness_output(x)[0] + tau + 1, *y[1:]]
            job_id = make_job(input=x, output=y, model_id=model_id)
            if k % cheat_every == 0:
                cheats.append(job_id)
        return cheats

    deployment_file = spotcheck.deployment.save(tmp_path / "deployment.json")
    config = tmp_path / "challenger.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\ndefault_rate = 1.0\n'
        f'[models."0x{model_id.hex()}"]\nonnx_path = "{tiny_mlp_artifacts.onnx_path}"\n'
    )
    db = tmp_path / "state" / "challenger.sqlite"
    index = next(i for i, a in enumerate(accounts) if a.address == challenger.address)
    proxy = TcpProxy(int(chain.provider.uri.rsplit(":", 1)[1].strip("/")))
    proxy.start()
    balance_before = spotcheck.token.balanceOf(challenger)

    cheats = commit_jobs(6, cheat_every=2)  # 3 cheats, 3 honest
    chain.mine(1)
    proc = _start(tmp_path, proxy, deployment_file, config, index)
    try:
        # Kill 1: as soon as it has sampled (before or while disputing).
        wait_for(lambda: sum(_states(db).values()) >= 1, 120, "first sampled job")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = _start(tmp_path, proxy, deployment_file, config, index)
        # Kill 2: disputes open, before settlement (the proof window has not passed).
        wait_for(lambda: _states(db).get("dispute_open", 0) == 3, 120, "3 open disputes")
        proc.send_signal(signal.SIGKILL)
        proc.wait()

        # RPC outage: the challenger starts, the endpoint disappears, more jobs land meanwhile.
        proc = _start(tmp_path, proxy, deployment_file, config, index)
        time.sleep(8)
        proxy.stop()
        cheats += commit_jobs(4, cheat_every=4)  # 1 more cheat
        chain.mine(1)
        time.sleep(15)  # longer than the read retries (~8 s): whole ticks fail and back off
        assert proc.poll() is None, "the challenger must survive the outage"
        proxy.start()
        wait_for(lambda: _states(db).get("dispute_open", 0) == 4, 120, "catch-up after outage")
        # Four disputes against one node: the per-node proof queue gives each its own window.
        advance(chain, 4 * MOCK_MODEL.proof_window + 1)
        wait_for(lambda: _states(db).get("won", 0) == 4, 120, "settlements")
        wait_for(lambda: spotcheck.dispute_manager.credits(challenger) == 0, 60, "withdrawal")
    finally:
        stop_process(proc, timeout=20)
        proxy.stop()

    assert _states(db) == {"matched": 6, "won": 4}
    dm, jm = spotcheck.dispute_manager, spotcheck.job_manager
    for job_id in cheats:
        d = dm.getDispute(onchain_job_key(job_id))
        assert d.status == DisputeStatus.SLASHED and d.challenger == challenger.address
        assert jm.getJob(job_id).status == JobStatus.INVALID
    bounty = MOCK_MODEL.slash_amount * MOCK_MODEL.bounty_bps // 10_000
    assert spotcheck.token.balanceOf(challenger) == balance_before + 4 * bounty
    log = (tmp_path / "challenger.log").read_text()
    assert "tick failed" in log, "the outage was noticed and retried"
