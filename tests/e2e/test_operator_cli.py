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
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spotcheck.toolchain import PROJECT_ROOT
from tests.fixtures.processes import (
    APE,
    COMMAND_TIMEOUT_S,
    Env,
    field,
    free_port,
    onboard_tiny_mlp,
    running_anvil,
    stop_process,
    wait_for,
)

pytestmark = pytest.mark.chain

#: anvil's (and Ape's test mnemonic's) account #1: the node's key, imported as a keyfile.
NODE_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
NODE_ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
NODE_ALIAS = "e2enode"
NODE_PASSPHRASE = "correct-horse-battery-staple-42"
#: Short windows so that a job is final within the test; their sum < the unbonding delay.
WINDOW_S = 15


@pytest.fixture(scope="module")
def anvil_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("operator-cli")
    with running_anvil(work) as rpc:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            # Keyfile accounts in a private folder, never the user's ~/.ape.
            "APE_DATA_FOLDER": str(work / "ape-data"),
            f"APE_ACCOUNTS_{NODE_ALIAS}_PASSPHRASE": NODE_PASSPHRASE,
        }
        yield Env(rpc, work, env)


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

    model = onboard_tiny_mlp(
        e, "--challenge-window", str(WINDOW_S), "--proof-window", str(WINDOW_S),
        *net, "--account", "TEST::0", *dep,
    )  # fmt: skip
    model_id = model.model_id
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

    http_port = free_port()
    (work / "node.toml").write_text(
        f'db_path = "node.sqlite"\ndeployment_path = "deployment.json"\n'
        f"batch_size = 2\nbatch_interval_s = 2\npoll_interval_s = 0.5\n"
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n' + model.node_toml()
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

        wait_for(ready, 60, "the node's /ready")
        assert (work / "node.sqlite").is_file(), "db_path is relative to the config file"

        # -- validator: running before any job is committed, like in production -------------
        (work / "challenger.toml").write_text(
            'state_dir = "challenger-state"\ndefault_rate = 1.0\nconfirmations = 0\n'
            "poll_interval_s = 0.5\n" + model.files_toml() + f"[http]\nport = {free_port()}\n"
        )
        ch_config = ("--config", str(work / "challenger.toml"))
        challenger = e.start(
            "challenger", "challenger", "run", *ch_config, *net, "--account", "TEST::3", *dep
        )

        # -- dApp: an on-chain job, read once final ------------------------------------------
        (work / "input.json").write_text(json.dumps({"input": [0.1, -0.3, 0.7, 0.2]}))
        out = e.run(
            "job", "request", model_id, "--input", str(work / "input.json"),
            "--node", NODE_ADDRESS, "--fee", "1", *net, "--account", "TEST::2", *dep,
        )  # fmt: skip
        job_id = field(out, "job id")

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
        match = re.search(r"^output_q (\[.*\])$", out, re.MULTILINE)
        assert match, out
        output_q = json.loads(match.group(1))
        assert len(output_q) == 2

        def batched() -> bool:
            r = httpx.get(f"{node_url}/v1/jobs/{answer['receipt']['jobId']}").json()
            return r.get("batchId") is not None

        wait_for(batched, 60, "the HTTP job's batch commitment")

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
        wait_for(checked, 60, "the challenger to re-run both jobs")
        out = e.run("challenger", "status", *ch_config)
        assert re.search(r"matched\s+2", out), out
        assert "open dispute" not in out

        # -- stop both services the way an init system does ----------------------------------
        assert stop_process(challenger) == 0, e.log("challenger")
        assert stop_process(node) == 0, e.log("node")
        assert "stopped" in e.log("node")
    finally:
        for proc in (node, challenger):
            if proc is not None:
                stop_process(proc)

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
            ["node", "status", "--network", f"http://127.0.0.1:{free_port()}",
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
