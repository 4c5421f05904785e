// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IJobManagerHooks
/// @notice The calls DisputeManager makes on JobManager when disputes and leaf requests open
///         and resolve. Every function is `onlyDisputeManager`; users never call them.
interface IJobManagerHooks {
    /// @notice On-chain job `jobId` is disputed: it must be Committed.
    function onJobDisputed(uint256 jobId) external;

    /// @notice The dispute on `jobId` was answered by a valid proof: the job is final.
    function onJobProven(uint256 jobId) external;

    /// @notice The dispute on `jobId` was not answered: the job is invalid, the fee refunded.
    /// @return slashAmount what to slash: the job's own reservation (the model's slash)
    function onJobInvalidated(uint256 jobId) external returns (uint256 slashAmount);

    /// @notice Leaf `index` of batch `batchId` is disputed: the batch must be Committed.
    function onBatchLeafDisputed(uint256 batchId, uint256 index) external;

    /// @notice A leaf request on leaf `index` of `batchId` opened: the batch must be Committed.
    function onBatchLeafRequested(uint256 batchId, uint256 index) external;

    /// @notice The requested leaf was revealed; it stays disputable until `disputeDeadline`,
    ///         so the batch cannot finalize before it.
    function onBatchLeafRevealed(uint256 batchId, uint256 index, uint64 disputeDeadline) external;

    /// @notice The dispute on leaf `index` of `batchId` was answered by a valid proof.
    function onBatchLeafProven(uint256 batchId, uint256 index) external;

    /// @notice The dispute (or leaf request) on leaf `index` of `batchId` ended unanswered: the
    ///         leaf is invalid.
    /// @return slashAmount what to slash: min(slashAmount, what is left of the batch reservation)
    function onBatchLeafInvalidated(uint256 batchId, uint256 index) external returns (uint256 slashAmount);
}
