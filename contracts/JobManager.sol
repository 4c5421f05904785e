// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

import {ICheckPoolHooks} from "./interfaces/ICheckPoolHooks.sol";
import {IJobManager} from "./interfaces/IJobManager.sol";
import {IJobManagerHooks} from "./interfaces/IJobManagerHooks.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IStakeManager} from "./interfaces/IStakeManager.sol";
import {ISpotcheckConsumer} from "./interfaces/ISpotcheckConsumer.sol";
import {SpotcheckHash} from "./libraries/SpotcheckHash.sol";

/// @title JobManager
/// @notice On-chain jobs with escrowed fees, batched positional Merkle-root commitments,
///         reservations, finalization.
/// @dev Status machines (each arrow is one function; no other transition exists):
///      Job:   Requested -commitResult-> Committed -finalize-> Final
///             Requested -cancelJob-> Cancelled
///             Committed -onJobDisputed-> Disputed -onJobProven-> Final | -onJobInvalidated-> Invalid
///      Batch: Committed -finalizeBatch-> Final (after finalAfter, with no open claim)
///      Leaf verdicts (by batchLeafKey): proven by a defence, invalid by a settled dispute or an
///      unrevealed leaf request; invalid wins (isBatchLeafFinal).
///      INVARIANT (solvency): token.balanceOf(this) == fees of jobs in Requested, Committed or
///      Disputed + sum of credits.
///      INVARIANT (fully backed): a Committed/Disputed job holds a reservation of its model's
///      slashAmount; a Committed batch holds `reserved` (count * slashAmount minus its slashes).
///      StakeManager.locked of a node == the sum of those. Each is released once (Final) or
///      slashed (Invalid: the job's whole reservation; a leaf: one slash out of `reserved`).
contract JobManager is IJobManager, IJobManagerHooks, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice Gas given to a consumer's `onSpotcheckJobFinalized`.
    uint256 public constant CALLBACK_GAS_LIMIT = 100_000;
    /// @notice Gas kept back for the code after the callback (event, return).
    uint256 public constant CALLBACK_GAS_RESERVE = 10_000;

    /// @inheritdoc IJobManager
    IERC20 public immutable token;
    /// @inheritdoc IJobManager
    IStakeManager public immutable stakeManager;
    /// @inheritdoc IJobManager
    IModelRegistry public immutable registry;
    /// @inheritdoc IJobManager
    uint64 public immutable commitTimeout;
    address private immutable _deployer;

    address public disputeManager;
    /// @inheritdoc IJobManager
    address public checkPool;

    uint256 public jobCount;
    uint256 public batchCount;
    mapping(uint256 jobId => Job) private _jobs;
    mapping(uint256 batchId => Batch) private _batches;
    /// @inheritdoc IJobManager
    mapping(bytes32 key => bool) public batchLeafProven;
    /// @inheritdoc IJobManager
    mapping(bytes32 key => bool) public batchLeafInvalid;
    /// @notice A node's posted price per model (`priceOf` takes the max with the model's minFee).
    mapping(address node => mapping(bytes32 modelId => uint256)) public postedPrice;
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
        // INVARIANT: one token for stakes, fees and bonds; one stake manager.
        require(address(stakeManager_.token()) == address(token_), WrongWiring(address(stakeManager_)));
        require(_registryStakeManager(registry_) == address(stakeManager_), WrongWiring(address(registry_)));
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

    /// @notice Connect the check pool. Once, by the deployer; it must be built for this contract.
    function setCheckPool(address checkPool_) external {
        require(msg.sender == _deployer, NotDeployer(msg.sender));
        require(checkPool == address(0), AlreadyInitialized());
        require(checkPool_ != address(0), ZeroAddress());
        require(address(IPoolWiring(checkPool_).jobManager()) == address(this), WrongWiring(checkPool_));
        checkPool = checkPool_;
        emit CheckPoolSet(checkPool_);
    }

    /// @inheritdoc IJobManager
    function markCheckClaimed(uint256 jobId) external {
        require(msg.sender == checkPool, NotCheckPool(msg.sender));
        Job storage job = _job(jobId);
        // INVARIANT: claims only on Committed jobs (CheckPool checks it too).
        require(job.status == JobStatus.Committed, BadJobStatus(jobId, job.status));
        job.checkClaimed = true;
        emit CheckClaimMarked(jobId);
    }

    // ---------------------------------------------------------------- prices

    /// @inheritdoc IJobManager
    function setPrice(bytes32 modelId, uint256 price) external {
        registry.getModel(modelId); // reverts UnknownModel
        postedPrice[msg.sender][modelId] = price;
        emit PriceSet(msg.sender, modelId, price);
    }

    /// @inheritdoc IJobManager
    function priceOf(address node, bytes32 modelId) public view returns (uint256) {
        return _price(node, modelId, registry.getModel(modelId).minFee);
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
        // INVARIANT: only agreed work exists on-chain: a request below the node's price is none.
        uint256 price = _price(node, modelId, m.minFee);
        require(fee >= price, FeeBelowPrice(fee, price));
        require(input.length == m.inputLen, WrongInputLength(input.length, m.inputLen));
        // INVARIANT: every input is in the model's domain (a subset of the BN254 field), the
        // inputs the circuit covers: an honest node can always prove its answer.
        // Bounded: inputLen <= MAX_VECTOR_LEN.
        for (uint256 i; i < input.length; ++i) {
            int256 v = input[i];
            require(v >= m.inLo && v <= m.inHi, InputOutOfDomain(i, v, m.inLo, m.inHi));
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
            status: JobStatus.Requested,
            commitBlock: 0,
            checkClaimed: false
        });
        emit JobRequested(jobId, modelId, node, msg.sender, fee, inputHash, input, commitDeadline);
        if (fee > 0) _pull(fee);
    }

    /// @inheritdoc IJobManager
    function commitResult(uint256 jobId, bytes32 inputHash, int256[] calldata output) external nonReentrant {
        Job storage job = _job(jobId);
        require(job.status == JobStatus.Requested, BadJobStatus(jobId, job.status));
        require(msg.sender == job.node, NotJobNode(jobId, msg.sender, job.node));
        // INVARIANT: a commit answers the input it names; a reorg cannot move it to another job.
        require(inputHash == job.inputHash, InputHashMismatch(jobId, inputHash, job.inputHash));
        require(block.timestamp <= job.commitDeadline, CommitDeadlinePassed(jobId, job.commitDeadline));
        IModelRegistry.Model memory m = registry.getModel(job.modelId);
        require(m.active, ModelInactive(job.modelId));
        require(output.length == m.outputLen, WrongOutputLength(output.length, m.outputLen));
        uint64 challengeDeadline = uint64(block.timestamp) + m.challengeWindow;
        job.outputHash = SpotcheckHash.hashVector(output);
        job.challengeDeadline = challengeDeadline;
        job.status = JobStatus.Committed;
        job.commitBlock = uint64(block.number);
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
        emit JobCancelled(jobId, job.node, job.fee);
        // A node cannot commit for a deactivated model, and ignores a request below its current
        // price (raised after the request): neither is a failure of the node's. A counter only.
        IModelRegistry.Model memory m = registry.getModel(job.modelId);
        if (m.active && job.fee >= _price(job.node, job.modelId, m.minFee)) {
            uint256 failures = ++livenessFailures[job.node];
            emit LivenessFailure(job.node, jobId, failures);
        }
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
        // INVARIANT (fully backed): every leaf is backed by one slash of its own.
        uint256 reserved = uint256(count) * m.slashAmount;
        batchId = ++batchCount;
        uint64 challengeDeadline = uint64(block.timestamp) + m.challengeWindow;
        _batches[batchId] = Batch({
            modelId: modelId,
            node: msg.sender,
            commitBlock: uint64(block.number),
            root: root,
            count: count,
            challengeDeadline: challengeDeadline,
            finalAfter: challengeDeadline,
            openClaims: 0,
            status: BatchStatus.Committed,
            reserved: reserved,
            uri: uri
        });
        emit BatchCommitted(batchId, msg.sender, modelId, root, count, uri, challengeDeadline, reserved);
        // SAFETY: trusted protocol code; reverts InsufficientStake unless the stake covers it.
        stakeManager.lock(msg.sender, reserved);
        address pool = checkPool;
        if (pool == address(0)) return batchId;
        // SAFETY: trusted protocol code (set once by the deployer); it books the batch's check
        // deposit (count * the model's leafCheckFee, no loop) and returns it.
        uint256 deposit = ICheckPoolHooks(pool).onBatchCommitted(batchId, modelId, count);
        if (deposit == 0) return batchId;
        emit BatchCheckDepositPaid(batchId, pool, deposit);
        // INVARIANT: the node funds its batch's checks: the deposit goes from the node straight
        // to the pool (the node approves this contract), all of it.
        uint256 before = token.balanceOf(pool);
        // SAFETY: after every effect; nonReentrant; the protocol token.
        token.safeTransferFrom(msg.sender, pool, deposit);
        require(token.balanceOf(pool) - before == deposit, FeeOnTransferToken());
    }

    /// @inheritdoc IJobManager
    function finalizeBatch(uint256 batchId) external nonReentrant {
        Batch storage b = _batch(batchId);
        require(b.status == BatchStatus.Committed, BadBatchStatus(batchId, b.status));
        require(block.timestamp > b.finalAfter, ChallengeWindowOpen(b.finalAfter));
        // INVARIANT: nothing is final with an open dispute or leaf request on it.
        require(b.openClaims == 0, ClaimsPending(batchId, b.openClaims));
        b.status = BatchStatus.Final;
        uint256 released = b.reserved;
        b.reserved = 0;
        emit BatchFinalized(batchId, b.node, released);
        // SAFETY: trusted protocol code.
        if (released > 0) stakeManager.unlock(b.node, released);
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
    function onJobInvalidated(uint256 jobId) external onlyDisputeManager returns (uint256 slashAmount) {
        Job storage job = _job(jobId);
        require(job.status == JobStatus.Disputed, BadJobStatus(jobId, job.status));
        // INVARIANT: an invalid job is never final; its fee goes back to the requester; its
        // reservation is what DisputeManager slashes (nothing is unlocked here).
        job.status = JobStatus.Invalid;
        credits[job.requester] += job.fee;
        slashAmount = registry.getModel(job.modelId).slashAmount;
        emit JobInvalidated(jobId, slashAmount);
    }

    /// @inheritdoc IJobManagerHooks
    function onBatchLeafDisputed(uint256 batchId, uint256 index) external onlyDisputeManager {
        Batch storage b = _committedBatch(batchId);
        b.openClaims += 1;
        emit BatchLeafDisputed(batchId, index, b.openClaims);
    }

    /// @inheritdoc IJobManagerHooks
    function onBatchLeafRequested(uint256 batchId, uint256 index) external onlyDisputeManager {
        Batch storage b = _committedBatch(batchId);
        b.openClaims += 1;
        emit BatchLeafRequested(batchId, index, b.openClaims);
    }

    /// @inheritdoc IJobManagerHooks
    function onBatchLeafRevealed(uint256 batchId, uint256 index, uint64 disputeDeadline)
        external
        onlyDisputeManager
    {
        Batch storage b = _batch(batchId);
        b.openClaims -= 1;
        // INVARIANT: a revealed leaf stays disputable until disputeDeadline; the batch (and so
        // its reservation) stays open at least that long.
        if (disputeDeadline > b.finalAfter) b.finalAfter = disputeDeadline;
        emit BatchLeafRevealed(batchId, index, b.openClaims, b.finalAfter);
    }

    /// @inheritdoc IJobManagerHooks
    function onBatchLeafProven(uint256 batchId, uint256 index) external onlyDisputeManager {
        Batch storage b = _batch(batchId);
        b.openClaims -= 1;
        batchLeafProven[SpotcheckHash.batchLeafKey(batchId, index)] = true;
        emit BatchLeafProven(batchId, index);
    }

    /// @inheritdoc IJobManagerHooks
    function onBatchLeafInvalidated(uint256 batchId, uint256 index)
        external
        onlyDisputeManager
        returns (uint256 slashAmount)
    {
        Batch storage b = _batch(batchId);
        b.openClaims -= 1;
        batchLeafInvalid[SpotcheckHash.batchLeafKey(batchId, index)] = true;
        // INVARIANT: a leaf's slash comes out of its own batch's reservation, never more.
        uint256 slash = registry.getModel(b.modelId).slashAmount;
        slashAmount = slash < b.reserved ? slash : b.reserved;
        b.reserved -= slashAmount;
        emit BatchLeafInvalidated(batchId, index, slashAmount, b.reserved);
        address pool = checkPool;
        // SAFETY: trusted protocol code, last: it burns the leaf's check deposit (a cheating
        // node never gets it back) and never reverts for a leaf it knows nothing of.
        if (pool != address(0)) ICheckPoolHooks(pool).onBatchLeafInvalidated(batchId, index);
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
    function verifyBatchLeaf(uint256 batchId, uint256 index, bytes32 leaf, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        Batch storage b = _batch(batchId);
        return SpotcheckHash.verify(proof, b.root, leaf, index, b.count);
    }

    /// @inheritdoc IJobManager
    function isBatchLeafFinal(uint256 batchId, uint256 index) external view returns (bool) {
        Batch storage b = _batches[batchId];
        if (index >= b.count) return false;
        bytes32 key = SpotcheckHash.batchLeafKey(batchId, index);
        if (batchLeafInvalid[key]) return false;
        return b.status == BatchStatus.Final || batchLeafProven[key];
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

    function _committedBatch(uint256 batchId) private view returns (Batch storage b) {
        b = _batch(batchId);
        require(b.status == BatchStatus.Committed, BadBatchStatus(batchId, b.status));
    }

    function _price(address node, bytes32 modelId, uint256 minFee) private view returns (uint256) {
        uint256 posted = postedPrice[node][modelId];
        return posted > minFee ? posted : minFee;
    }

    function _registryStakeManager(IModelRegistry registry_) private view returns (address) {
        return address(IRegistryWiring(address(registry_)).stakeManager());
    }

    /// @dev Pull `amount` from the caller and check it all arrived.
    function _pull(uint256 amount) private {
        uint256 before = token.balanceOf(address(this));
        // SAFETY: pull after effects; every entry point is nonReentrant.
        token.safeTransferFrom(msg.sender, address(this), amount);
        require(token.balanceOf(address(this)) - before == amount, FeeOnTransferToken());
    }

    /// @dev Committed|Disputed -> Final: credit the fee, release the reservation, notify a
    ///      contract requester. The callback is last, gas-capped and in try/catch: it never blocks.
    function _makeFinal(uint256 jobId, Job storage job) private {
        job.status = JobStatus.Final;
        uint256 fee = job.fee;
        address pool = address(0);
        uint256 reward = 0;
        if (job.checkClaimed) {
            // Only claimed jobs pay for the call: a job without claims finalizes as before.
            pool = checkPool;
            // SAFETY: trusted protocol code (set once by the deployer); it only books the reward.
            reward = ICheckPoolHooks(pool).onJobFinalized(jobId, job.modelId, fee);
        }
        // INVARIANT (solvency): never more than the fee leaves for checks (CheckPool caps it at half).
        if (reward > fee) reward = fee;
        credits[job.node] += fee - reward;
        emit JobFinalized(jobId, job.node, fee - reward);
        // SAFETY: trusted protocol code.
        stakeManager.unlock(job.node, registry.getModel(job.modelId).slashAmount);
        if (reward > 0) {
            emit CheckRewardPaid(jobId, pool, reward);
            // SAFETY: the protocol token to the protocol's pool; every entry point is nonReentrant.
            token.safeTransfer(pool, reward);
        }
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

interface IPoolWiring {
    function jobManager() external view returns (IJobManager);
}

interface IRegistryWiring {
    function stakeManager() external view returns (IStakeManager);
}
