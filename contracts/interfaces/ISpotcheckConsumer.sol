// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title ISpotcheckConsumer
/// @notice Implemented by contracts that request jobs and want a call when one is final.
/// @dev JobManager calls this with a fixed gas limit inside try/catch: a revert or an
///      out-of-gas here never blocks finalization (it emits `ConsumerCallbackFailed`).
interface ISpotcheckConsumer {
    /// @notice `jobId` is final and its committed output hashes to `outputHash`.
    function onSpotcheckJobFinalized(uint256 jobId, bytes32 outputHash) external;
}
