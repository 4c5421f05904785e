// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {IJobManager} from "../interfaces/IJobManager.sol";
import {ISpotcheckConsumer} from "../interfaces/ISpotcheckConsumer.sol";

/// @title HostileConsumer
/// @notice A requester contract whose finalization callback reverts, burns all its gas, or
///         tries to re-enter JobManager. Finalization must succeed regardless. Tests only.
contract HostileConsumer is ISpotcheckConsumer {
    enum Behaviour {
        Revert,
        BurnGas,
        Reenter,
        ReturnBomb
    }

    error HostileRevert();

    IJobManager public immutable jobManager;
    Behaviour public behaviour;

    constructor(IJobManager jobManager_) {
        jobManager = jobManager_;
    }

    function setBehaviour(Behaviour behaviour_) external {
        behaviour = behaviour_;
    }

    function request(IERC20 token, bytes32 modelId, int256[] calldata input, address node, uint256 fee)
        external
        returns (uint256)
    {
        token.approve(address(jobManager), fee);
        return jobManager.requestJob(modelId, input, node, fee);
    }

    function cancel(uint256 jobId) external {
        jobManager.cancelJob(jobId);
    }

    /// @inheritdoc ISpotcheckConsumer
    function onSpotcheckJobFinalized(uint256 jobId, bytes32) external {
        if (behaviour == Behaviour.Revert) revert HostileRevert();
        if (behaviour == Behaviour.BurnGas) {
            while (true) {}
        }
        if (behaviour == Behaviour.Reenter) {
            jobManager.finalize(jobId); // must fail: status Final and nonReentrant
        }
        // ReturnBomb: revert with a huge payload that the caller must not copy.
        assembly {
            revert(0, 60000)
        }
    }
}
