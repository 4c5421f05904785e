// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

import {IJobManager} from "./interfaces/IJobManager.sol";
import {IJobManagerHooks} from "./interfaces/IJobManagerHooks.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IStakeManager} from "./interfaces/IStakeManager.sol";
import {ISpotcheckConsumer} from "./interfaces/ISpotcheckConsumer.sol";
import {SpotcheckHash} from "./libraries/SpotcheckHash.sol";

/// @title JobManager
/// @notice On-chain jobs with escrowed fees, batched Merkle-root commitments, finalization.
/// @dev Status machines (each arrow is one function; no other transition exists):
///      Job:   Requested -commitResult-> Committed -finalize-> Final
///             Requested -cancelJob-> Cancelled
///             Committed -onJobDisputed-> Disputed -onJobProven-> Final | -onJobInvalidated-> Invalid
///      Batch: Committed -finalizeBatch-> Final (only with no open leaf dispute)
///      INVARIANT (solvency): token.balanceOf(this) == fees of jobs in Requested, Committed or
///      Disputed + sum of credits.
///      INVARIANT: each commitment locks its model's slashAmount exactly once and unlocks it
///      exactly once, when it leaves Committed/Disputed (jobs) or Committed (batches).
contract JobManager is IJobManager, IJobManagerHooks, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice Gas given to a consumer's `onSpotcheckJobFinalized`.
    uint256 public constant CALLBACK_GAS_LIMIT = 100_000;
    /// @notice Gas kept back for the code after the callback (event, return).
    uint256 public constant CALLBACK_GAS_RESERVE = 10_000;
    int256 internal constant FIELD_HALF = int256(SpotcheckHash.BN254_R / 2);

    IERC20 public immutable token;
    IStakeManager public immutable stakeManager;
    IModelRegistry public immutable registry;
    /// @inheritdoc IJobManager
    uint64 public immutable commitTimeout;
    address private immutable _deployer;

    address public disputeManager;

    uint256 public jobCount;
    uint256 public batchCount;
    mapping(uint256 jobId => Job) private _jobs;
    mapping(uint256 batchId => Batch) private _batches;
    /// @dev key = SpotcheckHash.batchLeafKey(batchId, jobId)
    mapping(bytes32 key => bool) public batchJobProven;
    mapping(bytes32 key => bool) public batchJobInvalid;
    /// @inheritdoc IJobManager
    mapping(address owner => uint256) public credits;
    /// @inheritdoc IJobManager
    mapping(address node => uint256) public livenessFailures;

    event Initialized(address indexed disputeManager);

    modifier onlyDisputeManager() {
        require(msg.sender == disputeManager, NotDisputeManager(msg.sender));
        _;
    }

    constructor(IERC20 token_, IStakeManager stakeManager_, IModelRegistry registry_, uint64 commitTimeout_) {
        require(
            address(token_) != address(0) && address(stakeManager_) != address(0)
                && address(registry_) != address(0) && commitTimeout_ > 0,
            ZeroAddress()
        );
        token = token_;
        stakeManager = stakeManager_;
        registry = registry_;
        commitTimeout = commitTimeout_;
        _deployer = msg.sender;
    }

    /// @notice Connect the dispute manager. Once, by the deployer.
    function initialize(address disputeManager_) external {
        require(msg.sender == _deployer, NotDeployer(msg.sender));
        require(disputeManager == address(0), AlreadyInitialized());
        require(disputeManager_ != address(0), ZeroAddress());
        disputeManager = disputeManager_;
        emit Initialized(disputeManager_);
    }

    // ---------------------------------------------------------------- on-chain jobs

    /// @inheritdoc IJobManager
    function requestJob(bytes32 modelId, int256[] calldata input, address node, uint256 fee)
        external
        nonReentrant
        returns (uint256 jobId)
    {
        IModelRegistry.Model memory m = registry.getModel(modelId);
        require(m.active, ModelInactive(modelId));
        require(node != address(0), ZeroAddress());
        require(input.length == m.inputLen, WrongInputLength(input.length, m.inputLen));
        // INVARIANT: every input is a BN254 field element, else no proof could ever match it
        // and an honest node would be slashable. Bounded: inputLen <= MAX_VECTOR_LEN.
        for (uint256 i; i < input.length; ++i) {
            require(input[i] <= FIELD_HALF && input[i] >= -FIELD_HALF, InputOutOfField(i, input[i]));
        }
        jobId = ++jobCount;
        bytes32 inputHash = SpotcheckHash.hashVector(input);
        uint64 commitDeadline = uint64(block.timestamp) + commitTimeout;
        _jobs[jobId] = Job({
            modelId: modelId,
            requester: msg.sender,
            node: node,
            fee: fee,
            inputHash: inputHash,
            outputHash: bytes32(0),
            commitDeadline: commitDeadline,
            challengeDeadline: 0,
            status: JobStatus.Requested
        });
        emit JobRequested(jobId, modelId, node, msg.sender, fee, inputHash, input, commitDeadline);
        if (fee > 0) {
            // SAFETY: pull after effects; nonReentrant. Fee-on-transfer tokens are unsupported.
            token.safeTransferFrom(msg.sender, address(this), fee);
        }
    }

    /// @inheritdoc IJobManager
    function commitResult(uint256 jobId, int256[] calldata output) external nonReentrant {
        Job storage job = _job(jobId);
        require(job.status == JobStatus.Requested, BadJobStatus(jobId, job.status));
        require(msg.sender == job.node, NotJobNode(jobId, msg.sender, job.node));
        require(block.timestamp <= job.commitDeadline, CommitDeadlinePassed(jobId, job.commitDeadline));
        IModelRegistry.Model memory m = registry.getModel(job.modelId);
        require(m.active, ModelInactive(job.modelId));
        require(output.length == m.outputLen, WrongOutputLength(output.length, m.outputLen));
        uint64 challengeDeadline = uint64(block.timestamp) + m.challengeWindow;
        job.outputHash = SpotcheckHash.hashVector(output);
        job.challengeDeadline = challengeDeadline;
        job.status = JobStatus.Committed;
        emit ResultCommitted(jobId, msg.sender, job.outputHash, output, challengeDeadline);
        // SAFETY: StakeManager is trusted protocol code; reverts if the node may not commit.
        stakeManager.lock(msg.sender, m.slashAmount);
    }

    /// @inheritdoc IJobManager
    function finalize(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        require(job.status == JobStatus.Committed, BadJobStatus(jobId, job.status));
        require(block.timestamp > job.challengeDeadline, ChallengeWindowOpen(job.challengeDeadline));
        _makeFinal(jobId, job);
    }

    /// @inheritdoc IJobManager
    function cancelJob(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        require(job.status == JobStatus.Requested, BadJobStatus(jobId, job.status));
        require(msg.sender == job.requester, NotRequester(jobId, msg.sender));
        require(block.timestamp > job.commitDeadline, CommitDeadlineNotPassed(jobId, job.commitDeadline));
        job.status = JobStatus.Cancelled;
        credits[job.requester] += job.fee;
        uint256 failures = ++livenessFailures[job.node];
        emit JobCancelled(jobId, job.node, job.fee);
        emit LivenessFailure(job.node, jobId, failures);
    }

    // ---------------------------------------------------------------- batches

    /// @inheritdoc IJobManager
    function commitBatch(bytes32 modelId, bytes32 root, uint32 count, string calldata uri)
        external
        nonReentrant
        returns (uint256 batchId)
    {
        IModelRegistry.Model memory m = registry.getModel(modelId);
        require(m.active, ModelInactive(modelId));
        require(count > 0, EmptyBatch());
        require(root != bytes32(0), ZeroRoot());
        batchId = ++batchCount;
        uint64 challengeDeadline = uint64(block.timestamp) + m.challengeWindow;
        _batches[batchId] = Batch({
            modelId: modelId,
            node: msg.sender,
            root: root,
            count: count,
            challengeDeadline: challengeDeadline,
            openDisputes: 0,
            status: BatchStatus.Committed,
            uri: uri
        });
        emit BatchCommitted(batchId, msg.sender, modelId, root, count, uri, challengeDeadline);
        // SAFETY: trusted protocol code; one slash amount locked per batch (see docs/contracts.md).
        stakeManager.lock(msg.sender, m.slashAmount);
    }

    /// @inheritdoc IJobManager
    function finalizeBatch(uint256 batchId) external nonReentrant {
        Batch storage b = _batch(batchId);
        require(b.status == BatchStatus.Committed, BadBatchStatus(batchId, b.status));
        require(block.timestamp > b.challengeDeadline, ChallengeWindowOpen(b.challengeDeadline));
        // INVARIANT: a batch with an open leaf dispute stays open (its lock covers the slash).
        require(b.openDisputes == 0, DisputePending(batchId));
        b.status = BatchStatus.Final;
        emit BatchFinalized(batchId, b.node);
        stakeManager.unlock(b.node, registry.getModel(b.modelId).slashAmount);
    }

    // ---------------------------------------------------------------- credits

    /// @inheritdoc IJobManager
    function withdrawCredits() external nonReentrant {
        uint256 amount = credits[msg.sender];
        require(amount > 0, NothingToWithdraw(msg.sender));
        credits[msg.sender] = 0;
        emit CreditsWithdrawn(msg.sender, amount);
        // SAFETY: effects done; nonReentrant.
        token.safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- dispute hooks

    /// @inheritdoc IJobManagerHooks
    function onJobDisputed(uint256 jobId) external onlyDisputeManager {
        Job storage job = _job(jobId);
        require(job.status == JobStatus.Committed, BadJobStatus(jobId, job.status));
        job.status = JobStatus.Disputed;
        emit JobDisputed(jobId);
    }

    /// @inheritdoc IJobManagerHooks
    function onJobProven(uint256 jobId) external onlyDisputeManager nonReentrant {
        Job storage job = _job(jobId);
        require(job.status == JobStatus.Disputed, BadJobStatus(jobId, job.status));
        emit JobProven(jobId);
        _makeFinal(jobId, job);
    }

    /// @inheritdoc IJobManagerHooks
    function onJobInvalidated(uint256 jobId) external onlyDisputeManager {
        Job storage job = _job(jobId);
        require(job.status == JobStatus.Disputed, BadJobStatus(jobId, job.status));
        // INVARIANT: an invalid job is never final; its fee goes back to the requester.
        job.status = JobStatus.Invalid;
        credits[job.requester] += job.fee;
        emit JobInvalidated(jobId);
        // SAFETY: trusted protocol code. Unlock before DisputeManager slashes.
        stakeManager.unlock(job.node, registry.getModel(job.modelId).slashAmount);
    }

    /// @inheritdoc IJobManagerHooks
    function onBatchJobDisputed(uint256 batchId, uint256 jobId) external onlyDisputeManager {
        Batch storage b = _batch(batchId);
        require(b.status == BatchStatus.Committed, BadBatchStatus(batchId, b.status));
        b.openDisputes += 1;
        emit BatchJobDisputed(batchId, jobId, b.openDisputes);
    }

    /// @inheritdoc IJobManagerHooks
    function onBatchJobProven(uint256 batchId, uint256 jobId) external onlyDisputeManager {
        Batch storage b = _batch(batchId);
        b.openDisputes -= 1;
        batchJobProven[SpotcheckHash.batchLeafKey(batchId, jobId)] = true;
        emit BatchJobProven(batchId, jobId);
    }

    /// @inheritdoc IJobManagerHooks
    function onBatchJobInvalidated(uint256 batchId, uint256 jobId) external onlyDisputeManager {
        Batch storage b = _batch(batchId);
        b.openDisputes -= 1;
        batchJobInvalid[SpotcheckHash.batchLeafKey(batchId, jobId)] = true;
        emit BatchJobInvalidated(batchId, jobId);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IJobManager
    function getJob(uint256 jobId) external view returns (Job memory) {
        return _job(jobId);
    }

    /// @inheritdoc IJobManager
    function getBatch(uint256 batchId) external view returns (Batch memory) {
        return _batch(batchId);
    }

    /// @inheritdoc IJobManager
    function isJobFinal(uint256 jobId) external view returns (bool) {
        return _jobs[jobId].status == JobStatus.Final;
    }

    /// @inheritdoc IJobManager
    function isBatchJobFinal(uint256 batchId, uint256 jobId) external view returns (bool) {
        bytes32 key = SpotcheckHash.batchLeafKey(batchId, jobId);
        if (batchJobInvalid[key]) return false;
        return _batches[batchId].status == BatchStatus.Final || batchJobProven[key];
    }

    // ---------------------------------------------------------------- internals

    function _job(uint256 jobId) private view returns (Job storage job) {
        job = _jobs[jobId];
        require(job.status != JobStatus.None, UnknownJob(jobId));
    }

    function _batch(uint256 batchId) private view returns (Batch storage b) {
        b = _batches[batchId];
        require(b.status != BatchStatus.None, UnknownBatch(batchId));
    }

    /// @dev Committed|Disputed -> Final: credit the fee, unlock the stake, notify a contract
    ///      requester. The callback is last, gas-capped and in try/catch: it never blocks.
    function _makeFinal(uint256 jobId, Job storage job) private {
        job.status = JobStatus.Final;
        credits[job.node] += job.fee;
        emit JobFinalized(jobId, job.node, job.fee);
        // SAFETY: trusted protocol code.
        stakeManager.unlock(job.node, registry.getModel(job.modelId).slashAmount);
        address requester = job.requester;
        if (requester.code.length == 0) return;
        // INVARIANT (63/64 rule): the callee must really get CALLBACK_GAS_LIMIT, else a caller
        // could pick a gas limit that makes the callback fail while finalization succeeds.
        uint256 need = (CALLBACK_GAS_LIMIT * 64) / 63 + CALLBACK_GAS_RESERVE;
        require(gasleft() >= need, InsufficientCallbackGas(gasleft(), need));
        // SAFETY: status and credits are final before the call; every entry point is
        // nonReentrant; `catch` without a returndata binding copies nothing back.
        try ISpotcheckConsumer(requester).onSpotcheckJobFinalized{gas: CALLBACK_GAS_LIMIT}(jobId, job.outputHash) {}
        catch {
            emit ConsumerCallbackFailed(jobId, requester);
        }
    }
}
