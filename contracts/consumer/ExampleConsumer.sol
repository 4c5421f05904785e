// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IJobManager} from "../interfaces/IJobManager.sol";
import {SpotcheckConsumerBase} from "./SpotcheckConsumerBase.sol";

/// @title ExampleConsumer
/// @notice A minimal dApp: anyone may fund it; only its owner asks for jobs (each fee comes out
///         of this contract's balance); once a job is final, anyone may deliver the output array
///         (from the `ResultCommitted` event) and the contract stores it iff it matches the final
///         hash. It never reads an output that is not final.
/// @dev Ownership is two-step (`transferOwnership`, then `acceptOwnership` by the new owner);
///      the deployer is the first owner. `request` is owner-only because it spends the fee
///      budget: left open, anyone could pay this contract's tokens to a node they control.
contract ExampleConsumer is SpotcheckConsumerBase, Ownable2Step {
    using SafeERC20 for IERC20;

    error OutputNotVerified(uint256 jobId);
    error AlreadyDelivered(uint256 jobId);
    error RenounceDisabled();

    mapping(uint256 jobId => bytes32) public finalOutputHash;
    mapping(uint256 jobId => int256[]) private _outputs;
    mapping(uint256 jobId => bool) public delivered;

    event JobRequestedBy(uint256 indexed jobId, address indexed by);
    event FinalNotified(uint256 indexed jobId, bytes32 outputHash);
    event OutputStored(uint256 indexed jobId, bytes32 outputHash);
    event BudgetWithdrawn(address indexed to, uint256 amount);

    constructor(IJobManager jobManager_, IERC20 feeToken_)
        SpotcheckConsumerBase(jobManager_, feeToken_)
        Ownable(msg.sender)
    {}

    /// @notice Ask `node` to run `modelId` on `input`; the fee comes from this contract's balance.
    ///         Owner only (reverts with `OwnableUnauthorizedAccount(caller)` otherwise).
    /// @param modelId The registered model to run.
    /// @param input The quantized input (the model's input length).
    /// @param node The staked node that is to run the job.
    /// @param fee Escrowed from this contract's balance now; paid to `node` once the job is final
    ///        (refunded to this contract if the job is invalidated or cancelled).
    /// @return jobId The new job's id.
    function request(bytes32 modelId, int256[] calldata input, address node, uint256 fee)
        external
        onlyOwner
        returns (uint256 jobId)
    {
        jobId = _requestJob(modelId, input, node, fee);
        emit JobRequestedBy(jobId, msg.sender);
    }

    /// @notice Move `amount` of the unspent fee budget to `to`. Owner only.
    function withdrawBudget(address to, uint256 amount) external onlyOwner {
        emit BudgetWithdrawn(to, amount);
        // SAFETY: the fee token, to an address the owner chose; no state after the call.
        feeToken.safeTransfer(to, amount);
    }

    /// @notice Disabled: an ownerless consumer could neither request jobs nor recover its budget.
    function renounceOwnership() public pure override {
        revert RenounceDisabled();
    }

    /// @notice Store `output` for `jobId` iff this contract requested the job, it is final, and
    ///         `output` is its committed output (`NotOwnJob` / `OutputNotVerified` otherwise).
    function deliverOutput(uint256 jobId, int256[] calldata output) external {
        require(questions[jobId].modelId != bytes32(0), NotOwnJob(jobId));
        require(!delivered[jobId], AlreadyDelivered(jobId));
        require(_isVerifiedOutput(jobId, output), OutputNotVerified(jobId));
        delivered[jobId] = true;
        _outputs[jobId] = output;
        emit OutputStored(jobId, jobManager.getJob(jobId).outputHash);
    }

    /// @notice Cancel a job whose node missed its commit deadline (refund credited in JobManager).
    /// @dev Anyone may call: the refund is credited to this contract, never to the caller, and
    ///      JobManager only cancels an overdue, uncommitted job.
    function cancel(uint256 jobId) external {
        jobManager.cancelJob(jobId);
    }

    /// @notice Pull refunds credited by JobManager back into this contract's fee balance.
    /// @dev Anyone may call: the tokens only move from JobManager into this contract.
    function withdrawRefunds() external {
        jobManager.withdrawCredits();
    }

    /// @notice True iff leaf `index` of `batchId`, committed by `node`, answers `(modelId, input)`
    ///         with `output` under `jobId`, the input is in the model's domain, and the leaf is
    ///         final (the check a dApp runs on a node's receipt).
    function isVerifiedBatchOutput(
        uint256 batchId,
        uint256 index,
        uint256 jobId,
        bytes32 modelId,
        address node,
        int256[] calldata input,
        int256[] calldata output,
        bytes32[] calldata proof
    ) external view returns (bool) {
        return _isVerifiedBatchOutput(batchId, index, jobId, modelId, node, input, output, proof);
    }

    /// @notice The stored, verified output of `jobId` (empty until delivered).
    function outputOf(uint256 jobId) external view returns (int256[] memory) {
        return _outputs[jobId];
    }

    function _onJobFinalized(uint256 jobId, bytes32 outputHash) internal override {
        finalOutputHash[jobId] = outputHash;
        emit FinalNotified(jobId, outputHash);
    }
}
