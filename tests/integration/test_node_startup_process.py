"""``spotcheck node run`` refuses to start, in one line and with a non-zero exit, for each bad
configuration of issue 13 (the real process against anvil, set up as in the guides):

- zero stake (it used to start and serve), and a node that asked to unbond (it kept taking work);
- another ONNX file under the registered model id (it served a 30-element model under a
  4-input id with ``/ready`` true);
- a model id the registry does not know;
- an HTTP port already in use (it kept running with no HTTP server).

And ``node stake`` below the minimum is refused before anything is sent.
The checks themselves, in process: tests/integration/test_node_startup.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from spotcheck.toolchain import PROJECT_ROOT
from tests.fixtures import models
from tests.fixtures.processes import (
    SPOTCHECK,
    Env,
    OnboardedModel,
    free_port,
    onboard_tiny_mlp,
    running_anvil,
)

pytestmark = pytest.mark.chain

#: A node that passes every check serves until stopped: a failing one exits well before this.
START_TIMEOUT_S = 90


@dataclass(frozen=True)
class Setup:
    e: Env
    model: OnboardedModel
    net: tuple[str, ...]
    dep: tuple[str, ...]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("node-startup")
    with running_anvil(work) as rpc:
        e = Env(rpc, work, {**os.environ, "PYTHONUNBUFFERED": "1"})
        net = ("--network", rpc)
        deployment = work / "deployment.json"
        dep = ("--deployment", str(deployment))
        e.run(
            "contracts", "deploy", *net, "--account", "TEST::0", "--unbonding-delay", "1000",
            "--commit-timeout", "600", "--out", str(deployment),
        )  # fmt: skip
        for who in ("TEST::1", "TEST::4"):
            e.run("contracts", "mint", "10000", *net, "--account", who, *dep)
        model = onboard_tiny_mlp(
            e, "--challenge-window", "60", "--proof-window", "30", "--slash", "1",
            *net, "--account", "TEST::0", *dep,
        )  # fmt: skip
        yield Setup(e, model, net, dep)


def _config(s: Setup, name: str, *, table: str | None = None, port: int | None = None) -> Path:
    path = s.e.work / f"{name}.toml"
    path.write_text(
        f'db_path = "{name}.sqlite"\ndeployment_path = "deployment.json"\n'
        f'[http]\nhost = "127.0.0.1"\nport = {port or free_port()}\n'
        + (table if table is not None else s.model.node_toml())
    )
    return path


def _refused(s: Setup, config: Path, account: str) -> str:
    """Run ``node run``; it must exit non-zero; returns its last stderr line (the error)."""
    proc = subprocess.run(
        [SPOTCHECK, "node", "run", "--config", str(config), *s.net, "--account", account],
        cwd=PROJECT_ROOT,
        env=s.e.env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], proc.stderr
    return errors[0]


def test_nodeRun_withZeroStake_refusesInOneLine(setup: Setup) -> None:
    line = _refused(setup, _config(setup, "zero"), "TEST::1")
    assert "stakes 0 tokens, below the minimum" in line
    assert "run `spotcheck node stake " in line


def test_nodeStake_belowTheMinimum_isRefusedBeforeSending(setup: Setup) -> None:
    out = setup.e.run(
        "node", "stake", "5", *setup.net, "--account", "TEST::1", *setup.dep, ok=False
    )
    assert "below the minimum stake" in out.strip().splitlines()[-1]
    status = setup.e.run("node", "status", *setup.net, "--account", "TEST::1", *setup.dep)
    assert "stake          0 (0 base units)" in status


def test_nodeRun_anotherOnnxUnderTheRegisteredId_refusesInOneLine(setup: Setup) -> None:
    s = setup
    s.e.run("node", "stake", "2000", *s.net, "--account", "TEST::1", *s.dep)
    other = models.build("tiny_conv", s.e.work / "other")
    table = s.model.node_toml().replace('onnx_path = "tiny_mlp.onnx"', f'onnx_path = "{other}"')
    line = _refused(s, _config(s, "other-onnx", table=table), "TEST::1")
    assert "is not the registered ONNX file" in line


def test_nodeRun_unknownModelId_refusesInOneLine(setup: Setup) -> None:
    s = setup
    unknown = "0x" + "ab" * 32
    table = s.model.node_toml().replace(s.model.model_id, unknown)
    line = _refused(s, _config(s, "unknown", table=table), "TEST::1")
    assert f"model {unknown} is not registered (UnknownModel(" in line


def test_nodeRun_onAPortInUse_refusesInOneLine(setup: Setup) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _refused(setup, _config(setup, "port", port=port), "TEST::1")
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in line


def test_nodeRun_afterUnbond_refusesInOneLine(setup: Setup) -> None:
    s = setup
    s.e.run("node", "stake", "2000", *s.net, "--account", "TEST::4", *s.dep)
    s.e.run("node", "unbond", *s.net, "--account", "TEST::4", *s.dep)
    line = _refused(s, _config(s, "unbonding"), "TEST::4")
    assert "is unbonding (requested at " in line
