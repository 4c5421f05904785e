"""The cluster: one anvil, the protocol deployed and the example model registered through the
``spotcheck`` commands the guides show, and every node and challenger a real
``spotcheck node run`` / ``spotcheck challenger run`` process with its own config, account,
database and (challengers) VRF key.

Accounts are anvil's mnemonic accounts, ``TEST::<i>`` for Ape: 0 deploys and registers, the
nodes are 1..n, the challengers follow. A withholding node writes a ``public_url`` into its
batch commitments that points at :class:`Withholder`, a local server answering every listing
request with 503 (challengers must then use on-chain leaf requests), and it never reveals a
requested leaf (``fault_injection.withhold_reveals``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from spotcheck.kit.serve import free_port
from spotcheck.toolchain import PROJECT_ROOT, ensure_anvil_on_path

SPOTCHECK = str(PROJECT_ROOT / ".venv" / "bin" / "spotcheck")
EXAMPLE_ONNX = PROJECT_ROOT / "examples" / "model.onnx"
EXAMPLE_CALIBRATION = PROJECT_ROOT / "examples" / "calibration.json"
COMMAND_TIMEOUT_S = 300


@dataclass(frozen=True)
class NodeSpec:
    label: str
    corrupt_rate: float = 0.0
    withholding: bool = False

    @property
    def role(self) -> str:
        if self.withholding:
            return "withholding"
        return "cheater" if self.corrupt_rate else "honest"


@dataclass(frozen=True)
class ClusterConfig:
    nodes: list[NodeSpec]
    challengers: int
    sampling: float
    challenge_window: int
    proof_window: int
    batch_size: int
    batch_interval_s: float
    confirmations: int
    node_stake_tokens: int
    workdir: Path


def wait_for(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


class Withholder:
    """Answers every request with 503: the URL a withholding node commits for its listings."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b'{"detail": "temporarily unavailable"}'
                self.send_response(503)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()


@dataclass
class Service:
    """One long-running ``spotcheck`` process; ``incarnations`` counts its starts."""

    name: str
    kind: str  # "node" | "challenger"
    role: str
    account_index: int
    address: str
    args: list[str]
    workdir: Path
    http_url: str
    db_path: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    incarnations: int = 0
    kills: list[float] = field(default_factory=list)

    @property
    def log_path(self) -> Path:
        return self.workdir / "service.log"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [SPOTCHECK, "-v", *self.args],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.incarnations += 1

    @property
    def pid(self) -> int | None:
        return None if self.proc is None or self.proc.poll() is not None else self.proc.pid

    def alive(self) -> bool:
        return self.pid is not None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills.append(time.time())

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log_path}")
        path = "/ready" if self.kind == "node" else "/health"
        try:
            return httpx.get(self.http_url + path, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


@dataclass
class Model:
    model_id: str
    tau: int
    input_scale: int
    output_scale: int


def _all(calls: list[Callable[[], None]], workers: int = 3) -> None:
    """Run ``calls`` on ``workers`` threads; the first failure cancels what has not started."""
    pool = ThreadPoolExecutor(workers)
    try:
        for job in [pool.submit(call) for call in calls]:
            job.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _field(output: str, name: str) -> str:
    match = re.search(rf"^{name}\s+(\S+)", output, re.MULTILINE)
    if not match:
        raise RuntimeError(f"no {name!r} line in:\n{output[-2000:]}")
    return match.group(1)


class Cluster:
    """Start anvil, set the chain up, build and run the services; :meth:`close` stops all."""

    def __init__(self, cfg: ClusterConfig) -> None:
        self.cfg = cfg
        self.work = cfg.workdir
        self.work.mkdir(parents=True, exist_ok=True)
        self.deployment = self.work / "deployment.json"
        self.anvil: subprocess.Popen[bytes] | None = None
        self.rpc = ""
        accounts = 1 + len(cfg.nodes) + cfg.challengers
        # Ape derives TEST::<i> for i below this number only (its default is 10)
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "APE_TEST_NUMBER_OF_ACCOUNTS": str(accounts),
        }
        self.nodes: list[Service] = []
        self.challengers: list[Service] = []
        self.model: Model | None = None
        self.withholder: Withholder | None = None
        self.deploy_block = 0

    # -- chain ------------------------------------------------------------------------------

    def start_anvil(self) -> str:
        ensure_anvil_on_path()
        self.env["PATH"] = os.environ["PATH"]
        port = free_port()
        accounts = 1 + len(self.cfg.nodes) + self.cfg.challengers
        with (self.work / "anvil.log").open("wb") as log:
            self.anvil = subprocess.Popen(
                [
                    "anvil",
                    "--port",
                    str(port),
                    "--block-time",
                    "1",
                    "--accounts",
                    str(accounts),
                    "--silent",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.rpc = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
                return httpx.post(self.rpc, json=body, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 30, "anvil")
        return self.rpc

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            [SPOTCHECK, *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        out = proc.stdout + proc.stderr
        with (self.work / "setup.log").open("a") as log:
            log.write(f"$ spotcheck {' '.join(args)}\n{out}\n")
        if proc.returncode != 0:
            last = out.strip().splitlines()[-1] if out.strip() else ""
            raise RuntimeError(f"spotcheck {' '.join(args[:2])} failed: {last}")
        return out

    def _net(self) -> tuple[str, ...]:
        return ("--network", self.rpc, "--deployment", str(self.deployment))

    def setup_chain(self, say: Callable[[str], None]) -> Model:
        c = self.cfg
        self.run(
            "contracts",
            "deploy",
            "--network",
            self.rpc,
            "--account",
            "TEST::0",
            "--unbonding-delay",
            "3600",
            "--commit-timeout",
            "100",
            "--out",
            str(self.deployment),
        )
        self.deploy_block = int(json.loads(self.deployment.read_text()).get("deployBlock", 0))
        say(f"deployed ({self.deployment})")
        out = self.run(
            "model",
            "onboard",
            str(EXAMPLE_ONNX),
            "--calibration",
            str(EXAMPLE_CALIBRATION),
            "--dev-srs",
            "--samples",
            "20",
            "--challenge-window",
            str(c.challenge_window),
            "--proof-window",
            str(c.proof_window),
            "--account",
            "TEST::0",
            *self._net(),
        )
        self.model = Model(
            model_id=_field(out, "model id"),
            tau=int(_field(out, "tau")),
            input_scale=int(_field(out, "input scale")),
            output_scale=int(_field(out, "output scale")),
        )
        say(f"registered the example model {self.model.model_id} (tau {self.model.tau})")

        def fund_node(i: int) -> None:
            acct = ("--account", f"TEST::{i}")
            self.run("contracts", "mint", str(c.node_stake_tokens + 1000), *acct, *self._net())
            self.run("node", "stake", str(c.node_stake_tokens), *acct, *self._net())

        def fund_challenger(i: int) -> None:
            acct = ("--account", f"TEST::{i}")
            self.run("contracts", "mint", "1000000", *acct, *self._net())

        challengers = [self._challenger_account(k) for k in range(c.challengers)]
        calls: list[Callable[[], None]] = [partial(fund_node, 1 + k) for k in range(len(c.nodes))]
        calls += [partial(fund_challenger, i) for i in challengers]
        _all(calls)
        say(f"{len(c.nodes)} nodes staked {c.node_stake_tokens:,} tokens each; challengers funded")
        return self.model

    def _challenger_account(self, k: int) -> int:
        return 1 + len(self.cfg.nodes) + k

    # -- services ---------------------------------------------------------------------------

    def _address(self, index: int) -> str:
        from eth_account import Account

        Account.enable_unaudited_hdwallet_features()
        mnemonic = "test test test test test test test test test test test junk"
        acct = Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{index}")
        return str(acct.address)

    def build_services(self) -> None:
        assert self.model is not None
        c, m = self.cfg, self.model
        onnx, calib = EXAMPLE_ONNX, EXAMPLE_CALIBRATION
        for k, spec in enumerate(c.nodes):
            index = 1 + k
            folder = self.work / f"node{k}"
            folder.mkdir(exist_ok=True)
            port = free_port()
            http = f'[http]\nhost = "127.0.0.1"\nport = {port}\n'
            if spec.withholding:
                if self.withholder is None:
                    self.withholder = Withholder()
                http += f'public_url = "{self.withholder.url}"\n'
            (folder / "node.toml").write_text(
                f'db_path = "node.sqlite"\ndeployment_path = "{self.deployment}"\n'
                f"batch_size = {c.batch_size}\nbatch_interval_s = {c.batch_interval_s}\n"
                f"poll_interval_s = 0.5\nconfirmations = {c.confirmations}\n"
                + http
                + f"[fault_injection]\ncorrupt_rate = {spec.corrupt_rate}\nseed = {k + 1}\n"
                f"withhold_reveals = {'true' if spec.withholding else 'false'}\n"
                f'[models."{m.model_id}"]\nonnx_path = "{onnx}"\ncalibration_path = "{calib}"\n'
                f"input_scale = {m.input_scale}\noutput_scale = {m.output_scale}\ntau = {m.tau}\n"
            )
            args = [
                "node",
                "run",
                "--config",
                str(folder / "node.toml"),
                "--network",
                self.rpc,
                "--account",
                f"TEST::{index}",
            ]
            self.nodes.append(
                Service(
                    spec.label,
                    "node",
                    spec.role,
                    index,
                    self._address(index),
                    args,
                    folder,
                    f"http://127.0.0.1:{port}",
                    folder / "node.sqlite",
                    self.env,
                )
            )
        margin = max(2, c.challenge_window // 3)
        for k in range(c.challengers):
            index = self._challenger_account(k)
            folder = self.work / f"challenger{k}"
            folder.mkdir(exist_ok=True)
            port = free_port()
            (folder / "challenger.toml").write_text(
                f'state_dir = "state"\ndefault_rate = {c.sampling}\n'
                f"confirmations = {c.confirmations}\npoll_interval_s = 1.0\n"
                f'max_bond_at_risk = "1000000"\nleaf_request_margin_s = {margin}\n'
                f"batch_timeout_s = 5.0\nclaim_max_wait_s = 0\nclaim_margin_s = {margin}\n"
                f'[models."{m.model_id}"]\nonnx_path = "{onnx}"\ncalibration_path = "{calib}"\n'
                f'[http]\nhost = "127.0.0.1"\nport = {port}\n'
            )
            config = ["--config", str(folder / "challenger.toml")]
            args = [
                "challenger",
                "run",
                *config,
                "--network",
                self.rpc,
                "--account",
                f"TEST::{index}",
                "--deployment",
                str(self.deployment),
            ]
            self.challengers.append(
                Service(
                    f"challenger{k}",
                    "challenger",
                    "challenger",
                    index,
                    self._address(index),
                    args,
                    folder,
                    f"http://127.0.0.1:{port}",
                    folder / "state" / "challenger.sqlite",
                    self.env,
                )
            )

    def register_challengers(self, bond: int = 100) -> None:
        """Each challenger's own VRF key, registered in the CheckPool (paid checks)."""

        def register(s: Service) -> None:
            config = ("--config", str(s.workdir / "challenger.toml"))
            self.run("challenger", "keygen", *config)
            self.run(
                "challenger",
                "register",
                "--bond",
                str(bond),
                *config,
                "--network",
                self.rpc,
                "--account",
                f"TEST::{s.account_index}",
                "--deployment",
                str(self.deployment),
            )

        _all([partial(register, s) for s in self.challengers])

    def start_services(self, timeout: float = 240) -> None:
        for s in self.services:
            s.start()
        for s in self.services:
            wait_for(s.ready, timeout, f"{s.name} ready")

    @property
    def services(self) -> list[Service]:
        return [*self.nodes, *self.challengers]

    def close(self) -> None:
        for s in self.services:
            try:
                s.stop()
            except Exception as err:  # keep stopping the others
                print(f"stopping {s.name} failed: {err}", flush=True)
        if self.withholder is not None:
            self.withholder.stop()
        if self.anvil is not None:
            self.anvil.terminate()
            try:
                self.anvil.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.anvil.kill()
                self.anvil.wait()
