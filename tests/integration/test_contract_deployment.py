"""The deployment file round-trips, and the typed bindings reach the deployed, wired contracts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

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
