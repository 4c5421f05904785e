// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {IDisputeManager} from "./interfaces/IDisputeManager.sol";
import {IHalo2Verifier} from "./interfaces/IHalo2Verifier.sol";
import {IJobManager} from "./interfaces/IJobManager.sol";
import {IJobManagerHooks} from "./interfaces/IJobManagerHooks.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IStakeManager} from "./interfaces/IStakeManager.sol";
import {SpotcheckHash} from "./libraries/SpotcheckHash.sol";

/// @title DisputeManager
/// @notice Bonded disputes on committed outputs, answered by the model's ezkl proof on-chain.
/// @dev Dispute: None -openDispute/openBatchDispute-> Open -defend-> Defended
///                                                  Open -settle->  Slashed
///      Both exits are terminal: a job resolves at most once.
///      INVARIANT (solvency): token.balanceOf(this) == sum of bonds of Open disputes + sum of
///      credits. Slashed tokens arrive from StakeManager and leave (credit or burn) in `settle`.
contract DisputeManager is IDisputeManager, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice Where the unpaid part of a slash goes. Tokens sent here are out of circulation
    ///         (no key is known); plain ERC-20s have no burn, so this works with any token.
    address public constant BURN_ADDRESS = 0x000000000000000000000000000000000000dEaD;
    uint256 internal constant BPS = 10_000;
    int256 internal constant FIELD_HALF = int256(SpotcheckHash.BN254_R / 2);

    IERC20 public immutable token;
    IStakeManager public immutable stakeManager;
    IModelRegistry public immutable registry;
    IJobManager public immutable jobManager;

    mapping(bytes32 disputeId => Dispute) private _disputes;
    /// @inheritdoc IDisputeManager
    mapping(address owner => uint256) public credits;
    /// @inheritdoc IDisputeManager
    mapping(address challenger => uint256) public bondAtRisk;

    constructor(IERC20 token_, IStakeManager stakeManager_, IModelRegistry registry_, IJobManager jobManager_) {
        token = token_;
        stakeManager = stakeManager_;
        registry = registry_;
        jobManager = jobManager_;
    }

    // ---------------------------------------------------------------- open

    /// @inheritdoc IDisputeManager
    function openDispute(uint256 jobId) external nonReentrant returns (bytes32 disputeId) {
        disputeId = SpotcheckHash.onchainJobKey(jobId);
        require(_disputes[disputeId].status == DisputeStatus.None, DisputeExists(disputeId));
        IJobManager.Job memory job = jobManager.getJob(jobId);
        require(job.status == IJobManager.JobStatus.Committed, NotDisputable(disputeId));
        require(block.timestamp <= job.challengeDeadline, ChallengeWindowClosed(job.challengeDeadline));
        _open(disputeId, JobKind.Onchain, jobId, jobId, job.modelId, job.node, job.inputHash, job.outputHash);
        // SAFETY: trusted protocol code; re-checks the status and moves the job to Disputed.
        IJobManagerHooks(address(jobManager)).onJobDisputed(jobId);
        _pullBond(disputeId);
    }

    /// @inheritdoc IDisputeManager
    function openBatchDispute(
        uint256 batchId,
        uint256 jobId,
        bytes32 inputHash,
        bytes32 outputHash,
        bytes32[] calldata proof
    ) external nonReentrant returns (bytes32 disputeId) {
        disputeId = SpotcheckHash.batchLeafKey(batchId, jobId);
        require(_disputes[disputeId].status == DisputeStatus.None, DisputeExists(disputeId));
        IJobManager.Batch memory b = jobManager.getBatch(batchId);
        require(b.status == IJobManager.BatchStatus.Committed, NotDisputable(disputeId));
        require(block.timestamp <= b.challengeDeadline, ChallengeWindowClosed(b.challengeDeadline));
        bytes32 leaf = SpotcheckHash.leaf(jobId, b.modelId, inputHash, outputHash);
        require(MerkleProof.verifyCalldata(proof, b.root, leaf), InvalidMerkleProof(batchId, jobId));
        _open(disputeId, JobKind.Batch, batchId, jobId, b.modelId, b.node, inputHash, outputHash);
        // SAFETY: trusted protocol code; counts the open leaf dispute so the batch cannot finalize.
        IJobManagerHooks(address(jobManager)).onBatchJobDisputed(batchId, jobId);
        _pullBond(disputeId);
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
        require(msg.sender == d.node, NotDisputedNode(disputeId, msg.sender));
        require(block.timestamp <= d.proofDeadline, ProofDeadlinePassed(disputeId, d.proofDeadline));
        IModelRegistry.Model memory m = registry.getModel(d.modelId);
        _checkInstances(disputeId, d, m, instances, committedOutput);
        // SAFETY: the verifier is owner-registered code bound into modelId; a revert, a `false`
        // or running out of gas are all a rejection (the defence tx reverts, the dispute stays
        // open until its deadline). nonReentrant guards every entry point here.
        bool valid = false;
        try IHalo2Verifier(m.verifier).verifyProof(proof, instances) returns (bool ok) {
            valid = ok;
        } catch {
            valid = false;
        }
        require(valid, ProofRejected(disputeId));

        d.status = DisputeStatus.Defended;
        bondAtRisk[d.challenger] -= d.bond;
        credits[d.node] += d.bond;
        emit DisputeDefended(disputeId, d.node, d.bond);
        // SAFETY: trusted protocol code.
        stakeManager.disputeClosed(d.node);
        if (d.kind == JobKind.Onchain) {
            IJobManagerHooks(address(jobManager)).onJobProven(d.jobId);
        } else {
            IJobManagerHooks(address(jobManager)).onBatchJobProven(d.ref, d.jobId);
        }
    }

    /// @inheritdoc IDisputeManager
    function settle(bytes32 disputeId) external nonReentrant {
        Dispute storage d = _openDispute(disputeId);
        require(block.timestamp > d.proofDeadline, ProofDeadlineNotPassed(disputeId, d.proofDeadline));
        IModelRegistry.Model memory m = registry.getModel(d.modelId);

        // INVARIANT: a job resolves once: Open -> Slashed is terminal.
        d.status = DisputeStatus.Slashed;
        address node = d.node;
        address challenger = d.challenger;
        uint256 bond = d.bond;
        bondAtRisk[challenger] -= bond;

        // SAFETY: trusted protocol code. The job hook releases the job's lock before the slash.
        if (d.kind == JobKind.Onchain) {
            IJobManagerHooks(address(jobManager)).onJobInvalidated(d.jobId);
        } else {
            IJobManagerHooks(address(jobManager)).onBatchJobInvalidated(d.ref, d.jobId);
        }
        stakeManager.disputeClosed(node);
        // Clamped to the stake and never reverting (StakeManager.slash); the tokens come here.
        uint256 slashed = stakeManager.slash(node, m.slashAmount, address(this));
        uint256 bounty = (slashed * m.bountyBps) / BPS;
        uint256 burned = slashed - bounty;
        credits[challenger] += bond + bounty;
        emit DisputeSettled(disputeId, node, challenger, slashed, bounty, burned);
        if (burned > 0) {
            // SAFETY: the protocol token, to a fixed address; nonReentrant.
            token.safeTransfer(BURN_ADDRESS, burned);
        }
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

    // ---------------------------------------------------------------- internals

    function _open(
        bytes32 disputeId,
        JobKind kind,
        uint256 ref,
        uint256 jobId,
        bytes32 modelId,
        address node,
        bytes32 inputHash,
        bytes32 outputHash
    ) private {
        require(msg.sender != node, SelfDispute(node));
        IModelRegistry.Model memory m = registry.getModel(modelId);
        uint64 proofDeadline = uint64(block.timestamp) + m.proofWindow;
        _disputes[disputeId] = Dispute({
            kind: kind,
            ref: ref,
            jobId: jobId,
            modelId: modelId,
            node: node,
            challenger: msg.sender,
            inputHash: inputHash,
            outputHash: outputHash,
            bond: m.challengerBond,
            proofDeadline: proofDeadline,
            status: DisputeStatus.Open
        });
        bondAtRisk[msg.sender] += m.challengerBond;
        emit DisputeOpened(disputeId, node, msg.sender, kind, ref, jobId, m.challengerBond, proofDeadline);
        // SAFETY: trusted protocol code. INVARIANT: the node cannot withdraw stake from now on.
        stakeManager.disputeOpened(node);
    }

    function _pullBond(bytes32 disputeId) private {
        // SAFETY: last step of openDispute/openBatchDispute; nonReentrant.
        token.safeTransferFrom(msg.sender, address(this), _disputes[disputeId].bond);
    }

    function _openDispute(bytes32 disputeId) private view returns (Dispute storage d) {
        d = _disputes[disputeId];
        require(d.status != DisputeStatus.None, UnknownDispute(disputeId));
        require(d.status == DisputeStatus.Open, DisputeNotOpen(disputeId, d.status));
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
