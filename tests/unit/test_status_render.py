"""``spotcheck.status`` and ``spotcheck.dashboard`` without a chain: the text rendering, the
JSON the page reads (exact amounts), the cache's failure rule, and cheap imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from spotcheck.chain import TOKEN
from spotcheck.dashboard import StatusCache, _js_safe
from spotcheck.status import (
    ModelStatus,
    NodeStatus,
    OpenDispute,
    OpenLeafRequest,
    Slash,
    SystemStatus,
    render_text,
)

NODE = "0x70997970C51812dc3A010C7D01b50e0d17dc79C8"


def _status() -> SystemStatus:
    return SystemStatus(
        chain_id=1337,
        head_block=120,
        head_time=1_000_500,
        from_block=1,
        deploy_block=1,
        contracts={"stake_manager": "0xS", "model_registry": "0xM", "job_manager": "0xJ"}
        | {"dispute_manager": "0xD", "token": "0xT", "example_consumer": None},
        min_stake=1000 * TOKEN,
        unbonding_delay_s=86400,
        models=[
            ModelStatus(
                model_id="0x" + "ab" * 32,
                verifier="0xV",
                active=False,
                input_len=4,
                output_len=2,
                tau=2,
                slash=100 * TOKEN,
                challenger_bond=10 * TOKEN,
                bounty_bps=2500,
                challenge_window_s=100,
                proof_window_s=100,
                registered_block=3,
            )
        ],
        nodes=[
            NodeStatus(
                address=NODE,
                stake=9900 * TOKEN + 1,
                locked=100 * TOKEN,
                free=9800 * TOKEN,
                unbonding=False,
                open_disputes=1,
                liveness_failures=0,
                commitments=2,
                last_commit_block=110,
                last_commit_age_s=40,
                live=True,
                why_not_live="",
            )
        ],
        open_disputes=[
            OpenDispute("0x" + "cd" * 32, "batch", 7, 3, 1, NODE, "0xC", 10 * TOKEN, 1_000_600, 100)
        ],
        open_leaf_requests=[
            OpenLeafRequest("0x" + "ef" * 32, 3, 2, NODE, "0xC", 10 * TOKEN, "open", 1_000_560, 0)
        ],
        recent_slashes=[Slash(NODE, 100 * TOKEN, 100 * TOKEN, "0xC", 90, "0x" + "11" * 32)],
    )


def test_renderText_namesEverySectionWithTokensNotBaseUnits() -> None:
    text = render_text(_status())
    assert "models (1)" in text and "INACTIVE" in text and "tau 2" in text
    assert f"{NODE}  LIVE  stake 9900.000000000000000001" in text
    assert "job 7 (batch 3 leaf 1)" in text and "proof due in 100 s" in text
    assert "batch 3 leaf 2" in text and "reveal due for 60 s" in text
    assert "recent slashes (1, newest first)" in text and "slashed 100 of 100" in text
    assert str(100 * TOKEN) not in text


def test_apiJson_largeAmountsAreExactStrings_smallIntsStayNumbers() -> None:
    data = json.loads(json.dumps(_js_safe(_status().to_dict())))
    node = data["nodes"][0]
    assert node["stake"] == str(9900 * TOKEN + 1)
    assert node["open_disputes"] == 1 and node["live"] is True
    assert data["head_block"] == 120


def test_statusCache_failedRead_keepsLastGoodStatusAndOneLineError() -> None:
    reads = iter([_status(), RuntimeError("rpc down\ntraceback line")])

    def read() -> SystemStatus:
        item = next(reads)
        if isinstance(item, Exception):
            raise item
        return item

    cache = StatusCache(read)
    assert cache.snapshot()["status"] is None
    cache.refresh()
    cache.refresh()
    snap = cache.snapshot()
    assert snap["status"]["chain_id"] == 1337
    assert snap["error"] == "RuntimeError: rpc down"


@pytest.mark.parametrize("module", ["spotcheck.status", "spotcheck.dashboard"])
def test_import_commandModules_importNoApeFastapiOrMatplotlib(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print([m for m in ('ape', 'fastapi', 'matplotlib', 'uvicorn') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_statusCommand_unparsableNetwork_failsInOneLineNotAListOfAllNetworks() -> None:
    from click.testing import CliRunner

    from spotcheck.status import status

    result = CliRunner().invoke(status, ["--network", "localhost:8545"])
    assert result.exit_code == 2
    [error] = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert "No ecosystem named 'localhost'" in error and "ethereum:local:http://" in error
    assert len(result.output.splitlines()) <= 4


def test_statusCommand_hasNoAccountOption() -> None:
    """A read needs no account: no --account option, so no account prompt."""
    from click.testing import CliRunner

    from spotcheck.status import status

    result = CliRunner().invoke(status, ["--help"])
    assert result.exit_code == 0
    assert "--network" in result.output and "--account" not in result.output
