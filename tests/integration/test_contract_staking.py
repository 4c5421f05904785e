"""StakeManager and ModelRegistry through Ape on anvil; a malicious re-entrant token."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import ape
import pytest
from eth_utils import keccak

from spotcheck import encoding
from spotcheck.chain import (
    FIELD_HALF,
    MAX_BOUNTY_BPS,
    MAX_TAU,
    TOKEN,
    DeployParams,
    ModelParams,
    stake_for,
)
from spotcheck.deploy import deploy_all
from spotcheck.errors import ConfigError
from tests.fixtures.chain import FUNDING, MOCK_MODEL, NODE_STAKE, TEST_PARAMS, advance

pytestmark = pytest.mark.chain
REENTRANCY = keccak(text="ReentrancyGuardReentrantCall()")[:4]


def test_stake_addsToTotal_andEmits(spotcheck: Any, node: Any) -> None:
    sm = spotcheck.stake_manager
    receipt = sm.stake(5 * TOKEN, sender=node)
    [event] = receipt.events.filter(sm.Staked)
    assert event.total == NODE_STAKE + 5 * TOKEN
    assert sm.stakeOf(node).amount == NODE_STAKE + 5 * TOKEN
    assert sm.freeStake(node) == NODE_STAKE + 5 * TOKEN
    assert sm.canCommit(node, MOCK_MODEL.slash_amount)


def test_stake_zero_reverts(spotcheck: Any, node: Any) -> None:
    with ape.reverts(spotcheck.stake_manager.ZeroAmount):
        spotcheck.stake_manager.stake(0, sender=node)


def test_unbond_fullCycle_afterDelay_returnsStake(spotcheck: Any, node: Any, chain: Any) -> None:
    sm, token = spotcheck.stake_manager, spotcheck.token
    receipt = sm.requestUnbond(sender=node)
    [event] = receipt.events.filter(sm.UnbondRequested)
    assert not sm.canCommit(node, 0)
    with ape.reverts(sm.NodeUnbonding, node=node):
        sm.requestUnbond(sender=node)
    with ape.reverts(sm.NodeUnbonding, node=node):
        sm.stake(TOKEN, sender=node)
    with ape.reverts(sm.UnbondingDelayNotOver, node=node, readyAt=event.readyAt):
        sm.withdrawStake(sender=node)
    advance(chain, TEST_PARAMS.unbonding_delay + 1)
    before = token.balanceOf(node)
    sm.withdrawStake(sender=node)
    assert token.balanceOf(node) == before + NODE_STAKE
    assert sm.stakeOf(node).amount == 0 and sm.stakeOf(node).unbondRequestedAt == 0
    sm.stake(TOKEN, sender=node)  # fully exited nodes may come back


def test_withdrawStake_leavesLockedStake_untilCommitmentResolves(
    spotcheck: Any, make_job: Any, node: Any, outsider: Any, chain: Any
) -> None:
    sm, jm = spotcheck.stake_manager, spotcheck.job_manager
    job_id = make_job()
    sm.requestUnbond(sender=node)
    advance(chain, TEST_PARAMS.unbonding_delay + 1)
    sm.withdrawStake(sender=node)
    assert sm.stakeOf(node).amount == MOCK_MODEL.slash_amount  # still backing the open job
    with ape.reverts(sm.ZeroAmount):
        sm.withdrawStake(sender=node)
    jm.finalize(job_id, sender=outsider)
    sm.withdrawStake(sender=node)
    assert sm.stakeOf(node).amount == 0


def test_withdrawStake_withoutRequest_reverts(spotcheck: Any, node: Any) -> None:
    with ape.reverts(spotcheck.stake_manager.NotUnbonding, node=node):
        spotcheck.stake_manager.withdrawStake(sender=node)


def test_requestUnbond_withoutStake_reverts(spotcheck: Any, outsider: Any) -> None:
    with ape.reverts(spotcheck.stake_manager.ZeroAmount):
        spotcheck.stake_manager.requestUnbond(sender=outsider)


# ---------------------------------------------------------------- registry


@pytest.fixture
def fresh_verifier(project: Any, deployer: Any) -> Any:
    """A MockVerifier no model uses yet (a verifier serves one model only)."""
    return deployer.deploy(project.MockVerifier)


def test_registerModel_byNonOwner_reverts(
    spotcheck: Any, mock_verifier: Any, outsider: Any
) -> None:
    reg = spotcheck.model_registry
    struct = MOCK_MODEL.as_struct(str(mock_verifier.address), b"\x01" * 32, b"\x02" * 32)
    with ape.reverts(reg.NotRegistrar, caller=outsider):
        reg.registerModel(struct, sender=outsider)
    with ape.reverts(reg.NotRegistrar, caller=outsider):
        reg.deactivateModel(spotcheck.model_id, sender=outsider)


def test_registerModel_storesParams_andIdBindsHashesAndVerifier(
    spotcheck: Any, fresh_verifier: Any, deployer: Any, chain: Any
) -> None:
    reg, v = spotcheck.model_registry, fresh_verifier
    params = replace(MOCK_MODEL, in_lo=-5, in_hi=7, min_fee=3 * TOKEN)
    struct = params.as_struct(str(v.address), b"\x01" * 32, b"\x02" * 32)
    receipt = reg.registerModel(struct, sender=deployer)
    model_id = receipt.return_value
    expected = keccak(b"\x01" * 32 + b"\x02" * 32 + bytes(12) + bytes.fromhex(v.address[2:]))
    assert model_id == expected == reg.computeModelId(b"\x01" * 32, b"\x02" * 32, v)
    assert model_id == encoding.model_id(b"\x01" * 32, b"\x02" * 32, v.address)
    m = reg.getModel(model_id)
    assert (m.inputLen, m.outputLen, m.tau, m.active) == (4, 2, MOCK_MODEL.tau, True)
    assert m.slashAmount == MOCK_MODEL.slash_amount and m.bountyBps == MOCK_MODEL.bounty_bps
    assert (m.inLo, m.inHi, m.minFee) == (-5, 7, 3 * TOKEN)
    code_hash = keccak(bytes(chain.provider.web3.eth.get_code(v.address)))
    assert m.verifierCodeHash == code_hash
    [terms] = receipt.events.filter(reg.ModelTermsRegistered)
    assert (terms.inLo, terms.inHi, terms.minFee) == (-5, 7, 3 * TOKEN)
    assert terms.verifierCodeHash == code_hash
    assert reg.modelOfVerifier(v) == model_id
    with ape.reverts(reg.VerifierInUse, verifier=v.address, modelId=model_id):
        reg.registerModel(struct, sender=deployer)


def test_registerModel_verifierOfAnotherModel_reverts(
    spotcheck: Any, mock_verifier: Any, deployer: Any
) -> None:
    """Attack (v1): two models sharing one verifier (same circuit, other settings or tau): a
    proof for one is a defence of the other. Now a verifier serves one model id only."""
    reg = spotcheck.model_registry
    struct = replace(MOCK_MODEL, tau=1000).as_struct(
        str(mock_verifier.address), b"\x0a" * 32, b"\x0b" * 32
    )
    with ape.reverts(reg.VerifierInUse, verifier=mock_verifier.address, modelId=spotcheck.model_id):
        reg.registerModel(struct, sender=deployer)


def test_registerModel_windowsNotInsideUnbondingDelay_reverts(
    spotcheck: Any, fresh_verifier: Any, deployer: Any
) -> None:
    reg = spotcheck.model_registry
    params = replace(MOCK_MODEL, challenge_window=600, proof_window=400)  # == delay 1000
    struct = params.as_struct(str(fresh_verifier.address), b"\x03" * 32, b"\x04" * 32)
    with ape.reverts(
        reg.WindowsExceedUnbondingDelay,
        challengeWindow=600,
        proofWindow=400,
        unbondingDelay=TEST_PARAMS.unbonding_delay,
    ):
        reg.registerModel(struct, sender=deployer)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"input_len": 4097}, "inputLen"),
        ({"output_len": 4097}, "outputLen"),
        ({"proof_window": 0}, "zero window"),
        ({"challenger_bond": 0}, "zero challenger bond"),
        ({"slash_amount": 0}, "zero slash"),
        ({"tau": MAX_TAU + 1}, "tau > MAX_TAU"),
        ({"bounty_bps": MAX_BOUNTY_BPS + 1}, "bountyBps > MAX_BOUNTY_BPS"),
        ({"in_lo": 5, "in_hi": 4}, "domain"),
        ({"in_lo": -FIELD_HALF - 1}, "domain"),
        ({"in_hi": FIELD_HALF + 1}, "domain"),
    ],
)
def test_registerModel_invalidParams_reverts(
    change: dict[str, int], reason: str, spotcheck: Any, fresh_verifier: Any, deployer: Any
) -> None:
    reg = spotcheck.model_registry
    struct = MOCK_MODEL.as_struct(str(fresh_verifier.address), b"\x05" * 32, b"\x06" * 32)
    keys = {
        "input_len": "inputLen",
        "output_len": "outputLen",
        "proof_window": "proofWindow",
        "challenger_bond": "challengerBond",
        "slash_amount": "slashAmount",
        "tau": "tau",
        "bounty_bps": "bountyBps",
        "in_lo": "inLo",
        "in_hi": "inHi",
    }
    # The Python mirror refuses the same values before any transaction.
    if reason not in ("inputLen", "outputLen", "zero window", "zero challenger bond", "zero slash"):
        with pytest.raises(ConfigError):
            replace(MOCK_MODEL, **change)
    bad = {**struct, **{keys[k]: v for k, v in change.items()}}
    with ape.reverts(reg.InvalidModelParams, reason=reason):
        reg.registerModel(bad, sender=deployer)


def test_registerModel_bountyAboveHalf_andCodelessVerifier_revert(
    spotcheck: Any, fresh_verifier: Any, deployer: Any, outsider: Any
) -> None:
    """Attack (v1): with bountyBps up to 10000, a cheater disputing itself from a second
    address got its whole slash back. Now the bounty is at most half of it."""
    reg = spotcheck.model_registry
    struct = MOCK_MODEL.as_struct(str(fresh_verifier.address), b"\x05" * 32, b"\x06" * 32)
    for bps in (5001, 10_000):
        with ape.reverts(reg.InvalidModelParams, reason="bountyBps > MAX_BOUNTY_BPS"):
            reg.registerModel({**struct, "bountyBps": bps}, sender=deployer)
    assert reg.MAX_BOUNTY_BPS() == MAX_BOUNTY_BPS and reg.MAX_TAU() == MAX_TAU
    reg.registerModel({**struct, "bountyBps": 5000}, sender=deployer)
    with ape.reverts(reg.InvalidModelParams, reason="verifier has no code"):
        reg.registerModel({**struct, "verifier": str(outsider.address)}, sender=deployer)


def test_deactivateModel_unknown_reverts_and_ownershipIsTwoStep(
    spotcheck: Any, deployer: Any, outsider: Any
) -> None:
    reg = spotcheck.model_registry
    with ape.reverts(reg.UnknownModel, modelId=b"\x09" * 32):
        reg.deactivateModel(b"\x09" * 32, sender=deployer)
    reg.transferOwnership(outsider, sender=deployer)
    assert reg.owner() == deployer and reg.pendingOwner() == outsider
    reg.acceptOwnership(sender=outsider)
    assert reg.owner() == outsider


# ---------------------------------------------------------------- malicious token


@pytest.fixture
def evil(project: Any, deployer: Any, accounts: Any) -> dict[str, Any]:
    """A deployment on ReentrantToken, with one staked node and a registered mock model."""
    token = deployer.deploy(project.ReentrantToken)
    dep = deploy_all(deployer, replace(TEST_PARAMS, token=str(token.address)))
    sm = project.StakeManager.at(dep.stake_manager)
    jm = project.JobManager.at(dep.job_manager)
    dm = project.DisputeManager.at(dep.dispute_manager)
    reg = project.ModelRegistry.at(dep.model_registry)
    verifier = deployer.deploy(project.MockVerifier)
    model_id = reg.registerModel(
        MOCK_MODEL.as_struct(str(verifier.address), b"\x01" * 32, b"\x02" * 32), sender=deployer
    ).return_value
    node, challenger = accounts[1], accounts[3]
    for actor in (node, challenger):
        token.mint(actor, FUNDING, sender=deployer)
        for spender in (sm, jm, dm):
            token.approve(spender, 2**256 - 1, sender=actor)
    sm.stake(NODE_STAKE, sender=node)
    return {
        "token": token,
        "sm": sm,
        "jm": jm,
        "dm": dm,
        "model_id": model_id,
        "node": node,
        "challenger": challenger,
    }


def test_reentrantToken_cannotReenterStakeOrCredits(
    evil: dict[str, Any], deployer: Any, chain: Any
) -> None:
    token, sm, jm, dm = evil["token"], evil["sm"], evil["jm"], evil["dm"]
    node, challenger = evil["node"], evil["challenger"]
    # 1. During stake()'s transferFrom, re-enter withdrawStake.
    token.arm(sm, sm.withdrawStake.encode_input(), sender=deployer)
    sm.stake(TOKEN, sender=node)
    assert not token.lastReentrySucceeded()
    assert bytes(token.lastReentryError())[:4] == REENTRANCY
    # 2. A settled dispute: during the challenger's credit withdrawal, re-enter withdrawCredits.
    job_id = jm.requestJob(evil["model_id"], [1, 2, 3, 4], node, 0, sender=challenger).return_value
    jm.commitResult(job_id, encoding.hash_vector([1, 2, 3, 4]), [1, 2], sender=node)
    dispute_id = dm.openDispute(
        job_id, encoding.hash_vector([1, 2]), sender=challenger
    ).return_value
    advance(chain, MOCK_MODEL.proof_window + 1)
    dm.settle(dispute_id, sender=deployer)
    credit = dm.credits(challenger)
    token.arm(dm, dm.withdrawCredits.encode_input(), sender=deployer)
    before = token.balanceOf(challenger)
    dm.withdrawCredits(sender=challenger)
    assert not token.lastReentrySucceeded()
    assert bytes(token.lastReentryError())[:4] == REENTRANCY
    assert token.balanceOf(challenger) == before + credit
    assert token.balanceOf(dm) == 0
    assert token.balanceOf(sm) == NODE_STAKE + TOKEN - MOCK_MODEL.slash_amount


def test_deployParams_rejectNonsense_andDefaultStakeBacksBatchesOf64() -> None:
    with pytest.raises(ConfigError):
        DeployParams(min_stake=0)
    with pytest.raises(ConfigError):
        DeployParams(unbonding_delay=0)
    with pytest.raises(ConfigError):
        DeployParams(min_stake=10, node_stake=9)
    default = DeployParams()
    assert default.node_stake == stake_for(ModelParams(1, 1, 0, 0, 0).slash_amount, 64, 4)
    assert default.node_stake >= default.min_stake


def test_unbondingNode_slashedToZero_canStakeAgain(
    spotcheck: Any,
    project: Any,
    register_model: Any,
    deployer: Any,
    outsider: Any,
    requester: Any,
    challenger: Any,
    chain: Any,
) -> None:
    """Attack (v1): a node slashed to zero while unbonding was stuck forever: `stake` refused
    (NodeUnbonding) and `withdrawStake` had nothing to pay (ZeroAmount)."""
    sm, jm, dm, token = (
        spotcheck.stake_manager,
        spotcheck.job_manager,
        spotcheck.dispute_manager,
        spotcheck.token,
    )
    heavy = register_model(
        deployer.deploy(project.MockVerifier),
        replace(MOCK_MODEL, slash_amount=TEST_PARAMS.min_stake),
        b"heavy",
    )
    token.mint(outsider, 3 * TEST_PARAMS.min_stake, sender=deployer)
    token.approve(sm, 2**256 - 1, sender=outsider)
    sm.stake(TEST_PARAMS.min_stake, sender=outsider)
    job_id = jm.requestJob(heavy, [1, 2, 3, 4], outsider, 0, sender=requester).return_value
    jm.commitResult(job_id, encoding.hash_vector([1, 2, 3, 4]), [1, 2], sender=outsider)
    sm.requestUnbond(sender=outsider)
    dispute_id = dm.openDispute(
        job_id, encoding.hash_vector([1, 2]), sender=challenger
    ).return_value
    advance(chain, MOCK_MODEL.proof_window + 1)
    dm.settle(dispute_id, sender=challenger)
    s = sm.stakeOf(outsider)
    assert (s.amount, s.locked) == (0, 0) and s.unbondRequestedAt != 0
    receipt = sm.stake(TEST_PARAMS.min_stake, sender=outsider)
    assert list(receipt.events.filter(sm.UnbondCleared))
    s = sm.stakeOf(outsider)
    assert (s.amount, s.unbondRequestedAt) == (TEST_PARAMS.min_stake, 0)
    assert sm.canCommit(outsider, 0)


def test_stake_whileUnbondingWithStakeLeft_stillReverts(
    spotcheck: Any, make_job: Any, node: Any
) -> None:
    sm = spotcheck.stake_manager
    make_job()
    sm.requestUnbond(sender=node)
    with ape.reverts(sm.NodeUnbonding, node=node):
        sm.stake(TOKEN, sender=node)


# ---------------------------------------------------------------- attackers


def test_withdrawStake_replayAfterFullExit_reverts(spotcheck: Any, node: Any, chain: Any) -> None:
    sm, token = spotcheck.stake_manager, spotcheck.token
    sm.requestUnbond(sender=node)
    advance(chain, TEST_PARAMS.unbonding_delay + 1)
    sm.withdrawStake(sender=node)
    before = token.balanceOf(node)
    with ape.reverts(sm.NotUnbonding, node=node):
        sm.withdrawStake(sender=node)  # the replay pays nothing
    assert token.balanceOf(node) == before


def test_stake_byAccountWithoutTokens_reverts_andCreditsNothing(
    spotcheck: Any, outsider: Any
) -> None:
    sm = spotcheck.stake_manager
    with ape.reverts(spotcheck.token.ERC20InsufficientAllowance):
        sm.stake(TOKEN, sender=outsider)
    assert sm.stakeOf(outsider).amount == 0


def test_ownership_attacker_cannotTransferAcceptOrRenounce(
    spotcheck: Any, deployer: Any, outsider: Any, challenger: Any
) -> None:
    reg = spotcheck.model_registry
    unauthorized = reg.OwnableUnauthorizedAccount
    with ape.reverts(unauthorized, account=outsider):
        reg.transferOwnership(outsider, sender=outsider)
    with ape.reverts(unauthorized, account=outsider):
        reg.renounceOwnership(sender=outsider)
    reg.transferOwnership(challenger, sender=deployer)
    with ape.reverts(unauthorized, account=outsider):
        reg.acceptOwnership(sender=outsider)  # only the pending owner may accept
    assert reg.owner() == deployer
    with ape.reverts(reg.NotRegistrar, caller=challenger):
        reg.deactivateModel(spotcheck.model_id, sender=challenger)  # pending is not owner yet


def test_deactivateModel_openWorkStillResolves_andReplayIsHarmless(
    spotcheck: Any, make_job: Any, deployer: Any, node: Any, outsider: Any, chain: Any
) -> None:
    reg, jm = spotcheck.model_registry, spotcheck.job_manager
    job_id = make_job()
    reg.deactivateModel(spotcheck.model_id, sender=deployer)
    reg.deactivateModel(spotcheck.model_id, sender=deployer)  # idempotent, no state change
    assert not reg.getModel(spotcheck.model_id).active
    with ape.reverts(jm.ModelInactive, modelId=spotcheck.model_id):
        jm.commitBatch(spotcheck.model_id, b"\x11" * 32, 1, "", sender=node)
    advance(chain, MOCK_MODEL.challenge_window + 1)
    jm.finalize(job_id, sender=outsider)  # a deactivation never strands a commitment
    assert spotcheck.stake_manager.stakeOf(node).locked == 0
