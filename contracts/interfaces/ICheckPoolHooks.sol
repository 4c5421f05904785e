// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title ICheckPoolHooks
/// @notice The call JobManager makes on CheckPool when an on-chain job becomes final. It is
///         `onlyJobManager`; users never call it.
interface ICheckPoolHooks {
    /// @notice On-chain job `jobId` of `modelId` is final with fee `fee`. Returns the check
    ///         reward: `fee * checkShareBps / 10_000` (the share snapshot at the job's first
    ///         claim) if the job has claims, else 0. JobManager credits the node `fee - reward`
    ///         and transfers `reward` to the pool in the same call.
    function onJobFinalized(uint256 jobId, bytes32 modelId, uint256 fee) external returns (uint256 reward);
}
