"""Issue 13 on a real anvil, through the ``spotcheck`` commands a user types: onboarding refuses a
non-owner and an account without ETH before it builds anything, ``model list`` shows what the
registry holds, ``job cancel`` takes back the fee of a request its node never committed (and says
in one line why not before the deadline or for someone else's job), and a slow build stage is
announced when it starts."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spotcheck.toolchain import PROJECT_ROOT
from tests.fixtures.processes import Env, field, running_anvil

pytestmark = pytest.mark.chain

EXAMPLE = PROJECT_ROOT / "examples"
OWNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # TEST::0, the deployer
NODE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # TEST::1 (never started: never commits)
#: Long enough for any machine; the test moves anvil's clock past it (evm_increaseTime).
COMMIT_TIMEOUT_S = 3600


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("onboard-checks")
    with running_anvil(work) as rpc:
        e = Env(rpc, work, {**os.environ, "PYTHONUNBUFFERED": "1"})
        e.run(
            "contracts", "deploy", "--network", rpc, "--account", "TEST::0",
            "--unbonding-delay", "1000", "--commit-timeout", str(COMMIT_TIMEOUT_S),
            "--out", str(work / "deployment.json"),
        )  # fmt: skip
        yield e


def _chain(e: Env, *args: str) -> tuple[str, ...]:
    return (*args, "--network", e.rpc, "--deployment", str(e.work / "deployment.json"))


def _onboard(e: Env, account: str, cache: Path, ok: bool = True) -> str:
    return e.run(
        *_chain(
            e, "model", "onboard", str(EXAMPLE / "model.onnx"),
            "--calibration", str(EXAMPLE / "calibration.json"), "--dev-srs", "--tau", "13",
            "--challenge-window", "15", "--proof-window", "15",
            "--cache", str(cache), "--account", account,
        ),
        ok=ok,
    )  # fmt: skip


def _last_line(out: str) -> str:
    assert "Traceback" not in out, out
    return out.strip().splitlines()[-1]


def test_onboard_nonOwner_isRefusedBeforeAnythingIsBuilt(env: Env) -> None:
    cache = env.work / "cache-non-owner"
    out = _onboard(env, "TEST::1", cache, ok=False)
    assert _last_line(out) == (
        f"error: {NODE} is not the ModelRegistry owner ({OWNER}): registration is owner-only; "
        "onboard with the owner's account (--dry-run builds and measures without registering)"
    )
    assert "building artifacts" not in out
    assert not cache.exists(), "nothing may be built for an account that cannot register"


def _rpc(e: Env, method: str, *params: object) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    answer = httpx.post(e.rpc, json=body, timeout=5).json()
    assert "error" not in answer, answer


def test_onboard_ownerWithoutEth_saysSoInOneLine_beforeBuilding(env: Env) -> None:
    cache = env.work / "cache-no-eth"
    _rpc(env, "anvil_setBalance", OWNER, hex(0))
    try:
        out = _onboard(env, "TEST::0", cache, ok=False)
    finally:
        _rpc(env, "anvil_setBalance", OWNER, hex(10**22))
    assert _last_line(out) == f"error: {OWNER} holds no ETH on this chain: fund it with gas first"
    assert not cache.exists()


def test_modelList_emptyThenTheOnboardedModel(env: Env) -> None:
    out = env.run(*_chain(env, "model", "list"))
    assert "no model registered in ModelRegistry" in out
    onboard = _onboard(env, "TEST::0", PROJECT_ROOT / ".spotcheck-cache")
    model_id = field(onboard, "model id")
    assert f'[models."{model_id}"]' in onboard  # the table for node.toml / challenger.toml
    # records of registrations on earlier chains are dismissed without reverting calls
    assert "reverted without message" not in onboard, onboard
    listed = env.run(*_chain(env, "model", "list"))
    assert re.search(rf"^{model_id}  active  in 4 \(2\*\*13\)  out 2 .* tau 13 ", listed, re.M)
    rows = [json.loads(ln) for ln in env.run(*_chain(env, "model", "list", "--json")).splitlines()
            if ln.startswith("{")]  # fmt: skip
    assert [(r["model_id"], r["tau"], r["active"]) for r in rows] == [(model_id, 13, True)]


def test_jobCancel_beforeDeadline_otherRequester_thenRefundAndWithdraw(env: Env) -> None:
    model_id = field(_onboard(env, "TEST::0", PROJECT_ROOT / ".spotcheck-cache"), "model id")
    env.run(*_chain(env, "contracts", "mint", "100", "--account", "TEST::2"))
    (env.work / "in.json").write_text(json.dumps({"input": [0.1, -0.3, 0.7, 0.2]}))
    out = env.run(
        *_chain(
            env, "job", "request", model_id, "--input", str(env.work / "in.json"),
            "--node", NODE, "--fee", "1.5", "--account", "TEST::2",
        )
    )  # fmt: skip
    job_id = field(out, "job id")

    early = env.run(*_chain(env, "job", "cancel", job_id, "--account", "TEST::2"), ok=False)
    assert re.fullmatch(
        rf"error: job {job_id}: its node may commit until \d+ \(\d+ s from the last block, "
        r"[-\d]+ [:\d]+ UTC\); cancel after that",
        _last_line(early),
    ), early
    stranger = env.run(*_chain(env, "job", "cancel", job_id, "--account", "TEST::3"), ok=False)
    assert "only its requester can cancel it" in _last_line(stranger)

    _rpc(env, "evm_increaseTime", COMMIT_TIMEOUT_S + 1)
    _rpc(env, "evm_mine")
    dry = env.run(*_chain(env, "job", "cancel", job_id, "--account", "TEST::2", "--dry-run"))
    assert f"dry run: would cancelJob({job_id})" in dry
    done = env.run(*_chain(env, "job", "cancel", job_id, "--account", "TEST::2"))
    assert f"cancelled job {job_id}: fee 1.5 (1500000000000000000 base units) credited" in done
    again = env.run(*_chain(env, "job", "cancel", job_id, "--account", "TEST::2"), ok=False)
    assert _last_line(again).endswith(f"job {job_id} is cancelled: only a request the node has "
                                      "not committed can be cancelled")  # fmt: skip
    out = env.run(*_chain(env, "job", "withdraw", "--account", "TEST::2"))
    assert "withdrew 1.5 (1500000000000000000 base units)" in out
    assert "no credits" in env.run(*_chain(env, "job", "withdraw", "--account", "TEST::2"))


def test_build_announcesSetupWhenItStarts_beforeItsTime(env: Env) -> None:
    # A fresh cache: every stage runs (dev SRS, keys, verifier, solc), about 30 s.
    out = env.run(
        "model", "build", str(EXAMPLE / "model.onnx"), "--calibration",
        str(EXAMPLE / "calibration.json"), "--dev-srs", "--cache", str(env.work / "cache-fresh"),
    )  # fmt: skip
    lines = [ln.strip() for ln in out.splitlines()]
    started = lines.index("setup      started ...")
    ended = next(i for i, ln in enumerate(lines) if re.fullmatch(r"setup\s+[\d.]+ s", ln))
    assert started < ended, out


def test_onboard_modelSavedWithIrVersion14_registers(env: Env) -> None:
    """The pinned onnx writes IR 14 by default; onnxruntime 1.31 reads at most 13. The file is
    registered as it is (its own hash); onnxruntime reads it with the IR version lowered."""
    import onnx

    model = onnx.load(str(EXAMPLE / "model.onnx"))
    model.ir_version = 14
    path = env.work / "ir14.onnx"
    path.write_bytes(model.SerializeToString())
    out = env.run(
        *_chain(
            env, "model", "onboard", str(path), "--calibration", str(EXAMPLE / "calibration.json"),
            "--dev-srs", "--tau", "13", "--challenge-window", "15", "--proof-window", "15",
            "--account", "TEST::0",
        )
    )  # fmt: skip
    model_id = field(out, "model id")
    listed = env.run(*_chain(env, "model", "list", "--json"))
    from eth_utils import keccak

    row = next(json.loads(ln) for ln in listed.splitlines() if model_id in ln)
    assert row["onnx_hash"] == "0x" + keccak(path.read_bytes()).hex()
