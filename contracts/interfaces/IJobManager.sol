// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IJobManager
/// @notice On-chain jobs (fee escrow, commit, finalize, refund) and batched commitments
///         (Merkle roots over `(jobId, modelId, inputHash, outputHash)` leaves).
/// @dev Hashes follow `SpotcheckHash`. Fees and refunds are credits withdrawn by their owner.
///      The hooks DisputeManager calls on this contract are `onlyDisputeManager` and are not
///      part of the user-facing ABI below.
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
    }

    struct Batch {
        bytes32 modelId;
        address node;
        bytes32 root;
        uint32 count;
        uint64 challengeDeadline;
        uint32 openDisputes;
        BatchStatus status;
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
    error DisputePending(uint256 ref);
    error EmptyBatch();
    error ZeroRoot();
    error NothingToWithdraw(address owner);
    error NotDisputeManager(address caller);
    error InputOutOfField(uint256 index, int256 value);
    error InsufficientCallbackGas(uint256 have, uint256 need);
    error NotDeployer(address caller);
    error AlreadyInitialized();
    error ZeroAddress();

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
    event JobFinalized(uint256 indexed jobId, address indexed node, uint256 fee);
    event JobCancelled(uint256 indexed jobId, address indexed node, uint256 refund);
    event LivenessFailure(address indexed node, uint256 indexed jobId, uint256 totalFailures);
    event JobDisputed(uint256 indexed jobId);
    event JobProven(uint256 indexed jobId);
    event JobInvalidated(uint256 indexed jobId);
    event ConsumerCallbackFailed(uint256 indexed jobId, address indexed consumer);
    event BatchCommitted(
        uint256 indexed batchId,
        address indexed node,
        bytes32 indexed modelId,
        bytes32 root,
        uint32 count,
        string uri,
        uint64 challengeDeadline
    );
    event BatchFinalized(uint256 indexed batchId, address indexed node);
    event BatchJobDisputed(uint256 indexed batchId, uint256 indexed jobId, uint32 openDisputes);
    event BatchJobProven(uint256 indexed batchId, uint256 indexed jobId);
    event BatchJobInvalidated(uint256 indexed batchId, uint256 indexed jobId);
    event CreditsWithdrawn(address indexed owner, uint256 amount);

    /// @notice Request inference of `modelId` on `input` (quantized at the model's input scale)
    ///         from `node`, escrowing `fee` tokens (needs allowance).
    function requestJob(bytes32 modelId, int256[] calldata input, address node, uint256 fee)
        external
        returns (uint256 jobId);

    /// @notice The named node commits its quantized output; opens the challenge window.
    function commitResult(uint256 jobId, int256[] calldata output) external;

    /// @notice After the challenge window with no dispute: the job is final, the fee is credited
    ///         to the node, and a contract requester gets `onSpotcheckJobFinalized` (never blocking).
    function finalize(uint256 jobId) external;

    /// @notice The requester cancels a job its node did not commit before the commit deadline:
    ///         full refund as credit, liveness failure recorded against the node.
    function cancelJob(uint256 jobId) external;

    /// @notice Commit a Merkle root over `count` leaves of one model; contents served at `uri`.
    function commitBatch(bytes32 modelId, bytes32 root, uint32 count, string calldata uri)
        external
        returns (uint256 batchId);

    /// @notice After the challenge window with no open dispute on any leaf.
    function finalizeBatch(uint256 batchId) external;

    /// @notice Withdraw the caller's credits (fees earned, refunds).
    function withdrawCredits() external;

    function getJob(uint256 jobId) external view returns (Job memory);
    function getBatch(uint256 batchId) external view returns (Batch memory);
    /// @notice True iff the job's output may be used: finalized or proven by a valid defence.
    function isJobFinal(uint256 jobId) external view returns (bool);
    /// @notice True iff leaf job `jobId` of `batchId` may be used (batch final or leaf proven,
    ///         and the leaf was never invalidated). The caller checks leaf membership.
    function isBatchJobFinal(uint256 batchId, uint256 jobId) external view returns (bool);
    function credits(address owner) external view returns (uint256);
    function livenessFailures(address node) external view returns (uint256);
    function commitTimeout() external view returns (uint64);
}
