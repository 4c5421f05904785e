// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IJobManager} from "../interfaces/IJobManager.sol";
import {ISpotcheckConsumer} from "../interfaces/ISpotcheckConsumer.sol";
import {SpotcheckHash} from "../libraries/SpotcheckHash.sol";

/// @title SpotcheckConsumerBase
/// @notice Base for dApps that request Spotcheck jobs and use only final outputs.
/// @dev The output itself is not stored on-chain by JobManager (only its hash); it is in the
///      `ResultCommitted` event. A consumer accepts an output array iff the job is final and
///      the array hashes to the committed output hash (`_isVerifiedOutput`). The callback is a
///      notification only: it gets `CALLBACK_GAS_LIMIT` gas and may fail without consequence,
///      so correctness must never depend on it.
abstract contract SpotcheckConsumerBase is ISpotcheckConsumer {
    using SafeERC20 for IERC20;

    error OnlyJobManager(address caller);

    IJobManager public immutable jobManager;
    IERC20 public immutable feeToken;

    constructor(IJobManager jobManager_, IERC20 feeToken_) {
        jobManager = jobManager_;
        feeToken = feeToken_;
    }

    /// @inheritdoc ISpotcheckConsumer
    function onSpotcheckJobFinalized(uint256 jobId, bytes32 outputHash) external {
        require(msg.sender == address(jobManager), OnlyJobManager(msg.sender));
        _onJobFinalized(jobId, outputHash);
    }

    /// @dev Request a job paying `fee` from this contract's token balance.
    ///      Spends this contract's balance: gate the caller. An external function that calls
    ///      this for anyone lets anyone pay your tokens to a node of their choice (their own);
    ///      restrict it (e.g. `onlyOwner`, as `ExampleConsumer.request`) or take the fee from
    ///      `msg.sender` first.
    function _requestJob(bytes32 modelId, int256[] memory input, address node, uint256 fee)
        internal
        returns (uint256 jobId)
    {
        if (fee > 0) feeToken.forceApprove(address(jobManager), fee);
        jobId = jobManager.requestJob(modelId, input, node, fee);
    }

    /// @dev True iff `jobId` is final and `output` is exactly its committed output.
    function _isVerifiedOutput(uint256 jobId, int256[] memory output) internal view returns (bool) {
        if (!jobManager.isJobFinal(jobId)) return false;
        return SpotcheckHash.hashVector(output) == jobManager.getJob(jobId).outputHash;
    }

    /// @dev Called (gas-capped) when a job this contract requested is final. Keep it cheap.
    function _onJobFinalized(uint256 jobId, bytes32 outputHash) internal virtual;
}
