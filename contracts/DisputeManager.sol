// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {ICheckPool} from "./interfaces/ICheckPool.sol";
import {IDisputeManager} from "./interfaces/IDisputeManager.sol";
import {IHalo2Verifier} from "./interfaces/IHalo2Verifier.sol";
import {IJobManager} from "./interfaces/IJobManager.sol";
import {IJobManagerHooks} from "./interfaces/IJobManagerHooks.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IStakeManager} from "./interfaces/IStakeManager.sol";
import {SpotcheckHash} from "./libraries/SpotcheckHash.sol";

interface IWiredRegistry {
    function stakeManager() external view returns (IStakeManager);
    function registry() external view returns (IModelRegistry);
}

/// @title DisputeManager
/// @notice Bonded disputes on committed outputs, answered by the model's ezkl proof on-chain;
///         bonded leaf requests that force a batch leaf's data on-chain.
/// @dev Dispute:     None -openDispute/openBatchDispute-> Open -defend-> Defended
///                                                       Open -settle->  Slashed
///      LeafRequest: None -requestLeaf(s)-> Open -revealLeaf-> Revealed
///                                       Open -settleLeafRequest-> Slashed
///      Every exit is terminal: a job or leaf resolves at most once, and a leaf's key is its
///      position, so no verdict is ever shared between two leaves.
///      INVARIANT (queue): openClaimsOf(node) == Open disputes + Open leaf requests against it;
///      openClaimWork(node) == the sum of their models' proof windows; claimBusyUntil(node) ==
///      the max, over claims against it closed by someone other than the node (defend,
///      revealLeaf), of min(that claim's deadline, close time + its model's proofWindow), or 0;
///      a new claim's deadline is max(now, claimBusyUntil(node)) + openClaimWork(node) + its
///      own model's proofWindow.
///      INVARIANT (solvency): token.balanceOf(this) == bonds of Open disputes + bonds of Open
///      leaf requests + sum of credits. Slashed tokens arrive from StakeManager and leave
///      (credit or burn) in the same call.
contract DisputeManager is IDisputeManager, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice Where the unpaid part of a slash goes. Tokens sent here are out of circulation
    ///         (no key is known); plain ERC-20s have no burn, so this works with any token.
    address public constant BURN_ADDRESS = 0x000000000000000000000000000000000000dEaD;
    uint256 internal constant BPS = 10_000;
    int256 internal constant FIELD_HALF = int256(SpotcheckHash.BN254_R / 2);
    /// @inheritdoc IDisputeManager
    uint256 public constant MAX_LEAVES_PER_REQUEST = 32;

    IERC20 public immutable token;
    IStakeManager public immutable stakeManager;
    IModelRegistry public immutable registry;
    IJobManager public immutable jobManager;

    mapping(bytes32 disputeId => Dispute) private _disputes;
    mapping(bytes32 requestId => LeafRequest) private _leafRequests;
    /// @inheritdoc IDisputeManager
    mapping(address owner => uint256) public credits;
    /// @inheritdoc IDisputeManager
    mapping(address challenger => uint256) public bondAtRisk;
    /// @dev Each node's queue of open work, packed in one slot (every open and close reads and
    ///      writes it, so one read and one write): bits 0-63 count the open disputes and open
    ///      leaf requests against the node (`openClaimsOf`), bits 64-127 hold the in-flight bound
    ///      (`claimBusyUntil`, a timestamp), the high 128 bits sum the open claims' models' proof
    ///      windows in seconds (`openClaimWork`). A claim adds and removes
    ///      `(proofWindow << 128) + 1`; only a close by someone other than the node rewrites the
    ///      middle field (never by an add). No field can carry into the next: the count would
    ///      need 2**64 transactions, so it never reaches the busy bits; the work is at most
    ///      count * (2**64 - 1) < 2**128, and a checked uint256 add reverts if it overflows; a
    ///      close (of an open claim) never takes out more than went in, so neither the count
    ///      nor the work borrows; the busy bound is at most a claim's deadline, a uint64.
    mapping(address node => uint256) private _queues;
    uint256 private constant QUEUE_WORK_SHIFT = 128;
    uint256 private constant QUEUE_BUSY_SHIFT = 64;
    uint256 private constant QUEUE_CLAIMS_MASK = type(uint64).max;
    uint256 private constant QUEUE_BUSY_MASK = uint256(type(uint64).max) << QUEUE_BUSY_SHIFT;

    constructor(IERC20 token_, IStakeManager stakeManager_, IModelRegistry registry_, IJobManager jobManager_) {
        require(
            address(token_) != address(0) && address(stakeManager_) != address(0)
                && address(registry_) != address(0) && address(jobManager_) != address(0),
            ZeroAddress()
        );
        // INVARIANT: stakes, fees, bonds and slashes are one token, moved by one set of contracts.
        require(address(stakeManager_.token()) == address(token_), WrongWiring(address(stakeManager_)));
        require(
            address(jobManager_.token()) == address(token_)
                && address(jobManager_.stakeManager()) == address(stakeManager_)
                && address(IWiredRegistry(address(jobManager_)).registry()) == address(registry_),
            WrongWiring(address(jobManager_))
        );
        require(
            address(IWiredRegistry(address(registry_)).stakeManager()) == address(stakeManager_),
            WrongWiring(address(registry_))
        );
        token = token_;
        stakeManager = stakeManager_;
        registry = registry_;
        jobManager = jobManager_;
    }

    // ---------------------------------------------------------------- open

    /// @inheritdoc IDisputeManager
    function openDispute(uint256 jobId, bytes32 outputHash) external nonReentrant returns (bytes32 disputeId) {
        disputeId = SpotcheckHash.onchainJobKey(jobId);
        require(_disputes[disputeId].status == DisputeStatus.None, DisputeExists(disputeId));
        IJobManager.Job memory job = jobManager.getJob(jobId);
        require(job.status == IJobManager.JobStatus.Committed, NotDisputable(disputeId));
        // INVARIANT: a dispute names the output it disputes; a reorg cannot move it to another.
        require(outputHash == job.outputHash, OutputHashMismatch(jobId, outputHash, job.outputHash));
        require(block.timestamp <= job.challengeDeadline, ChallengeWindowClosed(job.challengeDeadline));
        Dispute memory d;
        d.kind = JobKind.Onchain;
        d.ref = jobId;
        d.jobId = jobId;
        d.modelId = job.modelId;
        d.node = job.node;
        d.inputHash = job.inputHash;
        d.outputHash = job.outputHash;
        _open(disputeId, d);
        // SAFETY: trusted protocol code; re-checks the status and moves the job to Disputed.
        IJobManagerHooks(address(jobManager)).onJobDisputed(jobId);
        _pull(d.bond);
    }

    /// @inheritdoc IDisputeManager
    function openBatchDispute(
        uint256 batchId,
        uint256 index,
        uint256 jobId,
        bytes32 inputHash,
        bytes32 outputHash,
        bytes32[] calldata proof
    ) external nonReentrant returns (bytes32 disputeId) {
        disputeId = SpotcheckHash.batchLeafKey(batchId, index);
        require(_disputes[disputeId].status == DisputeStatus.None, DisputeExists(disputeId));
        IJobManager.Batch memory b = _disputableBatch(disputeId, batchId);
        // INVARIANT: the leaf sits at `index` (positional proof, index < count, fixed depth).
        require(
            SpotcheckHash.verify(proof, b.root, SpotcheckHash.leaf(jobId, b.modelId, inputHash, outputHash), index, b.count),
            InvalidMerkleProof(batchId, index)
        );
        Dispute memory d;
        d.kind = JobKind.Batch;
        d.ref = batchId;
        d.index = index;
        d.jobId = jobId;
        d.modelId = b.modelId;
        d.node = b.node;
        d.inputHash = inputHash;
        d.outputHash = outputHash;
        _open(disputeId, d);
        // SAFETY: trusted protocol code; counts the open claim so the batch cannot finalize.
        IJobManagerHooks(address(jobManager)).onBatchLeafDisputed(batchId, index);
        _pull(d.bond);
    }

    // ---------------------------------------------------------------- resolve

    /// @inheritdoc IDisputeManager
    function defend(
        bytes32 disputeId,
        bytes calldata proof,
        uint256[] calldata instances,
        int256[] calldata committedOutput
    ) external nonReentrant {
        Dispute storage d = _openDispute(disputeId);
        require(block.timestamp <= d.proofDeadline, ProofDeadlinePassed(disputeId, d.proofDeadline));
        IModelRegistry.Model memory m = registry.getModel(d.modelId);
        _checkInstances(disputeId, d, m, instances, committedOutput);
        // SAFETY: the verifier is owner-registered code bound into modelId and serving this
        // model only; a revert, a `false` or running out of gas are all a rejection (the defence
        // tx reverts, the dispute stays open until its deadline). nonReentrant guards every
        // entry point here. Anyone may send the proof: a valid proof is a valid defence.
        bool valid = false;
        try IHalo2Verifier(m.verifier).verifyProof(proof, instances) returns (bool ok) {
            valid = ok;
        } catch {
            valid = false;
        }
        require(valid, ProofRejected(disputeId));

        d.status = DisputeStatus.Defended;
        address node = d.node;
        uint256 bond = d.bond;
        if (msg.sender == node) {
            _dequeue(node, m.proofWindow);
        } else {
            // The node may still be proving it (a prover cannot be stopped): see _dequeueInFlight.
            _dequeueInFlight(node, m.proofWindow, d.proofDeadline);
        }
        bondAtRisk[d.challenger] -= bond;
        credits[_bondPayee(disputeId, node)] += bond;
        emit DisputeDefended(disputeId, node, msg.sender, bond);
        // SAFETY: trusted protocol code.
        stakeManager.disputeClosed(node);
        if (d.kind == JobKind.Onchain) {
            IJobManagerHooks(address(jobManager)).onJobProven(d.jobId);
        } else {
            IJobManagerHooks(address(jobManager)).onBatchLeafProven(d.ref, d.index);
        }
    }

    /// @inheritdoc IDisputeManager
    function settle(bytes32 disputeId) external nonReentrant {
        Dispute storage d = _openDispute(disputeId);
        require(block.timestamp > d.proofDeadline, ProofDeadlineNotPassed(disputeId, d.proofDeadline));

        // INVARIANT: a job resolves once: Open -> Slashed is terminal.
        d.status = DisputeStatus.Slashed;
        address node = d.node;
        address challenger = d.challenger;
        uint256 bond = d.bond;
        // Models are immutable: this is the window the claim brought into the queue.
        IModelRegistry.Model memory m = registry.getModel(d.modelId);
        _dequeue(node, m.proofWindow);
        bondAtRisk[challenger] -= bond;

        // SAFETY: trusted protocol code. The hook marks the job or leaf invalid and says how much
        // of the commitment's own reservation to slash.
        uint256 amount = d.kind == JobKind.Onchain
            ? IJobManagerHooks(address(jobManager)).onJobInvalidated(d.jobId)
            : IJobManagerHooks(address(jobManager)).onBatchLeafInvalidated(d.ref, d.index);
        stakeManager.disputeClosed(node);
        (uint256 slashed, uint256 bounty, uint256 burned) =
            _slashAndCredit(node, amount, m.bountyBps, challenger, bond);
        emit DisputeSettled(disputeId, node, challenger, slashed, bounty, burned);
        _burn(burned);
    }

    // ---------------------------------------------------------------- leaf requests

    /// @inheritdoc IDisputeManager
    function requestLeaf(uint256 batchId, uint256 index, bytes32 root)
        external
        nonReentrant
        returns (bytes32 requestId)
    {
        requestId = SpotcheckHash.batchLeafKey(batchId, index);
        (bool requested, bool disputed) = _leafClaims(requestId);
        require(!requested, LeafRequestExists(requestId));
        require(!disputed, DisputeExists(requestId));
        (IJobManager.Batch memory b, IModelRegistry.Model memory m) = _requestableBatch(batchId, root, requestId);
        _openLeafRequest(requestId, batchId, index, b, m);
        _pull(m.challengerBond);
    }

    /// @inheritdoc IDisputeManager
    function requestLeaves(uint256 batchId, uint256[] calldata indices, bytes32 root)
        external
        nonReentrant
        returns (uint256 requested)
    {
        uint256 n = indices.length;
        require(n > 0, NoLeaves());
        // INVARIANT: bounded loop; each leaf costs one request's storage and one hook call.
        require(n <= MAX_LEAVES_PER_REQUEST, TooManyLeaves(n, MAX_LEAVES_PER_REQUEST));
        (IJobManager.Batch memory b, IModelRegistry.Model memory m) =
            _requestableBatch(batchId, root, SpotcheckHash.batchLeafKey(batchId, indices[0]));
        for (uint256 i = 0; i < n; ++i) {
            uint256 index = indices[i];
            bytes32 requestId = SpotcheckHash.batchLeafKey(batchId, index);
            (bool isRequested, bool isDisputed) = _leafClaims(requestId);
            // Someone got there first (or the index repeats): the leaf is claimed already.
            if (isRequested || isDisputed) continue;
            _openLeafRequest(requestId, batchId, index, b, m);
            ++requested;
        }
        if (requested > 0) _pull(requested * m.challengerBond);
    }

    /// @inheritdoc IDisputeManager
    function revealLeaf(
        uint256 batchId,
        uint256 index,
        uint256 jobId,
        int256[] calldata input,
        int256[] calldata output,
        bytes32[] calldata proof
    ) external nonReentrant {
        bytes32 requestId = SpotcheckHash.batchLeafKey(batchId, index);
        LeafRequest storage r = _openRequest(requestId);
        require(block.timestamp <= r.revealDeadline, RevealDeadlinePassed(requestId, r.revealDeadline));
        (bytes32 leafHash, uint64 disputeDeadline, uint64 proofWindow) =
            _revealedLeaf(batchId, jobId, input, output);
        require(_verifyLeaf(batchId, index, leafHash, proof), InvalidMerkleProof(batchId, index));
        r.status = LeafRequestStatus.Revealed;
        r.disputeDeadline = disputeDeadline;
        _dequeueRevealed(r, proofWindow);
        bondAtRisk[r.requester] -= r.bond;
        // The node paid for the calldata: the bond is its compensation.
        credits[r.node] += r.bond;
        _emitRevealed(requestId, batchId, index, jobId, input, output, disputeDeadline);
        // SAFETY: trusted protocol code; closes the claim, keeps the batch open to the deadline.
        IJobManagerHooks(address(jobManager)).onBatchLeafRevealed(batchId, index, disputeDeadline);
    }

    /// @inheritdoc IDisputeManager
    function settleLeafRequest(bytes32 requestId) external nonReentrant {
        LeafRequest storage r = _openRequest(requestId);
        require(block.timestamp > r.revealDeadline, RevealDeadlineNotPassed(requestId, r.revealDeadline));
        // INVARIANT: an unrevealed leaf is an invalid leaf: Open -> Slashed is terminal.
        r.status = LeafRequestStatus.Slashed;
        address node = r.node;
        address requester = r.requester;
        uint256 bond = r.bond;
        // Models are immutable: this is the window the request brought into the queue.
        IModelRegistry.Model memory m = registry.getModel(jobManager.getBatch(r.batchId).modelId);
        _dequeue(node, m.proofWindow);
        bondAtRisk[requester] -= bond;
        // SAFETY: trusted protocol code: marks the leaf invalid, takes one slash of the reservation.
        uint256 amount = IJobManagerHooks(address(jobManager)).onBatchLeafInvalidated(r.batchId, r.index);
        (uint256 slashed, uint256 bounty, uint256 burned) =
            _slashAndCredit(node, amount, m.bountyBps, requester, bond);
        emit LeafRequestSettled(requestId, node, requester, slashed, bounty, burned);
        _burn(burned);
    }

    /// @inheritdoc IDisputeManager
    function withdrawCredits() external nonReentrant {
        uint256 amount = credits[msg.sender];
        require(amount > 0, NothingToWithdraw(msg.sender));
        credits[msg.sender] = 0;
        emit CreditsWithdrawn(msg.sender, amount);
        // SAFETY: effects done; nonReentrant.
        token.safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IDisputeManager
    function getDispute(bytes32 disputeId) external view returns (Dispute memory) {
        return _disputes[disputeId];
    }

    /// @inheritdoc IDisputeManager
    function getLeafRequest(bytes32 requestId) external view returns (LeafRequest memory) {
        return _leafRequests[requestId];
    }

    /// @inheritdoc IDisputeManager
    function openClaimsOf(address node) external view returns (uint256) {
        return _queues[node] & QUEUE_CLAIMS_MASK;
    }

    /// @inheritdoc IDisputeManager
    function openClaimWork(address node) external view returns (uint256) {
        return _queues[node] >> QUEUE_WORK_SHIFT;
    }

    /// @inheritdoc IDisputeManager
    function claimBusyUntil(address node) external view returns (uint256) {
        return uint64(_queues[node] >> QUEUE_BUSY_SHIFT);
    }

    // ---------------------------------------------------------------- internals

    /// @dev Counts a new claim (dispute or leaf request) against `node`, of a model with
    ///      `proofWindow`, and returns its deadline: from now, or from the end of a proof the
    ///      node may still be running for a claim someone else closed (`claimBusyUntil`),
    ///      whichever is later; then the open work ahead of it (the sum of the open claims' own
    ///      windows), then its own window.
    ///      INVARIANT: with claims answered earliest deadline first, each within its own model's
    ///      window, one at a time, an honest node meets every deadline: the new claim's deadline
    ///      leaves room for the proof in flight, all the work open now and its own, and a claim
    ///      already open whose deadline is later had room for that work too (the in-flight
    ///      proof was open work when it arrived). Only open work counts: a defended, revealed or
    ///      settled claim leaves the queue, so claims resolved at once (a sybil's
    ///      self-disputes) delay nobody beyond the one proof the node may have in flight.
    ///      Windows of different models add up (a fast claim behind slow ones waits for the
    ///      slow ones' windows, not k of its own).
    function _enqueue(address node, uint64 proofWindow) private returns (uint64 deadline) {
        uint256 queue = _queues[node];
        uint256 start = uint64(queue >> QUEUE_BUSY_SHIFT);
        if (start < block.timestamp) start = block.timestamp;
        deadline = SafeCast.toUint64(start + (queue >> QUEUE_WORK_SHIFT) + proofWindow);
        _queues[node] = queue + _queueEntry(proofWindow);
    }

    /// @dev Takes a claim the node closed itself, or a settled one, out of `node`'s queue: the
    ///      count and the same `proofWindow` it added (its model's; models are immutable, so
    ///      re-reading it gives that window). Nothing of it is in flight: the node closed it
    ///      after its proof ended, and a settled claim is past its deadline, by which an honest
    ///      node's proof of it has ended.
    function _dequeue(address node, uint64 proofWindow) private {
        _queues[node] -= _queueEntry(proofWindow);
    }

    /// @dev Takes a claim closed by someone other than the node (a third-party defence or
    ///      reveal: anyone may send either) out of the queue like `_dequeue`, and raises the
    ///      node's in-flight bound to the latest moment its own answer to this claim could still
    ///      be running: `min(deadline, now + proofWindow)` (an honest node answers one claim at
    ///      a time, each within its model's window and by its deadline, and cannot stop a
    ///      proof it started). Without it a claim opened next would count from now while the
    ///      node is still busy (A2-1). A max, not a sum: the node has at most one answer in
    ///      flight, so any number of third-party closes stretch later deadlines by at most one
    ///      window. `deadline >= now` (the close checked it), so the bound fits 64 bits.
    function _dequeueInFlight(address node, uint64 proofWindow, uint64 deadline) private {
        uint256 queue = _queues[node] - _queueEntry(proofWindow);
        uint256 busyUntil = block.timestamp + proofWindow;
        if (deadline < busyUntil) busyUntil = deadline;
        if (busyUntil > uint64(queue >> QUEUE_BUSY_SHIFT)) {
            queue = (queue & ~QUEUE_BUSY_MASK) | (busyUntil << QUEUE_BUSY_SHIFT);
        }
        _queues[node] = queue;
    }

    /// @dev Takes a revealed leaf request out of its node's queue: in flight unless the node
    ///      revealed it itself (a helper of `revealLeaf`, whose stack is full).
    function _dequeueRevealed(LeafRequest storage r, uint64 proofWindow) private {
        address node = r.node;
        if (msg.sender == node) {
            _dequeue(node, proofWindow);
        } else {
            _dequeueInFlight(node, proofWindow, r.revealDeadline);
        }
    }

    /// @dev One claim of a model with `proofWindow` in the packed queue: one more claim, that
    ///      much more work.
    function _queueEntry(uint64 proofWindow) private pure returns (uint256) {
        return (uint256(proofWindow) << QUEUE_WORK_SHIFT) | 1;
    }

    /// @dev Whether leaf `requestId` has a leaf request (of any status) and whether it has a
    ///      dispute: either claims it (a disputed leaf's challenger had its data; a second claim
    ///      on it would add nothing).
    function _leafClaims(bytes32 requestId) private view returns (bool requested, bool disputed) {
        requested = _leafRequests[requestId].status != LeafRequestStatus.None;
        disputed = _disputes[requestId].status != DisputeStatus.None;
    }

    /// @dev The batch and its model, if leaves of `batchId` may be requested now by the caller:
    ///      the root the caller saw, Committed, inside the challenge window, not the node's own.
    ///      `requestId` names the refused leaf in `NotDisputable`.
    function _requestableBatch(uint256 batchId, bytes32 root, bytes32 requestId)
        private
        view
        returns (IJobManager.Batch memory b, IModelRegistry.Model memory m)
    {
        b = jobManager.getBatch(batchId);
        // INVARIANT: a request names the root it asks about; a reorg cannot move it to another batch.
        require(root == b.root, RootMismatch(batchId, root, b.root));
        require(b.status == IJobManager.BatchStatus.Committed, NotDisputable(requestId));
        require(block.timestamp <= b.challengeDeadline, ChallengeWindowClosed(b.challengeDeadline));
        require(msg.sender != b.node, SelfDispute(b.node));
        m = registry.getModel(b.modelId);
    }

    /// @dev Opens the leaf request `requestId` (leaf `index` of batch `b`, unclaimed) for the
    ///      caller: its reveal deadline from the node's queue, the bond at risk, the event, the
    ///      batch's open-claim count. The caller pulls the bond.
    function _openLeafRequest(
        bytes32 requestId,
        uint256 batchId,
        uint256 index,
        IJobManager.Batch memory b,
        IModelRegistry.Model memory m
    ) private {
        require(index < b.count, IndexOutOfRange(batchId, index, b.count));
        uint64 revealDeadline = _enqueue(b.node, m.proofWindow);
        _leafRequests[requestId] = LeafRequest({
            batchId: batchId,
            index: index,
            node: b.node,
            requester: msg.sender,
            bond: m.challengerBond,
            revealDeadline: revealDeadline,
            disputeDeadline: 0,
            status: LeafRequestStatus.Open
        });
        bondAtRisk[msg.sender] += m.challengerBond;
        emit LeafRequested(requestId, batchId, index, b.node, msg.sender, m.challengerBond, revealDeadline);
        // SAFETY: trusted protocol code; counts the open claim so the batch cannot finalize.
        IJobManagerHooks(address(jobManager)).onBatchLeafRequested(batchId, index);
    }

    /// @dev Fills challenger, bond, proof deadline (per-node queue) and status, stores the
    ///      dispute and counts it against the node.
    function _open(bytes32 disputeId, Dispute memory d) private {
        require(msg.sender != d.node, SelfDispute(d.node));
        IModelRegistry.Model memory m = registry.getModel(d.modelId);
        d.proofDeadline = _enqueue(d.node, m.proofWindow);
        d.challenger = msg.sender;
        d.bond = m.challengerBond;
        d.status = DisputeStatus.Open;
        _disputes[disputeId] = d;
        bondAtRisk[msg.sender] += d.bond;
        emit DisputeOpened(disputeId, d.node, msg.sender, d.kind, d.ref, d.index, d.jobId, d.bond, d.proofDeadline);
        // SAFETY: trusted protocol code. INVARIANT: the node cannot withdraw stake from now on.
        stakeManager.disputeOpened(d.node);
    }

    /// @dev The batch, if leaf `disputeId` of it may be disputed now: Committed; no leaf request
    ///      open or settled on the leaf; inside the challenge window or, for a revealed leaf,
    ///      before its dispute deadline.
    function _disputableBatch(bytes32 disputeId, uint256 batchId) private view returns (IJobManager.Batch memory b) {
        b = jobManager.getBatch(batchId);
        require(b.status == IJobManager.BatchStatus.Committed, NotDisputable(disputeId));
        LeafRequest storage r = _leafRequests[disputeId];
        // INVARIANT: a requested leaf is disputed only once its data is public.
        require(r.status != LeafRequestStatus.Open, LeafRequestOpen(disputeId));
        require(r.status != LeafRequestStatus.Slashed, NotDisputable(disputeId));
        if (r.status == LeafRequestStatus.Revealed && r.disputeDeadline > b.challengeDeadline) {
            require(block.timestamp <= r.disputeDeadline, ChallengeWindowClosed(r.disputeDeadline));
        } else {
            require(block.timestamp <= b.challengeDeadline, ChallengeWindowClosed(b.challengeDeadline));
        }
    }

    /// @dev The leaf a reveal claims, after the length checks; its dispute deadline; and the
    ///      model's proof window (the request's share of the node's queue).
    function _revealedLeaf(uint256 batchId, uint256 jobId, int256[] calldata input, int256[] calldata output)
        private
        view
        returns (bytes32 leafHash, uint64 disputeDeadline, uint64 proofWindow)
    {
        bytes32 modelId = jobManager.getBatch(batchId).modelId;
        IModelRegistry.Model memory m = registry.getModel(modelId);
        require(input.length == m.inputLen, WrongInputLength(input.length, m.inputLen));
        require(output.length == m.outputLen, WrongOutputLength(output.length, m.outputLen));
        leafHash = SpotcheckHash.leaf(jobId, modelId, SpotcheckHash.hashVector(input), SpotcheckHash.hashVector(output));
        disputeDeadline = uint64(block.timestamp) + m.challengeWindow;
        proofWindow = m.proofWindow;
    }

    function _verifyLeaf(uint256 batchId, uint256 index, bytes32 leafHash, bytes32[] calldata proof)
        private
        view
        returns (bool)
    {
        return jobManager.verifyBatchLeaf(batchId, index, leafHash, proof);
    }

    function _emitRevealed(
        bytes32 requestId,
        uint256 batchId,
        uint256 index,
        uint256 jobId,
        int256[] calldata input,
        int256[] calldata output,
        uint64 disputeDeadline
    ) private {
        emit LeafRevealed(
            requestId,
            batchId,
            index,
            jobId,
            SpotcheckHash.hashVector(input),
            SpotcheckHash.hashVector(output),
            input,
            output,
            disputeDeadline
        );
    }

    /// @dev Slash `amount` (from the commitment's reservation) into this contract, credit the
    ///      claimant its bond plus the bounty share; the caller burns the rest after its event.
    function _slashAndCredit(address node, uint256 amount, uint16 bountyBps, address claimant, uint256 bond)
        private
        returns (uint256 slashed, uint256 bounty, uint256 burned)
    {
        // SAFETY: trusted protocol code; takes from `locked` and `amount`, never reverts.
        slashed = stakeManager.slash(node, amount, address(this));
        bounty = (slashed * bountyBps) / BPS;
        burned = slashed - bounty;
        credits[claimant] += bond + bounty;
    }

    /// @dev Who is credited the disputer's bond of a defended dispute: a defender holding an
    ///      open CheckPool claim on the job or leaf (it proved what it claimed against the
    ///      node's own second address, audit A6-3), else the node. Paying any defender let a
    ///      disputer of honest jobs copy the node's pending proof and take its own bond back.
    function _bondPayee(bytes32 disputeId, address node) private view returns (address) {
        if (msg.sender == node) return node;
        address pool = jobManager.checkPool();
        if (pool == address(0)) return node;
        // SAFETY: the pool is set by the protocol owner in JobManager; a revert here would
        // only make the defence revert, so the call is guarded.
        try ICheckPool(pool).claimOf(disputeId, msg.sender) returns (ICheckPool.ClaimStatus s) {
            return s == ICheckPool.ClaimStatus.Open ? msg.sender : node;
        } catch {
            return node;
        }
    }

    function _burn(uint256 amount) private {
        if (amount > 0) {
            // SAFETY: the protocol token, to a fixed address; nonReentrant.
            token.safeTransfer(BURN_ADDRESS, amount);
        }
    }

    /// @dev Pull `amount` from the caller and check it all arrived.
    function _pull(uint256 amount) private {
        uint256 before = token.balanceOf(address(this));
        // SAFETY: last step of the opening functions; nonReentrant.
        token.safeTransferFrom(msg.sender, address(this), amount);
        require(token.balanceOf(address(this)) - before == amount, FeeOnTransferToken());
    }

    function _openDispute(bytes32 disputeId) private view returns (Dispute storage d) {
        d = _disputes[disputeId];
        require(d.status != DisputeStatus.None, UnknownDispute(disputeId));
        require(d.status == DisputeStatus.Open, DisputeNotOpen(disputeId, d.status));
    }

    function _openRequest(bytes32 requestId) private view returns (LeafRequest storage r) {
        r = _leafRequests[requestId];
        require(r.status != LeafRequestStatus.None, UnknownLeafRequest(requestId));
        require(r.status == LeafRequestStatus.Open, LeafRequestNotOpen(requestId, r.status));
    }

    /// @dev The defence's public instances must be this job's: inputs that hash to the job's
    ///      input hash exactly, outputs within tau of an output that hashes to the commitment.
    ///      Bounded loops: lengths are the model's (<= ModelRegistry.MAX_VECTOR_LEN each).
    function _checkInstances(
        bytes32 disputeId,
        Dispute storage d,
        IModelRegistry.Model memory m,
        uint256[] calldata instances,
        int256[] calldata committedOutput
    ) private view {
        uint256 need = uint256(m.inputLen) + uint256(m.outputLen);
        require(instances.length == need, WrongInstanceCount(instances.length, need));
        require(SpotcheckHash.hashVector(committedOutput) == d.outputHash, OutputMismatch(disputeId));
        require(committedOutput.length == m.outputLen, WrongInstanceCount(committedOutput.length, m.outputLen));
        for (uint256 i; i < need; ++i) {
            require(instances[i] < SpotcheckHash.BN254_R, InstanceOutOfField(i, instances[i]));
        }
        int256[] memory input = new int256[](m.inputLen);
        for (uint256 i; i < m.inputLen; ++i) {
            input[i] = SpotcheckHash.fromField(instances[i]);
        }
        // INVARIANT: the proof is about this job's input, exactly.
        require(SpotcheckHash.hashVector(input) == d.inputHash, InputMismatch(disputeId));
        for (uint256 i; i < m.outputLen; ++i) {
            int256 proven = SpotcheckHash.fromField(instances[m.inputLen + i]);
            int256 committed = committedOutput[i];
            // A committed value outside the field range can never be within tau of a field
            // element's value in a way the node could prove; treating it as outside avoids overflow.
            bool inRange = committed <= FIELD_HALF && committed >= -FIELD_HALF;
            uint256 diff = inRange ? _absDiff(proven, committed) : type(uint256).max;
            // INVARIANT: every output element within tau of what the circuit computed.
            require(diff <= m.tau, OutputOutsideTolerance(i, proven, committed, m.tau));
        }
    }

    function _absDiff(int256 a, int256 b) private pure returns (uint256) {
        // SAFETY: |a|, |b| <= r/2 < 2**253, so a - b cannot overflow int256.
        return a >= b ? uint256(a - b) : uint256(b - a);
    }
}
