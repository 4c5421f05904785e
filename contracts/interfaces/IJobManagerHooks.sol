// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IJobManagerHooks
/// @notice The calls DisputeManager makes on JobManager when disputes open and resolve.
///         Every function is `onlyDisputeManager`; users never call them.
interface IJobManagerHooks {
    /// @notice On-chain job `jobId` is disputed: it must be Committed and inside its window.
    function onJobDisputed(uint256 jobId) external;

    /// @notice The dispute on `jobId` was answered by a valid proof: the job is final.
    function onJobProven(uint256 jobId) external;

    /// @notice The dispute on `jobId` was not answered: the job is invalid, the fee refunded.
    function onJobInvalidated(uint256 jobId) external;

    /// @notice A leaf of batch `batchId` is disputed: the batch must be Committed, inside its window.
    function onBatchJobDisputed(uint256 batchId, uint256 jobId) external;

    /// @notice The dispute on leaf `jobId` of `batchId` was answered by a valid proof.
    function onBatchJobProven(uint256 batchId, uint256 jobId) external;

    /// @notice The dispute on leaf `jobId` of `batchId` was not answered: the leaf is invalid.
    function onBatchJobInvalidated(uint256 batchId, uint256 jobId) external;
}
