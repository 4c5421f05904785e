"""The deployment file round-trips, and the typed bindings reach the deployed, wired contracts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import ape
import pytest
from eth_utils import keccak

from spotcheck.chain import Deployment, SpotcheckContracts, default_deployment_path
from spotcheck.deploy import deploy_all
from spotcheck.errors import ConfigError
from tests.fixtures.chain import TEST_PARAMS

pytestmark = pytest.mark.chain


def test_deployment_savedAndLoaded_reachesWiredContracts(
    deployment: Deployment, tmp_path: Path
) -> None:
    path = deployment.save(tmp_path / "d.json")
    loaded = Deployment.load(path=path)
    assert loaded == deployment
    sc = SpotcheckContracts.connect(path=path)
    assert sc.stake_manager.jobManager() == deployment.job_manager
    assert sc.stake_manager.disputeManager() == deployment.dispute_manager
    assert sc.job_manager.disputeManager() == deployment.dispute_manager
    assert sc.dispute_manager.jobManager() == deployment.job_manager
    assert sc.model_registry.stakeManager() == deployment.stake_manager
    assert sc.example_consumer.jobManager() == deployment.job_manager
    assert sc.stake_manager.minStake() == TEST_PARAMS.min_stake
    assert sc.stake_manager.unbondingDelay() == TEST_PARAMS.unbonding_delay
    assert sc.job_manager.commitTimeout() == TEST_PARAMS.commit_timeout


def test_deploymentFile_missingOrCorrupt_raisesConfigError(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no deployment file"):
        Deployment.load(path=tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"chainId": 1}')
    with pytest.raises(ConfigError, match="invalid deployment file"):
        Deployment.load(path=bad)


def test_defaultDeploymentPath_isPerChainUnderProjectRoot(tmp_path: Path) -> None:
    assert default_deployment_path(31337, root=tmp_path) == (
        tmp_path / ".spotcheck" / "deployments" / "31337.json"
    )


def test_registry_isOwnedByDeployer(spotcheck: Any, deployer: Any) -> None:
    assert spotcheck.model_registry.owner() == deployer


def test_exampleConsumer_isOwnedByDeployer(spotcheck: Any, deployer: Any) -> None:
    assert spotcheck.example_consumer.owner() == deployer


def test_deployAll_withConsumerOwner_startsTwoStepHandOver(deployer: Any, requester: Any) -> None:
    dep = deploy_all(deployer, replace(TEST_PARAMS, example_consumer_owner=str(requester.address)))
    consumer = SpotcheckContracts(dep).example_consumer
    assert consumer.owner() == deployer  # until the new owner accepts
    assert consumer.pendingOwner() == requester
    consumer.acceptOwnership(sender=requester)
    assert consumer.owner() == requester
    assert dep.params["example_consumer_owner"] == requester.address


ZERO = "0x" + "00" * 20


def _selector(signature: str) -> str:
    return "0x" + keccak(text=signature)[:4].hex()


def _deploy_reverts(error: str, deploy: Callable[[], Any]) -> None:
    """A constructor revert reaches Ape undecoded: match the custom error's selector."""
    with pytest.raises(Exception) as info:
        deploy()
    assert _selector(error) in str(info.value), f"expected {error}, got {info.value}"


def test_constructors_refuseZeroAddresses(project: Any, deployer: Any, spotcheck: Any) -> None:
    sm, reg, tok = spotcheck.stake_manager, spotcheck.model_registry, spotcheck.token
    _deploy_reverts("ZeroAddress()", lambda: deployer.deploy(project.StakeManager, ZERO, 1, 1))
    _deploy_reverts("ZeroAddress()", lambda: deployer.deploy(project.ModelRegistry, ZERO))
    _deploy_reverts(
        "ZeroAddress()", lambda: deployer.deploy(project.JobManager, tok, sm, ZERO, 100)
    )
    _deploy_reverts(
        "ZeroAddress()", lambda: deployer.deploy(project.DisputeManager, tok, sm, reg, ZERO)
    )
    _deploy_reverts("ZeroAddress()", lambda: deployer.deploy(project.ExampleConsumer, ZERO, tok))


def test_constructors_refuseASecondToken(project: Any, deployer: Any, spotcheck: Any) -> None:
    """All three contracts share one token: a JobManager or DisputeManager built with another
    token than the StakeManager's (or wired to another stake manager) cannot be deployed."""
    other = deployer.deploy(project.TestToken)
    sm, reg, jm = spotcheck.stake_manager, spotcheck.model_registry, spotcheck.job_manager
    tok = spotcheck.token
    _deploy_reverts(
        "WrongWiring(address)", lambda: deployer.deploy(project.JobManager, other, sm, reg, 100)
    )
    _deploy_reverts(
        "WrongWiring(address)", lambda: deployer.deploy(project.DisputeManager, other, sm, reg, jm)
    )
    other_sm = deployer.deploy(project.StakeManager, other, 1, 1000)
    other_reg = deployer.deploy(project.ModelRegistry, other_sm)
    _deploy_reverts(
        "WrongWiring(address)",
        lambda: deployer.deploy(project.JobManager, tok, sm, other_reg, 100),
    )
    _deploy_reverts(
        "WrongWiring(address)",
        lambda: deployer.deploy(project.DisputeManager, tok, sm, other_reg, jm),
    )
    # StakeManager.initialize checks both managers against its token and itself.
    other_jm = deployer.deploy(project.JobManager, other, other_sm, other_reg, 100)
    fresh_sm = deployer.deploy(project.StakeManager, tok, 1, 1000)
    with ape.reverts(fresh_sm.WrongWiring, contract_=other_jm.address):
        fresh_sm.initialize(other_jm, spotcheck.dispute_manager, sender=deployer)


# -- `spotcheck contracts mint` on anvil (issue 13) -----------------------------------------


def test_mint_fromAnAccountWithoutEth_refusesBeforeSending(spotcheck: Any, accounts: Any) -> None:
    from spotcheck.deploy import mint_tokens

    broke = accounts.generate_test_account()
    with pytest.raises(ConfigError, match=f"account {broke.address} holds no ETH"):
        mint_tokens(spotcheck.token, broke, str(broke.address), 1)
    assert spotcheck.token.balanceOf(broke.address) == 0


def test_mint_revertedByTheToken_namesItsCustomError(spotcheck: Any, deployer: Any) -> None:
    """OpenZeppelin's ERC20 refuses the zero address with ERC20InvalidReceiver(address)."""
    from spotcheck.deploy import mint_tokens
    from spotcheck.errors import ChainError

    zero = "0x" + "00" * 20
    with pytest.raises(ChainError, match=r"^mint failed: ERC20InvalidReceiver\(receiver=0x0+\)"):
        mint_tokens(spotcheck.token, deployer, zero, 1)
    before = spotcheck.token.balanceOf(deployer)
    assert (
        mint_tokens(spotcheck.token, deployer, str(deployer.address), 2)
        == (before + 2 * 10**18) // 10**18
    )
