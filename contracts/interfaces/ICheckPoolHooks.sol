// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title ICheckPoolHooks
/// @notice The calls JobManager makes on CheckPool: an on-chain job became final, a batch was
///         committed (its check deposit), a batch leaf was invalidated. `onlyJobManager`; users
///         never call them.
interface ICheckPoolHooks {
    /// @notice On-chain job `jobId` of `modelId` is final with fee `fee`. Returns the check
    ///         reward: `fee * checkShareBps / 10_000` (the share snapshot at the job's first
    ///         claim) if the job has claims, else 0. JobManager credits the node `fee - reward`
    ///         and transfers `reward` to the pool in the same call.
    function onJobFinalized(uint256 jobId, bytes32 modelId, uint256 fee) external returns (uint256 reward);

    /// @notice Batch `batchId` of `modelId` with `count` leaves was committed. Books its check
    ///         deposit `count * leafCheckFee(modelId)` (the fee snapshot; nothing is booked
    ///         when the fee is 0) and returns it;
    ///         JobManager then moves it from the node to the pool in the same call.
    function onBatchCommitted(uint256 batchId, bytes32 modelId, uint32 count) external returns (uint256 deposit);

    /// @notice Leaf `index` of `batchId` was invalidated: its check deposit is burned (once).
    function onBatchLeafInvalidated(uint256 batchId, uint256 index) external;
}
