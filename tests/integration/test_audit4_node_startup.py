"""Audit 4 (the node's start-up checks): a restarted node that is unbonding cannot answer the
disputes still open against its commitments.

The test asserts the SAFE behaviour (A4-7, fixed in d187f55: an unbonding node with open
commitments starts winding down instead of refusing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from prover.chain_io import NodeChain
from prover.startup import check_stake
from spotcheck.encoding import hash_vector, onchain_job_key
from spotcheck.errors import StartupError
from tests.fixtures.chain import JOB_OUTPUT

pytestmark = pytest.mark.chain


def test_audit4_unbondingNode_withAnOpenDispute_stillStartsToDefendIt(
    spotcheck: Any, node2: Any, challenger: Any, make_job: Callable[..., int]
) -> None:
    job_id = make_job(node=node2)  # an honest commitment, inside its challenge window
    spotcheck.stake_manager.requestUnbond(sender=node2)  # the operator winds down
    # A dispute arrives (a griefer, or a challenger with a wrong model): the node must defend.
    spotcheck.dispute_manager.openDispute(job_id, hash_vector(JOB_OUTPUT), sender=challenger)
    assert spotcheck.dispute_manager.getDispute(onchain_job_key(job_id)).status == 1  # Open
    # The node process restarts (crash, upgrade, reboot): build_node runs check_stake first.
    try:
        check_stake(NodeChain(spotcheck.contracts, node2), {})
    except StartupError as err:
        # SAFE: the node starts (taking no new work) and defends what it committed.
        pytest.fail(f"node refused to start with an open dispute against it: {err}")
