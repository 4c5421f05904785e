"""``spotcheck challenger dispute``: a manual dispute of one job (issue 13).

It re-runs the job with the configured files, shows the verdict, sends only with ``--yes``,
refuses what would lose (a matching output, an existing dispute), and a revert reaches the
user decoded by name. The tiny MLP (real onnxruntime and ezkl witness) on anvil."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from challenger.chain_io import ApeChain
from challenger.cli import _dispute_impl
from challenger.manual import onchain_target, send
from spotcheck.chain import DisputeStatus
from spotcheck.encoding import onchain_job_key, quantize
from spotcheck.errors import ChainError, InputError
from tests.integration.test_challenger_process import tiny_model  # noqa: F401 (fixture)

pytestmark = pytest.mark.chain


@pytest.fixture
def setup(
    spotcheck: Any,
    tiny_model: tuple[bytes, int],  # noqa: F811
    tiny_mlp_artifacts: Any,
    make_job: Callable[..., int],
    tmp_path: Path,
) -> tuple[Path, Path, int, int]:
    """(deployment file, config, cheating job, honest job)."""
    from challenger.reexec import ModelReexecutor

    model_id, tau = tiny_model
    a = tiny_mlp_artifacts
    reexec = ModelReexecutor(a)
    x = quantize(np.random.default_rng(3).uniform(-1, 1, a.input_len), a.input_scale)
    honest = make_job(input=x, output=reexec.screen_output(x), model_id=model_id)
    bad = [reexec.witness_output(x)[0] + tau + 1, *reexec.screen_output(x)[1:]]
    cheat = make_job(input=x, output=bad, model_id=model_id)
    deployment = Path(spotcheck.deployment.save(tmp_path / "deployment.json"))
    config = tmp_path / "challenger.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[models."0x{model_id.hex()}"]\nonnx_path = "{a.onnx_path}"\n'
    )
    return deployment, config, cheat, honest


def _dispute(account: Any, setup: tuple[Path, Path, int, int], job_id: int, *, yes: bool) -> None:
    deployment, config, _, _ = setup
    _dispute_impl(account, deployment, config, job_id, None, None, yes, False)


def test_dispute_cheat_showsMismatch_sendsOnlyWithYes_thenRefusesASecond(
    spotcheck: Any, challenger: Any, setup: tuple[Path, Path, int, int],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _, _, cheat, _ = setup
    dm = spotcheck.dispute_manager
    _dispute(challenger, setup, cheat, yes=False)
    out = capsys.readouterr().out
    assert "verdict: MISMATCH" in out and "run again with --yes" in out
    assert DisputeStatus(int(dm.getDispute(onchain_job_key(cheat)).status)) is DisputeStatus.NONE

    _dispute(challenger, setup, cheat, yes=True)
    out = capsys.readouterr().out
    assert f"dispute opened on job {cheat}: 0x" in out
    d = dm.getDispute(onchain_job_key(cheat))
    assert DisputeStatus(int(d.status)) is DisputeStatus.OPEN
    assert str(d.challenger) == str(challenger.address)

    with pytest.raises(InputError, match=r"job \d+ is disputed"):
        _dispute(challenger, setup, cheat, yes=True)  # the job left Committed


def test_dispute_honestJob_saysNothingToDispute_andSendsNothing(
    spotcheck: Any, challenger: Any, setup: tuple[Path, Path, int, int],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _, _, _, honest = setup
    _dispute(challenger, setup, honest, yes=True)
    out = capsys.readouterr().out
    assert "verdict: MATCH" in out and "nothing to dispute" in out
    d = spotcheck.dispute_manager.getDispute(onchain_job_key(honest))
    assert DisputeStatus(int(d.status)) is DisputeStatus.NONE


def test_dispute_revert_reachesTheUserDecodedByName(
    spotcheck: Any, challenger: Any, setup: tuple[Path, Path, int, int]
) -> None:
    """Sent past the checks (a race with another challenger): the revert is named."""
    _, _, cheat, _ = setup
    chain = ApeChain.from_contracts(spotcheck.contracts, challenger)
    target = onchain_target(chain, cheat)
    bond = chain.model(target.model_id).challenger_bond
    send(chain, target, bond)
    with pytest.raises(ChainError, match=r"DisputeExists\(disputeId=0x"):
        send(chain, target, bond)
