// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IDisputeManager
/// @notice Bonded disputes against committed outputs, answered by ezkl proofs verified on-chain,
///         and bonded leaf requests that make a node publish a batch leaf's data on-chain.
/// @dev `disputeId` is the job key: `SpotcheckHash.onchainJobKey(jobId)` for on-chain jobs,
///      `SpotcheckHash.batchLeafKey(batchId, index)` for batch leaves (by position: two leaves
///      never share a verdict). One dispute per key, ever; the first challenger wins. A leaf
///      request on leaf `index` has the same id (`requestId`) in its own mapping. Disputes and leaf
///      requests share one per-node queue over open work: a new claim against a node gets its
///      deadline (proof or reveal) at `max(now, claimBusyUntil(node)) + openClaimWork(node) +
///      proofWindow` (the end of a proof the node may still be running for a claim someone
///      else closed, the open claims' windows, whatever their models, then its own model's),
///      and every resolution takes its claim's window out of the queue. Bonds, bounties and
///      bond forfeits are credits. Rules: docs/v2-protocol.md 5, 6.
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

    enum LeafRequestStatus {
        None,
        Open,
        Revealed,
        Slashed
    }

    struct Dispute {
        JobKind kind;
        uint256 ref; // jobId for on-chain jobs, batchId for batch leaves
        uint256 index; // leaf position in the batch (0 for on-chain jobs)
        uint256 jobId; // on-chain jobId, or the leaf's jobId (informational)
        bytes32 modelId;
        address node;
        address challenger;
        bytes32 inputHash;
        bytes32 outputHash;
        uint256 bond;
        uint64 proofDeadline;
        DisputeStatus status;
    }

    struct LeafRequest {
        uint256 batchId;
        uint256 index;
        address node;
        address requester;
        uint256 bond;
        uint64 revealDeadline; // the node (or anyone) reveals before it, or is slashed
        uint64 disputeDeadline; // set by the reveal: the leaf is disputable until then
        LeafRequestStatus status;
    }

    error DisputeExists(bytes32 disputeId);
    error UnknownDispute(bytes32 disputeId);
    error NotDisputable(bytes32 disputeId);
    error ChallengeWindowClosed(uint64 deadline);
    /// @notice The proof does not put this leaf at `index` under the batch root.
    error InvalidMerkleProof(uint256 batchId, uint256 index);
    error DisputeNotOpen(bytes32 disputeId, DisputeStatus status);
    error ProofDeadlinePassed(bytes32 disputeId, uint64 deadline);
    error ProofDeadlineNotPassed(bytes32 disputeId, uint64 deadline);
    error WrongInstanceCount(uint256 have, uint256 need);
    error OutputMismatch(bytes32 disputeId);
    error InputMismatch(bytes32 disputeId);
    error OutputOutsideTolerance(uint256 index, int256 proven, int256 committed, uint256 tau);
    error ProofRejected(bytes32 disputeId);
    error SelfDispute(address node);
    error NothingToWithdraw(address owner);
    error InstanceOutOfField(uint256 index, uint256 value);
    /// @notice `openDispute` names another output hash than the job's: a reorg moved it.
    error OutputHashMismatch(uint256 jobId, bytes32 given, bytes32 stored);
    /// @notice A leaf request on this leaf is open: it must be revealed (or settled) first.
    error LeafRequestOpen(bytes32 requestId);
    error LeafRequestExists(bytes32 requestId);
    error UnknownLeafRequest(bytes32 requestId);
    error LeafRequestNotOpen(bytes32 requestId, LeafRequestStatus status);
    error RevealDeadlinePassed(bytes32 requestId, uint64 deadline);
    error RevealDeadlineNotPassed(bytes32 requestId, uint64 deadline);
    error IndexOutOfRange(uint256 batchId, uint256 index, uint256 count);
    /// @notice `requestLeaf` names another root than the batch's: a reorg moved it.
    error RootMismatch(uint256 batchId, bytes32 given, bytes32 stored);
    /// @notice `requestLeaves` was given no index.
    error NoLeaves();
    /// @notice `requestLeaves` was given `n` indices, more than `max` (`MAX_LEAVES_PER_REQUEST`).
    error TooManyLeaves(uint256 n, uint256 max);
    error WrongInputLength(uint256 have, uint256 need);
    error WrongOutputLength(uint256 have, uint256 need);
    /// @notice The token delivered less than was sent (fee-on-transfer tokens are unsupported).
    error FeeOnTransferToken();
    error ZeroAddress();
    /// @notice A constructor argument was built for another token, stake manager or registry.
    error WrongWiring(address contract_);

    event DisputeOpened(
        bytes32 indexed disputeId,
        address indexed node,
        address indexed challenger,
        JobKind kind,
        uint256 ref,
        uint256 index,
        uint256 jobId,
        uint256 bond,
        uint64 proofDeadline
    );
    /// @notice `defender` sent a valid proof; the disputer's bond is credited to the defender if
    ///         it holds an open CheckPool claim on the job or leaf, else to the node.
    event DisputeDefended(
        bytes32 indexed disputeId, address indexed node, address defender, uint256 bondToDefender
    );
    event DisputeSettled(
        bytes32 indexed disputeId,
        address indexed node,
        address indexed challenger,
        uint256 slashed,
        uint256 bounty,
        uint256 burned
    );
    event LeafRequested(
        bytes32 indexed requestId,
        uint256 indexed batchId,
        uint256 index,
        address indexed node,
        address requester,
        uint256 bond,
        uint64 revealDeadline
    );
    /// @notice The leaf's data, in calldata and in this log.
    event LeafRevealed(
        bytes32 indexed requestId,
        uint256 indexed batchId,
        uint256 index,
        uint256 jobId,
        bytes32 inputHash,
        bytes32 outputHash,
        int256[] input,
        int256[] output,
        uint64 disputeDeadline
    );
    event LeafRequestSettled(
        bytes32 indexed requestId,
        address indexed node,
        address indexed requester,
        uint256 slashed,
        uint256 bounty,
        uint256 burned
    );
    event CreditsWithdrawn(address indexed owner, uint256 amount);

    /// @notice Dispute on-chain job `jobId` before its challenge deadline, locking the model's
    ///         challenger bond (needs allowance).
    /// @param outputHash the output hash the challenger disputes; must be the job's stored one
    ///        (`OutputHashMismatch` otherwise)
    function openDispute(uint256 jobId, bytes32 outputHash) external returns (bytes32 disputeId);

    /// @notice Dispute leaf `index` of `batchId`, i.e. `(jobId, batch.modelId, inputHash,
    ///         outputHash)` proven to sit at `index` under the batch root by `proof` (positional,
    ///         `SpotcheckHash.verify`). Open before the batch's challenge deadline, or for a
    ///         revealed leaf before its dispute deadline; never while a leaf request on it is open.
    function openBatchDispute(
        uint256 batchId,
        uint256 index,
        uint256 jobId,
        bytes32 inputHash,
        bytes32 outputHash,
        bytes32[] calldata proof
    ) external returns (bytes32 disputeId);

    /// @notice Anyone sends a defence: an ezkl proof. `instances` = input field elements then
    ///         output field elements; `committedOutput` must hash to the committed output hash;
    ///         input instances must hash to the job's input hash; every output instance within
    ///         `tau` of `committedOutput`; the model's verifier must accept (a revert is a
    ///         rejection). Valid: job or leaf proven, the disputer's bond credited to the sender
    ///         (the defender: the node when it defends itself; audit A6-3).
    function defend(bytes32 disputeId, bytes calldata proof, uint256[] calldata instances, int256[] calldata committedOutput)
        external;

    /// @notice After the proof deadline with no valid defence: slash the node from the
    ///         commitment's own reservation, credit the challenger bond + bounty, burn the rest,
    ///         mark the job or leaf invalid. Anyone may call.
    function settle(bytes32 disputeId) external;

    /// @notice Ask the node of `batchId` to publish leaf `index` on-chain. Anyone but the node,
    ///         before the batch's challenge deadline, with the model's challenger bond; one per
    ///         leaf. The reveal deadline is `max(now, claimBusyUntil(node)) +
    ///         openClaimWork(node) + proofWindow` (the batch's model's window).
    /// @param root the batch root the requester saw; must be the stored one (`RootMismatch`
    ///        otherwise): a reorg cannot move the request onto another node's batch
    /// @return requestId `SpotcheckHash.batchLeafKey(batchId, index)`
    function requestLeaf(uint256 batchId, uint256 index, bytes32 root) external returns (bytes32 requestId);

    /// @notice `requestLeaf` for several leaves of one batch in one transaction, with one bond
    ///         transfer (the model's challenger bond times the leaves requested). The batch rules
    ///         are `requestLeaf`'s and revert the whole call: the root (`RootMismatch`), the
    ///         status, the challenge window, the caller is not the node; so does an index out of
    ///         range. An index whose leaf already has a leaf request or a dispute (another
    ///         challenger's, or an earlier index of this call) is skipped: a request front-run on
    ///         one leaf still opens the others. Each leaf opened gets its own reveal deadline
    ///         from the node's queue, in the order given, and its own `LeafRequested` event.
    /// @param batchId the batch
    /// @param indices leaf positions, 1 to `MAX_LEAVES_PER_REQUEST` (`NoLeaves`,
    ///        `TooManyLeaves` otherwise); order them as the reveal deadlines should be
    /// @param root the batch root the requester saw (as in `requestLeaf`)
    /// @return requested how many leaf requests were opened (0 if all were claimed already;
    ///         nothing is pulled then)
    function requestLeaves(uint256 batchId, uint256[] calldata indices, bytes32 root)
        external
        returns (uint256 requested);

    /// @notice The most indices one `requestLeaves` call takes (32): its gas stays bounded.
    function MAX_LEAVES_PER_REQUEST() external view returns (uint256);

    /// @notice Anyone reveals a requested leaf before the reveal deadline: `(jobId, input,
    ///         output)` whose leaf `(jobId, modelId, sha256(input), sha256(output))` sits at
    ///         `index` under the root; lengths must be the model's. The bond is credited to the
    ///         node; the leaf is disputable for one challenge window from now.
    function revealLeaf(
        uint256 batchId,
        uint256 index,
        uint256 jobId,
        int256[] calldata input,
        int256[] calldata output,
        bytes32[] calldata proof
    ) external;

    /// @notice After the reveal deadline with no reveal: as an invalid leaf (slash from the batch
    ///         reservation, bond back + bounty to the requester, rest burned). Anyone may call.
    function settleLeafRequest(bytes32 requestId) external;

    /// @notice Withdraw the caller's credits (returned bonds, bounties, forfeited bonds).
    function withdrawCredits() external;

    function getDispute(bytes32 disputeId) external view returns (Dispute memory);
    function getLeafRequest(bytes32 requestId) external view returns (LeafRequest memory);
    function credits(address owner) external view returns (uint256);
    /// @notice Bond currently locked in open disputes and open leaf requests by `challenger`.
    function bondAtRisk(address challenger) external view returns (uint256);
    /// @notice Open disputes plus open leaf requests against `node`: the number of claims in its
    ///         queue of open work (`openClaimWork` is what they weigh).
    function openClaimsOf(address node) external view returns (uint256);
    /// @notice The open work queued against `node`, in seconds: the sum of the proof windows of
    ///         the models of its open disputes and open leaf requests (each claim adds its
    ///         model's window when it opens and takes the same window out when it is defended,
    ///         settled or revealed). The next dispute or leaf request against the node gets its
    ///         deadline at `max(now, claimBusyUntil(node)) + openClaimWork(node) + proofWindow`
    ///         of its own model: room for a proof still in flight, for every claim ahead of it,
    ///         answered earliest deadline first, each within its own model's window, and then
    ///         for itself.
    /// @param node the node (a job's or batch's committer)
    /// @return work seconds of proof windows open against the node (0 when its queue is empty)
    function openClaimWork(address node) external view returns (uint256);
    /// @notice Until when `node` may still be answering a claim that someone else closed: anyone
    ///         may defend a dispute or reveal a leaf, but the node's own proof of it, once
    ///         started, runs on. A `defend` or `revealLeaf` sent by anyone but the node raises it
    ///         to `min(the claim's deadline, now + its model's proofWindow)` if that is later
    ///         (a max, not a sum: an honest node answers one claim at a time); the node's own
    ///         closes and settles leave it. A new claim's deadline counts from
    ///         `max(now, claimBusyUntil(node))`; claims already open keep theirs.
    /// @param node the node (a job's or batch's committer)
    /// @return busyUntil a unix timestamp; 0 if never set, and once in the past it no longer
    ///         delays anything
    function claimBusyUntil(address node) external view returns (uint256);
}
