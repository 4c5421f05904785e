"""The guides' commands, as a user runs them: real `spotcheck` processes against one anvil.

One anvil (the npm binary, ``--block-time 1`` so that time moves like on a real chain) lives for
the module. Every step is a subprocess of ``.venv/bin/spotcheck`` with
``--network http://127.0.0.1:<port>``, in the order of the guides:

    contracts deploy -> contracts mint -> model onboard -> node stake -> node run (background)
    -> challenger run (background) -> job request -> job output --wait -> node status
    -> challenger status -> SIGTERM both services -> node unbond

The challenger starts before the first job, as in production: a job whose challenge window
closed before the challenger saw it is only ``missed``.

Accounts, both ways the guides document: the deployer, the requester and the challenger are
Ape test accounts (``--account TEST::<i>``, the anvil mnemonic); the node is a keyfile account
imported with ``ape accounts import`` (into a private ``APE_DATA_FOLDER``) and unlocked
non-interactively with ``APE_ACCOUNTS_<alias>_PASSPHRASE``. Deployment, node database and
challenger state live in a temporary folder; only the content-addressed artifact cache
(``.spotcheck-cache/``) is shared, so onboarding the tiny MLP takes seconds after the first run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from spotcheck.toolchain import PROJECT_ROOT, ensure_anvil_on_path
from tests.fixtures import models

pytestmark = pytest.mark.chain

SPOTCHECK = str(PROJECT_ROOT / ".venv" / "bin" / "spotcheck")
APE = str(PROJECT_ROOT / ".venv" / "bin" / "ape")
#: anvil's (and Ape's test mnemonic's) account #1: the node's key, imported as a keyfile.
NODE_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
NODE_ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
NODE_ALIAS = "e2enode"
NODE_PASSPHRASE = "correct-horse-battery-staple-42"
#: Short windows so that a job is final within the test; their sum < the unbonding delay.
WINDOW_S = 15
COMMAND_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@dataclass(frozen=True)
class Env:
    """The running chain and the folder holding everything this module writes."""

    rpc: str
    work: Path
    env: dict[str, str]

    def run(self, *args: str, ok: bool = True, stdin: str | None = None) -> str:
        """Run ``spotcheck ARGS``; returns stdout + stderr; checks the exit status."""
        proc = subprocess.run(
            [SPOTCHECK, *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        output = proc.stdout + proc.stderr
        if ok:
            assert proc.returncode == 0, f"spotcheck {' '.join(args)} failed:\n{output[-3000:]}"
        else:
            assert proc.returncode != 0, f"spotcheck {' '.join(args)} should fail:\n{output}"
        return output

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("ab")
        return subprocess.Popen(
            [SPOTCHECK, "-v", *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def log(self, name: str) -> str:
        return (self.work / f"{name}.log").read_text(errors="replace")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM, then SIGKILL if it does not exit; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


@pytest.fixture(scope="module")
def anvil_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("operator-cli")
    ensure_anvil_on_path()
    port = _free_port()
    anvil_log = (work / "anvil.log").open("wb")
    anvil = subprocess.Popen(
        ["anvil", "--port", str(port), "--block-time", "1", "--silent"],
        stdout=anvil_log,
        stderr=subprocess.STDOUT,
    )
    try:
        rpc = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
                return httpx.post(rpc, json=body, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(up, 30, "anvil")
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            # Keyfile accounts in a private folder, never the user's ~/.ape.
            "APE_DATA_FOLDER": str(work / "ape-data"),
            f"APE_ACCOUNTS_{NODE_ALIAS}_PASSPHRASE": NODE_PASSPHRASE,
        }
        yield Env(rpc, work, env)
    finally:
        anvil.terminate()
        try:
            anvil.wait(timeout=10)
        except subprocess.TimeoutExpired:
            anvil.kill()
            anvil.wait()
        anvil_log.close()


def _field(output: str, name: str) -> str:
    match = re.search(rf"^{name}\s+(\S+)", output, re.MULTILINE)
    assert match, f"no {name!r} line in:\n{output}"
    return match.group(1)


def test_guides_operatorFlow_onLocalAnvil_everyCommandDoesWhatTheGuidePromises(
    anvil_env: Env,
) -> None:
    e, work = anvil_env, anvil_env.work
    net = ("--network", e.rpc)
    deployment = work / "deployment.json"
    dep = ("--deployment", str(deployment))

    # -- registrar: deploy, fund, onboard --------------------------------------------------
    out = e.run(
        "contracts", "deploy", *net, "--account", "TEST::0",
        "--unbonding-delay", "1000", "--commit-timeout", "100", "--out", str(deployment),
    )  # fmt: skip
    assert f"saved {deployment}" in out
    assert json.loads(deployment.read_text())["chainId"] == 31337

    for i in (1, 2, 3):  # node, requester, challenger
        out = e.run("contracts", "mint", "10000", *net, "--account", f"TEST::{i}", *dep)
        assert "minted 10000 tokens" in out

    onnx = models.build("tiny_mlp", work)
    calibration = work / "calibration.json"
    calibration.write_text(
        json.dumps({"inputs": [[(i * 37 % 200 - 100) / 100 for i in range(k, k + 4)]
                               for k in range(16)]})
    )  # fmt: skip
    out = e.run(
        "model", "onboard", str(onnx), "--calibration", str(calibration), "--dev-srs",
        "--samples", "20", "--challenge-window", str(WINDOW_S), "--proof-window", str(WINDOW_S),
        *net, "--account", "TEST::0", *dep,
    )  # fmt: skip
    model_id, tau = _field(out, "model id"), int(_field(out, "tau"))
    in_scale, out_scale = int(_field(out, "input scale")), int(_field(out, "output scale"))
    assert re.fullmatch(r"0x[0-9a-f]{64}", model_id)

    # -- node: keyfile account, stake, run ----------------------------------------------------
    subprocess.run(
        [APE, "accounts", "import", NODE_ALIAS],
        input=f"{NODE_KEY}\n{NODE_PASSPHRASE}\n{NODE_PASSPHRASE}\n",
        env=e.env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    node_acct = ("--account", NODE_ALIAS)
    out = e.run("node", "stake", "2000", *net, *node_acct, *dep, "--dry-run")
    assert "dry run: would approve StakeManager" in out
    # One-shot commands ask "Sign:" for each transaction (approve, stake) of a keyfile account.
    out = e.run("node", "stake", "2000", *net, *node_acct, *dep, stdin="y\ny\n")
    assert "stake 2000 " in out

    http_port = _free_port()
    (work / "node.toml").write_text(
        f'db_path = "node.sqlite"\ndeployment_path = "deployment.json"\n'
        f"batch_size = 2\nbatch_interval_s = 2\npoll_interval_s = 0.5\n"
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n'
        f'[models."{model_id}"]\nonnx_path = "tiny_mlp.onnx"\n'
        f'calibration_path = "calibration.json"\n'
        f"input_scale = {in_scale}\noutput_scale = {out_scale}\ntau = {tau}\n"
    )
    node_url = f"http://127.0.0.1:{http_port}"
    node = e.start("node", "node", "run", "--config", str(work / "node.toml"), *net, *node_acct)
    challenger: subprocess.Popen[bytes] | None = None
    try:

        def ready() -> bool:
            assert node.poll() is None, f"node exited:\n{e.log('node')}"
            try:
                return httpx.get(f"{node_url}/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(ready, 60, "the node's /ready")
        assert (work / "node.sqlite").is_file(), "db_path is relative to the config file"

        # -- validator: running before any job is committed, like in production -------------
        (work / "challenger.toml").write_text(
            f'state_dir = "challenger-state"\ndefault_rate = 1.0\nconfirmations = 0\n'
            f"poll_interval_s = 0.5\n"
            f'[models."{model_id}"]\nonnx_path = "tiny_mlp.onnx"\n'
            f'calibration_path = "calibration.json"\n'
            f"[http]\nport = {_free_port()}\n"
        )
        ch_config = ("--config", str(work / "challenger.toml"))
        challenger = e.start(
            "challenger", "challenger", "run", *ch_config, *net, "--account", "TEST::3", *dep
        )

        # -- dApp: an on-chain job, read once final ------------------------------------------
        (work / "input.json").write_text(json.dumps({"input": [0.1, -0.3, 0.7, 0.2]}))
        out = e.run(
            "job", "request", model_id, "--input", str(work / "input.json"),
            "--node", NODE_ADDRESS, "--fee", str(10**18), *net, "--account", "TEST::2", *dep,
        )  # fmt: skip
        job_id = _field(out, "job id")

        # -- dApp: a batched job over HTTP -----------------------------------------------------
        answer = httpx.post(
            f"{node_url}/v1/models/{model_id}/infer", json={"input": [0.5, 0.5, -0.9, 0.0]}
        ).json()
        assert answer["receipt"]["node"].lower() == NODE_ADDRESS.lower()

        out = e.run(
            "job", "output", job_id, "--wait", "90", "--finalize", *net,
            "--account", "TEST::2", *dep,
        )  # fmt: skip
        assert "final, hash verified" in out
        output_q = json.loads(re.search(r"^output_q (\[.*\])$", out, re.MULTILINE).group(1))
        assert len(output_q) == 2

        def batched() -> bool:
            r = httpx.get(f"{node_url}/v1/jobs/{answer['receipt']['jobId']}").json()
            return r.get("batchId") is not None

        _wait(batched, 60, "the HTTP job's batch commitment")

        out = e.run("node", "status", *net, *node_acct, *dep, "--config", str(work / "node.toml"))
        assert "stake          2000 " in out
        assert "fees 1 " in out or "fees 1.0" in out, out  # the job's fee, after finalize

        def checked() -> bool:
            assert challenger is not None and challenger.poll() is None, e.log("challenger")
            db = work / "challenger-state" / "challenger.sqlite"
            if not db.is_file():
                return False
            status = e.run("challenger", "status", *ch_config, "--json")
            return json.loads(status)["states"].get("matched", 0) >= 2

        # -- validator: both jobs re-run and found honest ----------------------------------------
        _wait(checked, 60, "the challenger to re-run both jobs")
        out = e.run("challenger", "status", *ch_config)
        assert re.search(r"matched\s+2", out), out
        assert "open dispute" not in out

        # -- stop both services the way an init system does ----------------------------------
        assert _stop(challenger) == 0, e.log("challenger")
        assert _stop(node) == 0, e.log("node")
        assert "stopped" in e.log("node")
    finally:
        for proc in (node, challenger):
            if proc is not None:
                _stop(proc)

    # -- leaving -----------------------------------------------------------------------------
    out = e.run("node", "unbond", *net, *node_acct, *dep, stdin="y\n")
    assert "requestUnbond:" in out and "withdraw after 1000 s" in out
    out = e.run("node", "status", *net, *node_acct, *dep)
    assert re.search(r"^unbonding\s+since \d+", out, re.MULTILINE), out


def test_cli_badInput_endsInOneClearLine(anvil_env: Env, tmp_path: Path) -> None:
    e = anvil_env
    deployment = e.work / "deployment.json"
    cases = [
        # a chain that is not running
        (
            ["node", "status", "--network", f"http://127.0.0.1:{_free_port()}",
             "--account", "TEST::1", "--deployment", str(deployment)],
            "No (supported) node found",
        ),
        # a missing file
        (
            ["model", "onboard", str(tmp_path / "missing.onnx"), "--dev-srs",
             "--network", e.rpc, "--account", "TEST::0"],
            "does not exist",
        ),
        # no deployment on this chain
        (
            ["node", "stake", "10", "--network", e.rpc, "--account", "TEST::1",
             "--deployment", str(tmp_path / "none.json")],
            "no deployment file",
        ),
    ]  # fmt: skip
    if deployment.is_file():  # written by the flow test
        (tmp_path / "in.json").write_text(json.dumps({"input": [0.0, 0.0, 0.0, 0.0]}))
        cases += [
            (
                ["job", "request", "0x" + "11" * 32, "--input", str(tmp_path / "in.json"),
                 "--node", NODE_ADDRESS, "--fee", "1", "--network", e.rpc,
                 "--account", "TEST::2", "--deployment", str(deployment)],
                "is not registered",
            ),
            (
                ["job", "output", "999", "--network", e.rpc, "--account", "TEST::2",
                 "--deployment", str(deployment)],
                "job 999 does not exist",
            ),
            (
                ["node", "stake", "10", "--network", e.rpc, "--account", "TEST::7",
                 "--deployment", str(deployment)],
                "fund it first",
            ),
        ]  # fmt: skip
    for args, expected in cases:
        out = e.run(*args, ok=False)
        last = out.strip().splitlines()[-1]
        assert expected in last, f"{args}: {out}"
        assert "Traceback" not in out, out
