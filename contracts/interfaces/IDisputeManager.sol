// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IDisputeManager
/// @notice Bonded disputes against committed outputs, answered by ezkl proofs verified on-chain.
/// @dev `disputeId` is the job key (`SpotcheckHash.onchainJobKey` / `batchJobKey`): one dispute
///      per job, ever; the first challenger wins. Bonds, bounties and bond forfeits are credits.
interface IDisputeManager {
    enum DisputeStatus {
        None,
        Open,
        Defended,
        Slashed
    }

    enum JobKind {
        Onchain,
        Batch
    }

    struct Dispute {
        JobKind kind;
        uint256 ref; // jobId for on-chain jobs, batchId for batch leaves
        uint256 jobId; // on-chain jobId, or the leaf's jobId
        bytes32 modelId;
        address node;
        address challenger;
        bytes32 inputHash;
        bytes32 outputHash;
        uint256 bond;
        uint64 proofDeadline;
        DisputeStatus status;
    }

    error DisputeExists(bytes32 disputeId);
    error UnknownDispute(bytes32 disputeId);
    error NotDisputable(bytes32 disputeId);
    error ChallengeWindowClosed(uint64 deadline);
    error InvalidMerkleProof(uint256 batchId, uint256 jobId);
    error DisputeNotOpen(bytes32 disputeId, DisputeStatus status);
    error ProofDeadlinePassed(bytes32 disputeId, uint64 deadline);
    error ProofDeadlineNotPassed(bytes32 disputeId, uint64 deadline);
    error NotDisputedNode(bytes32 disputeId, address caller);
    error WrongInstanceCount(uint256 have, uint256 need);
    error OutputMismatch(bytes32 disputeId);
    error InputMismatch(bytes32 disputeId);
    error OutputOutsideTolerance(uint256 index, int256 proven, int256 committed, uint256 tau);
    error ProofRejected(bytes32 disputeId);
    error SelfDispute(address node);
    error NothingToWithdraw(address owner);
    error InstanceOutOfField(uint256 index, uint256 value);

    event DisputeOpened(
        bytes32 indexed disputeId,
        address indexed node,
        address indexed challenger,
        JobKind kind,
        uint256 ref,
        uint256 jobId,
        uint256 bond,
        uint64 proofDeadline
    );
    event DisputeDefended(bytes32 indexed disputeId, address indexed node, uint256 bondToNode);
    event DisputeSettled(
        bytes32 indexed disputeId,
        address indexed node,
        address indexed challenger,
        uint256 slashed,
        uint256 bounty,
        uint256 burned
    );
    event CreditsWithdrawn(address indexed owner, uint256 amount);

    /// @notice Dispute on-chain job `jobId` before its challenge deadline, locking the model's
    ///         challenger bond (needs allowance).
    function openDispute(uint256 jobId) external returns (bytes32 disputeId);

    /// @notice Dispute leaf `(jobId, batch.modelId, inputHash, outputHash)` of `batchId`, proven
    ///         to be in the batch root by `proof` (OpenZeppelin MerkleProof, sorted pairs).
    function openBatchDispute(
        uint256 batchId,
        uint256 jobId,
        bytes32 inputHash,
        bytes32 outputHash,
        bytes32[] calldata proof
    ) external returns (bytes32 disputeId);

    /// @notice The disputed node answers with an ezkl proof. `instances` = input field elements
    ///         then output field elements; `committedOutput` must hash to the committed output
    ///         hash; input instances must hash to the job's input hash; every output instance
    ///         within `tau` of `committedOutput`; the model's verifier must accept (a revert is a
    ///         rejection). Valid: job proven, bond credited to the node.
    function defend(bytes32 disputeId, bytes calldata proof, uint256[] calldata instances, int256[] calldata committedOutput)
        external;

    /// @notice After the proof deadline with no valid defence: slash the node (clamped), credit
    ///         the challenger bond + bounty, burn the rest, mark the job invalid. Anyone may call.
    function settle(bytes32 disputeId) external;

    /// @notice Withdraw the caller's credits (returned bonds, bounties, forfeited bonds).
    function withdrawCredits() external;

    function getDispute(bytes32 disputeId) external view returns (Dispute memory);
    function credits(address owner) external view returns (uint256);
    /// @notice Challenger bond currently locked in open disputes opened by `challenger`.
    function bondAtRisk(address challenger) external view returns (uint256);
}
