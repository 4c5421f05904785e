// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {IModelRegistry} from "./IModelRegistry.sol";
import {IStakeManager} from "./IStakeManager.sol";

/// @title IJobManager
/// @notice On-chain jobs (fee escrow at or above the node's price, commit, finalize, refund) and
///         batched commitments (positional Merkle roots over `(jobId, modelId, inputHash,
///         outputHash)` leaves, each leaf backed by a reservation of its model's slash).
/// @dev Hashes follow `SpotcheckHash`; rules follow docs/v2-protocol.md. Fees and refunds are
///      credits withdrawn by their owner. The hooks DisputeManager calls on this contract
///      (`IJobManagerHooks`) are `onlyDisputeManager` and not part of the user-facing ABI below.
interface IJobManager {
    enum JobStatus {
        None,
        Requested,
        Committed,
        Disputed,
        Final,
        Invalid,
        Cancelled
    }

    enum BatchStatus {
        None,
        Committed,
        Final
    }

    struct Job {
        bytes32 modelId;
        address requester;
        address node;
        uint256 fee;
        bytes32 inputHash;
        bytes32 outputHash;
        uint64 commitDeadline;
        uint64 challengeDeadline;
        JobStatus status;
        uint64 commitBlock; // block of commitResult (0 before); the check seed is the next block's hash
        bool checkClaimed; // CheckPool holds a paid-check claim on it: finalize asks it for the reward
    }

    struct Batch {
        bytes32 modelId;
        address node;
        uint64 commitBlock; // block of commitBatch; the check seed is the next block's hash
        bytes32 root;
        uint32 count;
        uint64 challengeDeadline; // disputes and leaf requests open until then
        uint64 finalAfter; // >= challengeDeadline; raised by reveals to their dispute deadline
        uint32 openClaims; // open leaf disputes + open leaf requests
        BatchStatus status;
        uint256 reserved; // what is left of the count * slashAmount reservation
        string uri;
    }

    error UnknownJob(uint256 jobId);
    error UnknownBatch(uint256 batchId);
    error ModelInactive(bytes32 modelId);
    error WrongInputLength(uint256 have, uint256 need);
    error WrongOutputLength(uint256 have, uint256 need);
    error NotJobNode(uint256 jobId, address caller, address node);
    error NotRequester(uint256 jobId, address caller);
    error BadJobStatus(uint256 jobId, JobStatus status);
    error BadBatchStatus(uint256 batchId, BatchStatus status);
    error CommitDeadlinePassed(uint256 jobId, uint64 deadline);
    error CommitDeadlineNotPassed(uint256 jobId, uint64 deadline);
    error ChallengeWindowOpen(uint64 deadline);
    /// @notice The batch has open leaf disputes or leaf requests.
    error ClaimsPending(uint256 batchId, uint32 openClaims);
    error EmptyBatch();
    error ZeroRoot();
    error NothingToWithdraw(address owner);
    error NotDisputeManager(address caller);
    error NotCheckPool(address caller);
    /// @notice Element `index` of the input is outside the model's domain `[inLo, inHi]`.
    error InputOutOfDomain(uint256 index, int256 value, int256 inLo, int256 inHi);
    /// @notice The fee is below `priceOf(node, modelId)`.
    error FeeBelowPrice(uint256 fee, uint256 price);
    /// @notice `commitResult` names another input hash than the job's: a reorg moved it.
    error InputHashMismatch(uint256 jobId, bytes32 given, bytes32 stored);
    error InsufficientCallbackGas(uint256 have, uint256 need);
    error NotDeployer(address caller);
    error AlreadyInitialized();
    error ZeroAddress();
    /// @notice The token delivered less than was sent (fee-on-transfer tokens are unsupported).
    error FeeOnTransferToken();
    /// @notice A constructor argument was built for another token or stake manager.
    error WrongWiring(address contract_);

    event JobRequested(
        uint256 indexed jobId,
        bytes32 indexed modelId,
        address indexed node,
        address requester,
        uint256 fee,
        bytes32 inputHash,
        int256[] input,
        uint64 commitDeadline
    );
    event ResultCommitted(
        uint256 indexed jobId, address indexed node, bytes32 outputHash, int256[] output, uint64 challengeDeadline
    );
    /// @notice `fee` is what the node was credited: the job's fee less its check reward.
    event JobFinalized(uint256 indexed jobId, address indexed node, uint256 fee);
    event JobCancelled(uint256 indexed jobId, address indexed node, uint256 refund);
    event LivenessFailure(address indexed node, uint256 indexed jobId, uint256 totalFailures);
    event JobDisputed(uint256 indexed jobId);
    event JobProven(uint256 indexed jobId);
    event JobInvalidated(uint256 indexed jobId, uint256 slashed);
    event ConsumerCallbackFailed(uint256 indexed jobId, address indexed consumer);
    event PriceSet(address indexed node, bytes32 indexed modelId, uint256 price);
    event BatchCommitted(
        uint256 indexed batchId,
        address indexed node,
        bytes32 indexed modelId,
        bytes32 root,
        uint32 count,
        string uri,
        uint64 challengeDeadline,
        uint256 reserved
    );
    event BatchFinalized(uint256 indexed batchId, address indexed node, uint256 released);
    event BatchLeafDisputed(uint256 indexed batchId, uint256 indexed index, uint32 openClaims);
    event BatchLeafRequested(uint256 indexed batchId, uint256 indexed index, uint32 openClaims);
    event BatchLeafRevealed(uint256 indexed batchId, uint256 indexed index, uint32 openClaims, uint64 finalAfter);
    event BatchLeafProven(uint256 indexed batchId, uint256 indexed index);
    event BatchLeafInvalidated(uint256 indexed batchId, uint256 indexed index, uint256 slashed, uint256 reserved);
    event CreditsWithdrawn(address indexed owner, uint256 amount);
    /// @notice The check pool is connected: finalized jobs with claims pay it their check reward.
    event CheckPoolSet(address indexed checkPool);
    /// @notice CheckPool holds a paid-check claim on job `jobId`.
    event CheckClaimMarked(uint256 indexed jobId);
    /// @notice The node paid batch `batchId`'s check deposit (count * leafCheckFee) to the pool.
    event BatchCheckDepositPaid(uint256 indexed batchId, address indexed checkPool, uint256 deposit);
    /// @notice `reward` of job `jobId`'s fee went to the check pool (its claimants' reward).
    event CheckRewardPaid(uint256 indexed jobId, address indexed checkPool, uint256 reward);

    /// @notice Post the caller's price for jobs of `modelId` (the caller as node).
    /// @param modelId a registered model
    /// @param price the node's price in token base units; `priceOf` is `max(minFee, price)`
    function setPrice(bytes32 modelId, uint256 price) external;

    /// @notice What an on-chain request to `node` for `modelId` must pay at least:
    ///         `max(model.minFee, node's posted price)`.
    function priceOf(address node, bytes32 modelId) external view returns (uint256);

    /// @notice Request inference of `modelId` on `input` (quantized at the model's input scale)
    ///         from `node`, escrowing `fee` tokens (needs allowance). Reverts
    ///         `FeeBelowPrice(fee, price)` below `priceOf(node, modelId)`,
    ///         `InputOutOfDomain(index, value, inLo, inHi)` on the first element outside the
    ///         model's domain, `FeeOnTransferToken()` unless the fee arrives in full.
    function requestJob(bytes32 modelId, int256[] calldata input, address node, uint256 fee)
        external
        returns (uint256 jobId);

    /// @notice The named node commits its quantized output for the job whose input hashes to
    ///         `inputHash` (else `InputHashMismatch`); reserves the model's slash and opens the
    ///         challenge window.
    function commitResult(uint256 jobId, bytes32 inputHash, int256[] calldata output) external;

    /// @notice After the challenge window with no dispute: the job is final, the fee is credited
    ///         to the node (less the check reward if the job has paid-check claims: CheckPool),
    ///         and a contract requester gets `onSpotcheckJobFinalized` (never blocking).
    function finalize(uint256 jobId) external;

    /// @notice The requester cancels a job its node did not commit before the commit deadline:
    ///         full refund as credit; a liveness failure of the node only if the model is active
    ///         and the fee still meets the node's price (`priceOf` now: a node ignores requests
    ///         below its current price, so one made before a price rise counts no failure).
    function cancelJob(uint256 jobId) external;

    /// @notice Commit the positional Merkle root over `count` leaves of one model; contents
    ///         served at `uri`. Reserves `count * slashAmount` (`InsufficientStake` otherwise).
    ///         With a check pool, pulls the batch's check deposit, `count * leafCheckFee(modelId)`,
    ///         from the caller into the pool (the caller approves this contract for it).
    function commitBatch(bytes32 modelId, bytes32 root, uint32 count, string calldata uri)
        external
        returns (uint256 batchId);

    /// @notice After `finalAfter` with no open claim (dispute or leaf request); releases what is
    ///         left of the reservation.
    function finalizeBatch(uint256 batchId) external;

    /// @notice Withdraw the caller's credits (fees earned, refunds).
    function withdrawCredits() external;

    function getJob(uint256 jobId) external view returns (Job memory);
    function getBatch(uint256 batchId) external view returns (Batch memory);
    /// @notice True iff the job's output may be used: finalized or proven by a valid defence.
    function isJobFinal(uint256 jobId) external view returns (bool);
    /// @notice True iff `leaf` is leaf `index` of batch `batchId`'s root: `index < count`,
    ///         `proof.length == ceil(log2(count))`, the root rebuilds (SpotcheckHash.verify).
    function verifyBatchLeaf(uint256 batchId, uint256 index, bytes32 leaf, bytes32[] calldata proof)
        external
        view
        returns (bool);
    /// @notice True iff leaf `index` of `batchId` may be used: `index < count`, never
    ///         invalidated, and proven or the batch Final. The caller checks which leaf is there
    ///         (`verifyBatchLeaf`) and that the batch's model is the one it asked for.
    function isBatchLeafFinal(uint256 batchId, uint256 index) external view returns (bool);
    /// @notice Verdict flags by `SpotcheckHash.batchLeafKey(batchId, index)`.
    function batchLeafProven(bytes32 key) external view returns (bool);
    function batchLeafInvalid(bytes32 key) external view returns (bool);
    function credits(address owner) external view returns (uint256);
    function livenessFailures(address node) external view returns (uint256);
    function commitTimeout() external view returns (uint64);
    /// @notice The check pool (zero until `setCheckPool`): finalized jobs with claims pay their
    ///         check reward (`ICheckPoolHooks.onJobFinalized`) to it.
    function checkPool() external view returns (address);

    /// @notice CheckPool marks a Committed job on its first paid-check claim, so that
    ///         `finalize` calls the pool only for claimed jobs. `checkPool` only.
    function markCheckClaimed(uint256 jobId) external;
    function token() external view returns (IERC20);
    function stakeManager() external view returns (IStakeManager);
    /// @notice The model registry (a consumer reads a model's input domain from it).
    function registry() external view returns (IModelRegistry);
}
