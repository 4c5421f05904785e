// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

import {ICheckPool} from "./interfaces/ICheckPool.sol";
import {ICheckPoolHooks} from "./interfaces/ICheckPoolHooks.sol";
import {IDisputeManager} from "./interfaces/IDisputeManager.sol";
import {IJobManager} from "./interfaces/IJobManager.sol";
import {BlsVrf} from "./libraries/BlsVrf.sol";
import {SpotcheckHash} from "./libraries/SpotcheckHash.sol";

/// @title CheckPool
/// @notice Challenger registration (BLS VRF key + proof of possession + bond), the seed rule,
///         paid checks of on-chain jobs and of batch leaves (VRF claims, single or batched),
///         rewards, leaf check deposits and forfeits.
/// @dev Claim: None -claim/claimBatch-> Open -collect-> Collected   (job Final)
///                                         Open -forfeit-> Forfeited  (job Invalid)
///      A claim is only accepted on a Committed job inside its claim window, so every open
///      claim ends in exactly one of the two (a Committed job becomes Final or, through a
///      dispute, Final or Invalid). Leaf claims (claimLeaves): Open -collectLeaf-> Collected
///      (batch Final, leaf never invalidated) | -forfeitLeaf-> Forfeited (leaf invalidated);
///      every Committed batch becomes Final, so every open leaf claim ends. Invariants: ICheckPool.
contract CheckPool is ICheckPool, ICheckPoolHooks, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice Most jobs in one `claimBatch` (bounds its loop and its gas).
    uint256 public constant MAX_BATCH_CLAIMS = 32;
    /// @notice Largest check share of a fee (the node keeps at least half).
    uint16 public constant MAX_CHECK_SHARE_BPS = 5000;
    uint256 internal constant BPS = 10_000;
    /// @notice `blockhash` reads the last 256 blocks only.
    uint256 internal constant BLOCKHASH_WINDOW = 256;
    /// @notice Where forfeits beyond a job's cap go (the address DisputeManager burns to).
    address public constant BURN_ADDRESS = 0x000000000000000000000000000000000000dEaD;

    IERC20 public immutable token;
    /// @inheritdoc ICheckPool
    IJobManager public immutable jobManager;
    /// @inheritdoc ICheckPool
    uint256 public immutable minBond;
    /// @inheritdoc ICheckPool
    uint256 public immutable claimCollateral;
    /// @inheritdoc ICheckPool
    uint64 public immutable exitDelay;
    /// @inheritdoc ICheckPool
    uint64 public immutable claimMargin;

    mapping(address challenger => Challenger) private _challengers;
    /// @inheritdoc ICheckPool
    mapping(bytes32 keyHash => address) public keyOwner;
    /// @inheritdoc ICheckPool
    mapping(bytes32 modelId => ModelTerms) public modelTerms;
    mapping(bytes32 jobRef => JobChecks) private _checks;
    mapping(bytes32 jobRef => mapping(address claimant => ClaimStatus)) private _claims;
    /// @inheritdoc ICheckPool
    mapping(bytes32 jobRef => bytes32) public seedOf;
    /// @inheritdoc ICheckPool
    mapping(uint256 batchId => bytes32) public batchSeedOf;
    /// @inheritdoc ICheckPool
    mapping(bytes32 modelId => uint128) public leafCheckFee;
    mapping(uint256 batchId => BatchDeposit) private _deposits;
    /// @dev A leaf's deposit was burned (its invalidation was booked once).
    mapping(bytes32 leafRef => bool) private _leafBurned;

    constructor(
        IJobManager jobManager_,
        uint256 minBond_,
        uint256 claimCollateral_,
        uint64 exitDelay_,
        uint64 claimMargin_
    ) {
        require(address(jobManager_) != address(0), ZeroAddress());
        // INVARIANT (A6-1): claimMargin > 0, so every accepted claim can still be disputed.
        require(minBond_ > 0 && claimCollateral_ > 0 && exitDelay_ > 0 && claimMargin_ > 0, ZeroAmount());
        // INVARIANT: a fresh registration can hold at least one claim.
        require(claimCollateral_ <= minBond_, BondBelowMinimum(minBond_, claimCollateral_));
        token = jobManager_.token();
        jobManager = jobManager_;
        minBond = minBond_;
        claimCollateral = claimCollateral_;
        exitDelay = exitDelay_;
        claimMargin = claimMargin_;
    }

    // ---------------------------------------------------------------- registration

    /// @inheritdoc ICheckPool
    function register(uint256[4] calldata publicKey, uint256[2] calldata pop, uint256 bond) external nonReentrant {
        Challenger storage c = _challengers[msg.sender];
        require(!c.registered, AlreadyRegistered(msg.sender));
        require(bond >= minBond, BondBelowMinimum(bond, minBond));
        bytes32 keyHash = keccak256(abi.encode(publicKey));
        // INVARIANT: a key belongs to one address, once ever: nobody claims with a key another
        // address registered. The PoP is bound to msg.sender, this pool and the chain, so a copy
        // of a pending registration cannot register the key for another address first.
        address owner = keyOwner[keyHash];
        require(owner == address(0), KeyAlreadyRegistered(keyHash, owner));
        // Reverts InvalidPublicKey / InvalidSignature on malformed points.
        require(
            BlsVrf.verifyPossession(publicKey, pop, msg.sender, address(this), block.chainid), InvalidPossession()
        );
        keyOwner[keyHash] = msg.sender;
        c.publicKey = publicKey;
        c.bond = bond;
        c.registered = true;
        emit ChallengerRegistered(msg.sender, keyHash, bond);
        _pull(bond);
    }

    /// @inheritdoc ICheckPool
    function addBond(uint256 amount) external nonReentrant {
        require(amount > 0, ZeroAmount());
        Challenger storage c = _active(msg.sender);
        c.bond += amount;
        emit BondAdded(msg.sender, amount, c.bond);
        _pull(amount);
    }

    /// @inheritdoc ICheckPool
    function requestExit() external {
        Challenger storage c = _active(msg.sender);
        c.exitRequestedAt = uint64(block.timestamp);
        emit ExitRequested(msg.sender, uint64(block.timestamp) + exitDelay);
    }

    /// @inheritdoc ICheckPool
    function withdrawBond() external nonReentrant {
        Challenger storage c = _challengers[msg.sender];
        require(c.registered, NotRegistered(msg.sender));
        require(c.exitRequestedAt != 0, NotExiting(msg.sender));
        uint64 readyAt = c.exitRequestedAt + exitDelay;
        require(block.timestamp >= readyAt, ExitDelayNotOver(msg.sender, readyAt));
        // INVARIANT: no bond leaves while a claim could still forfeit it.
        require(c.openClaims == 0, ClaimsOpen(msg.sender, c.openClaims));
        uint256 amount = c.bond;
        // The key stays in keyOwner: burnt for good.
        delete _challengers[msg.sender];
        emit BondWithdrawn(msg.sender, amount);
        // SAFETY: effects done; nonReentrant.
        if (amount > 0) token.safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- parameters

    /// @inheritdoc ICheckPool
    function setModelTerms(bytes32 modelId, uint16 checkShareBps, uint16 samplingBps) external {
        address registry = address(jobManager.registry());
        require(msg.sender == Ownable(registry).owner(), NotRegistrar(msg.sender));
        jobManager.registry().getModel(modelId); // reverts UnknownModel
        require(
            checkShareBps <= MAX_CHECK_SHARE_BPS && samplingBps <= BPS, InvalidTerms(checkShareBps, samplingBps)
        );
        modelTerms[modelId] = ModelTerms({checkShareBps: checkShareBps, samplingBps: samplingBps});
        emit ModelTermsSet(modelId, checkShareBps, samplingBps);
    }

    /// @inheritdoc ICheckPool
    function setLeafCheckFee(bytes32 modelId, uint128 fee) external {
        address registry = address(jobManager.registry());
        require(msg.sender == Ownable(registry).owner(), NotRegistrar(msg.sender));
        jobManager.registry().getModel(modelId); // reverts UnknownModel
        leafCheckFee[modelId] = fee;
        emit LeafCheckFeeSet(modelId, fee);
    }

    // ---------------------------------------------------------------- seeds

    /// @inheritdoc ICheckPool
    function recordSeed(uint256 jobId) external returns (bytes32 seed) {
        IJobManager.Job memory job = jobManager.getJob(jobId);
        // A job that never committed has no commit block, hence no seed.
        require(job.commitBlock != 0, NotClaimable(jobId, job.status));
        seed = _jobSeed(jobId, job.commitBlock);
    }

    /// @inheritdoc ICheckPool
    function recordBatchSeed(uint256 batchId) external returns (bytes32 seed) {
        seed = _batchSeed(batchId, jobManager.getBatch(batchId).commitBlock);
    }

    // ---------------------------------------------------------------- claims

    /// @inheritdoc ICheckPool
    function claim(uint256 jobId, uint256[2] calldata proof) external nonReentrant {
        Challenger storage c = _active(msg.sender);
        _lockCollateral(c, 1);
        (bytes32 seed, bytes32 jobRef, uint16 samplingBps) = _recordClaim(jobId, proof);
        // INVARIANT: only the claimant's own key's unique proof for this job's seed passes, and
        // only if it samples the job.
        require(BlsVrf.verify(c.publicKey, seed, jobRef, proof), InvalidProof(jobId));
        _requireSampled(jobId, proof, samplingBps);
    }

    /// @inheritdoc ICheckPool
    function claimBatch(uint256[] calldata jobIds, uint256[2][] calldata proofs) external nonReentrant {
        uint256 n = jobIds.length;
        require(n > 0, EmptyBatch());
        require(n <= MAX_BATCH_CLAIMS, BatchTooLarge(n, MAX_BATCH_CLAIMS));
        require(proofs.length == n, LengthMismatch(n, proofs.length));
        Challenger storage c = _active(msg.sender);
        _lockCollateral(c, n);
        bytes32[] memory seeds = new bytes32[](n);
        bytes32[] memory refs = new bytes32[](n);
        uint256[2][] memory sigs = new uint256[2][](n);
        // Bounded: n <= MAX_BATCH_CLAIMS. Each job is recorded before the next is checked, so a
        // job listed twice fails AlreadyClaimed.
        for (uint256 i; i < n; ++i) {
            uint16 samplingBps;
            (seeds[i], refs[i], samplingBps) = _recordClaim(jobIds[i], proofs[i]);
            sigs[i] = proofs[i];
            _requireSampled(jobIds[i], proofs[i], samplingBps);
        }
        // INVARIANT: every proof is the claimant's own for its job (one pairing product with
        // random coefficients); otherwise the whole batch reverts.
        require(BlsVrf.verifyBatch(c.publicKey, seeds, refs, sigs), InvalidBatchProof());
    }

    /// @inheritdoc ICheckPool
    function collect(uint256 jobId) external nonReentrant {
        IJobManager.JobStatus status = jobManager.getJob(jobId).status;
        require(status == IJobManager.JobStatus.Final, JobNotFinal(jobId, status));
        bytes32 jobRef = SpotcheckHash.onchainJobKey(jobId);
        require(_claims[jobRef][msg.sender] == ClaimStatus.Open, NoOpenClaim(jobId, msg.sender));
        _claims[jobRef][msg.sender] = ClaimStatus.Collected;
        _challengers[msg.sender].openClaims -= 1;
        JobChecks storage jc = _checks[jobRef];
        // The last collector takes the rounding dust: the reward is paid out exactly.
        uint256 share = jc.reward / jc.claimCount;
        uint256 amount = jc.collected + 1 == jc.claimCount ? jc.reward - share * jc.collected : share;
        jc.collected += 1;
        emit RewardCollected(jobId, msg.sender, amount);
        // SAFETY: effects done; nonReentrant. The reward arrived when the job became final.
        if (amount > 0) token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc ICheckPool
    function forfeit(uint256 jobId, address claimant) external nonReentrant {
        IJobManager.JobStatus status = jobManager.getJob(jobId).status;
        require(status == IJobManager.JobStatus.Invalid, JobNotInvalid(jobId, status));
        bytes32 jobRef = SpotcheckHash.onchainJobKey(jobId);
        require(_claims[jobRef][claimant] == ClaimStatus.Open, NoOpenClaim(jobId, claimant));
        _claims[jobRef][claimant] = ClaimStatus.Forfeited;
        Challenger storage c = _challengers[claimant];
        c.openClaims -= 1;
        // INVARIANT (backed claims): the collateral was locked, so bond >= claimCollateral.
        uint256 amount = claimCollateral;
        c.bond -= amount;
        // Burned, paid to nobody: paid to the disputer, a lazy claimant front-running the
        // diligent challenger's dispute would win its own collateral back (audit A4-2), and a
        // node disputing its own correct, claimed job from a second address and leaving it
        // undefended would win the claimants' collateral (A4-1). Burned, no forfeit is anyone's
        // income, so no one gains from causing one.
        emit CollateralForfeited(jobId, claimant, amount);
        // SAFETY: the protocol token, to a fixed address; effects done; nonReentrant.
        token.safeTransfer(BURN_ADDRESS, amount);
    }

    // ---------------------------------------------------------------- batch leaves

    /// @inheritdoc ICheckPool
    function claimLeaves(uint256[] calldata batchIds, uint256[] calldata indices, uint256[2][] calldata proofs)
        external
        nonReentrant
    {
        uint256 n = batchIds.length;
        require(n > 0, EmptyBatch());
        require(n <= MAX_BATCH_CLAIMS, BatchTooLarge(n, MAX_BATCH_CLAIMS));
        require(indices.length == n, LengthMismatch(n, indices.length));
        require(proofs.length == n, LengthMismatch(n, proofs.length));
        Challenger storage c = _active(msg.sender);
        _lockCollateral(c, n);
        if (n == 1) {
            (bytes32 seed, bytes32 leafRef) = _recordLeafClaim(batchIds[0], indices[0], proofs[0]);
            // INVARIANT: only the claimant's own key's unique proof for this leaf's seed passes.
            require(BlsVrf.verify(c.publicKey, seed, leafRef, proofs[0]), InvalidLeafProof(batchIds[0], indices[0]));
            return;
        }
        bytes32[] memory seeds = new bytes32[](n);
        bytes32[] memory refs = new bytes32[](n);
        uint256[2][] memory sigs = new uint256[2][](n);
        // Bounded: n <= MAX_BATCH_CLAIMS. Each leaf is recorded before the next is checked, so a
        // leaf listed twice fails LeafAlreadyClaimed.
        for (uint256 i; i < n; ++i) {
            (seeds[i], refs[i]) = _recordLeafClaim(batchIds[i], indices[i], proofs[i]);
            sigs[i] = proofs[i];
        }
        // INVARIANT: every proof is the claimant's own for its leaf (one pairing product).
        require(BlsVrf.verifyBatch(c.publicKey, seeds, refs, sigs), InvalidBatchProof());
    }

    /// @inheritdoc ICheckPool
    function collectLeaf(uint256 batchId, uint256 index) external nonReentrant {
        IJobManager.BatchStatus status = jobManager.getBatch(batchId).status;
        require(status == IJobManager.BatchStatus.Final, BatchNotFinal(batchId, status));
        bytes32 leafRef = SpotcheckHash.batchLeafKey(batchId, index);
        // A Final batch has no open dispute and takes no new one: an invalid leaf stays invalid.
        require(!_leafBurned[leafRef], LeafInvalid(batchId, index));
        require(_claims[leafRef][msg.sender] == ClaimStatus.Open, NoOpenLeafClaim(batchId, index, msg.sender));
        _claims[leafRef][msg.sender] = ClaimStatus.Collected;
        _challengers[msg.sender].openClaims -= 1;
        JobChecks storage lc = _checks[leafRef];
        // The last collector takes the rounding dust: the leaf's deposit is paid out exactly.
        uint256 share = lc.reward / lc.claimCount;
        uint256 amount = lc.collected + 1 == lc.claimCount ? lc.reward - share * lc.collected : share;
        lc.collected += 1;
        emit LeafRewardCollected(batchId, index, msg.sender, amount);
        // SAFETY: effects done; nonReentrant. The deposit arrived at commitBatch.
        if (amount > 0) token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc ICheckPool
    function forfeitLeaf(uint256 batchId, uint256 index, address claimant) external nonReentrant {
        bytes32 leafRef = SpotcheckHash.batchLeafKey(batchId, index);
        require(jobManager.batchLeafInvalid(leafRef), LeafNotInvalid(batchId, index));
        require(_claims[leafRef][claimant] == ClaimStatus.Open, NoOpenLeafClaim(batchId, index, claimant));
        _claims[leafRef][claimant] = ClaimStatus.Forfeited;
        Challenger storage c = _challengers[claimant];
        c.openClaims -= 1;
        // INVARIANT (backed claims): the collateral was locked, so bond >= claimCollateral.
        uint256 amount = claimCollateral;
        c.bond -= amount;
        // Burned, for the reasons of `forfeit` (audit A4-1, A4-2).
        emit LeafCollateralForfeited(batchId, index, claimant, amount);
        // SAFETY: the protocol token, to a fixed address; effects done; nonReentrant.
        token.safeTransfer(BURN_ADDRESS, amount);
    }

    /// @inheritdoc ICheckPool
    function refundBatchDeposit(uint256 batchId) external nonReentrant {
        IJobManager.Batch memory b = jobManager.getBatch(batchId);
        require(b.status == IJobManager.BatchStatus.Final, BatchNotFinal(batchId, b.status));
        BatchDeposit storage d = _deposits[batchId];
        require(d.recorded, BatchNotFunded(batchId));
        require(!d.refunded, DepositAlreadyRefunded(batchId));
        d.refunded = true;
        // No loop: claimed leaves are their claimants', invalidated unclaimed leaves were burned.
        uint256 amount = uint256(d.perLeaf) * (uint256(d.count) - d.claimedLeaves - d.invalidUnclaimed);
        emit BatchDepositRefunded(batchId, b.node, amount);
        // SAFETY: effects done; nonReentrant; the protocol token to the batch's node.
        if (amount > 0) token.safeTransfer(b.node, amount);
    }

    // ---------------------------------------------------------------- JobManager hooks

    /// @inheritdoc ICheckPoolHooks
    function onJobFinalized(uint256 jobId, bytes32, uint256 fee) external returns (uint256 reward) {
        require(msg.sender == address(jobManager), NotJobManager(msg.sender));
        JobChecks storage jc = _checks[SpotcheckHash.onchainJobKey(jobId)];
        if (jc.claimCount == 0) return 0;
        // shareBps <= MAX_CHECK_SHARE_BPS, so reward <= fee / 2.
        reward = (fee * jc.shareBps) / BPS;
        jc.reward = reward;
        jc.funded = true;
        emit RewardFunded(jobId, fee, reward, jc.claimCount);
    }

    /// @inheritdoc ICheckPoolHooks
    function onBatchCommitted(uint256 batchId, bytes32 modelId, uint32 count) external returns (uint256 deposit) {
        require(msg.sender == address(jobManager), NotJobManager(msg.sender));
        uint128 perLeaf = leafCheckFee[modelId];
        // No fee, no deposit, nothing to pay for: the batch is not recorded (its leaves cannot
        // be claimed, BatchNotFunded) and its commit costs no storage here.
        if (perLeaf == 0) return 0;
        // The rate its leaves are sampled at, fixed now (A6-5: a later change cannot cancel it).
        uint16 samplingBps = modelTerms[modelId].samplingBps;
        _deposits[batchId] = BatchDeposit({
            perLeaf: perLeaf,
            count: count,
            claimedLeaves: 0,
            invalidUnclaimed: 0,
            samplingBps: samplingBps,
            recorded: true,
            refunded: false
        });
        deposit = uint256(perLeaf) * count;
        emit BatchDepositRecorded(batchId, modelId, perLeaf, count, samplingBps);
    }

    /// @inheritdoc ICheckPoolHooks
    function onBatchLeafInvalidated(uint256 batchId, uint256 index) external {
        require(msg.sender == address(jobManager), NotJobManager(msg.sender));
        bytes32 leafRef = SpotcheckHash.batchLeafKey(batchId, index);
        BatchDeposit storage d = _deposits[batchId];
        if (!d.recorded || _leafBurned[leafRef]) return;
        _leafBurned[leafRef] = true;
        if (_checks[leafRef].claimCount == 0) d.invalidUnclaimed += 1;
        // INVARIANT: a leaf that ends invalid never returns its deposit to the node, and no one
        // earns it (a node disputing its own leaf from a second address gains nothing).
        uint256 amount = d.perLeaf;
        emit LeafDepositBurned(batchId, index, amount);
        // SAFETY: the protocol token, to a fixed address; called by JobManager only.
        if (amount > 0) token.safeTransfer(BURN_ADDRESS, amount);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc ICheckPool
    function getBatchDeposit(uint256 batchId) external view returns (BatchDeposit memory) {
        return _deposits[batchId];
    }

    /// @inheritdoc ICheckPool
    function getChallenger(address challenger) external view returns (Challenger memory) {
        return _challengers[challenger];
    }

    /// @inheritdoc ICheckPool
    function getJobChecks(bytes32 jobRef) external view returns (JobChecks memory) {
        return _checks[jobRef];
    }

    /// @inheritdoc ICheckPool
    function claimOf(bytes32 jobRef, address claimant) external view returns (ClaimStatus) {
        return _claims[jobRef][claimant];
    }

    /// @inheritdoc ICheckPool
    function freeBond(address challenger) external view returns (uint256) {
        Challenger storage c = _challengers[challenger];
        return c.bond - uint256(c.openClaims) * claimCollateral;
    }

    // ---------------------------------------------------------------- internals

    /// @dev A registered challenger that is not exiting.
    function _active(address who) private view returns (Challenger storage c) {
        c = _challengers[who];
        require(c.registered, NotRegistered(who));
        require(c.exitRequestedAt == 0, Exiting(who));
    }

    function _lockCollateral(Challenger storage c, uint256 n) private {
        uint256 locked = uint256(c.openClaims) * claimCollateral;
        uint256 need = n * claimCollateral;
        // INVARIANT (backed claims): openClaims * claimCollateral <= bond.
        require(c.bond - locked >= need, InsufficientFreeBond(msg.sender, c.bond - locked, need));
        c.openClaims += uint32(n); // n <= MAX_BATCH_CLAIMS
    }

    /// @dev Checks that `jobId` is claimable by the caller now and records the claim (the
    ///      caller verifies the proof after; a failure reverts the whole call).
    function _recordClaim(uint256 jobId, uint256[2] calldata proof)
        private
        returns (bytes32 seed, bytes32 jobRef, uint16 samplingBps)
    {
        IJobManager.Job memory job = jobManager.getJob(jobId);
        // INVARIANT: claims only while the outcome is open: Committed (not disputed, not final,
        // not invalid) and at least claimMargin before the challenge deadline, so a dispute
        // (a canary's) can still follow any accepted claim (audit A6-1).
        require(job.status == IJobManager.JobStatus.Committed, NotClaimable(jobId, job.status));
        require(
            block.timestamp + claimMargin <= job.challengeDeadline,
            ClaimWindowClosed(jobId, _claimDeadline(job.challengeDeadline))
        );
        ModelTerms memory t = modelTerms[job.modelId];
        require(t.samplingBps > 0, ModelNotConfigured(job.modelId));
        jobRef = SpotcheckHash.onchainJobKey(jobId);
        require(_claims[jobRef][msg.sender] == ClaimStatus.None, AlreadyClaimed(jobId, msg.sender));
        seed = _jobSeed(jobId, job.commitBlock);
        samplingBps = t.samplingBps;
        _claims[jobRef][msg.sender] = ClaimStatus.Open;
        JobChecks storage jc = _checks[jobRef];
        bool first = jc.claimCount == 0;
        if (first) jc.shareBps = t.checkShareBps;
        jc.claimCount += 1;
        emit CheckClaimed(jobId, msg.sender, BlsVrf.output(proof), jc.claimCount, claimCollateral);
        // SAFETY: trusted protocol code, after every effect: flags the job so that finalize asks
        // the pool for the reward.
        if (first) jobManager.markCheckClaimed(jobId);
    }

    function _requireSampled(uint256 jobId, uint256[2] calldata proof, uint16 samplingBps) private pure {
        require(BlsVrf.isSampled(proof, samplingBps), NotSampled(jobId, BlsVrf.output(proof)));
    }

    /// @dev The recorded seed of `jobId`, recording it now if `blockhash` can still read it.
    function _jobSeed(uint256 jobId, uint64 commitBlock) private returns (bytes32 seed) {
        bytes32 jobRef = SpotcheckHash.onchainJobKey(jobId);
        seed = seedOf[jobRef];
        if (seed != bytes32(0)) return seed;
        seed = _readSeed(commitBlock);
        seedOf[jobRef] = seed;
        emit SeedRecorded(jobRef, jobId, commitBlock, seed);
    }

    /// @dev Checks that leaf `index` of `batchId` is claimable by the caller now and records the
    ///      claim (the caller verifies the proof after; a failure reverts the whole call).
    function _recordLeafClaim(uint256 batchId, uint256 index, uint256[2] calldata proof)
        private
        returns (bytes32 seed, bytes32 leafRef)
    {
        IJobManager.Batch memory b = jobManager.getBatch(batchId); // reverts UnknownBatch
        // INVARIANT: claims only while the outcome is open: a Committed batch at least
        // claimMargin before its challenge deadline (A6-1: a dispute can follow every claim),
        // a leaf in range with no dispute or verdict on it. An open leaf request does not block
        // a claim (A6-2): a request is not a verdict, and a claimant can reveal the leaf itself.
        require(b.status == IJobManager.BatchStatus.Committed, BatchNotClaimable(batchId, b.status));
        require(
            block.timestamp + claimMargin <= b.challengeDeadline,
            BatchClaimWindowClosed(batchId, _claimDeadline(b.challengeDeadline))
        );
        require(index < b.count, LeafIndexOutOfRange(batchId, index, b.count));
        leafRef = SpotcheckHash.batchLeafKey(batchId, index);
        require(!jobManager.batchLeafInvalid(leafRef), LeafInvalid(batchId, index));
        require(!jobManager.batchLeafProven(leafRef) && !_leafContested(leafRef), LeafNotClaimable(batchId, index));
        BatchDeposit storage d = _deposits[batchId];
        require(d.recorded, BatchNotFunded(batchId));
        // The rate the batch was committed under (A6-5: a later terms change cannot cancel it).
        uint16 samplingBps = d.samplingBps;
        require(samplingBps > 0, ModelNotConfigured(b.modelId));
        require(_claims[leafRef][msg.sender] == ClaimStatus.None, LeafAlreadyClaimed(batchId, index, msg.sender));
        require(BlsVrf.isSampled(proof, samplingBps), LeafNotSampled(batchId, index, BlsVrf.output(proof)));
        seed = _batchSeed(batchId, b.commitBlock);
        _claims[leafRef][msg.sender] = ClaimStatus.Open;
        JobChecks storage lc = _checks[leafRef];
        if (lc.claimCount == 0) {
            // The leaf's deposit becomes its claimants' (paid once the batch is Final).
            lc.reward = d.perLeaf;
            lc.funded = true;
            d.claimedLeaves += 1;
        }
        lc.claimCount += 1;
        emit LeafCheckClaimed(batchId, index, msg.sender, BlsVrf.output(proof), lc.claimCount, claimCollateral);
    }

    /// @dev True iff the leaf has a dispute (open, or settled either way): its outcome is being
    ///      decided in the open, so a claim would be no check. An open leaf request is not
    ///      contest (A6-2): anyone may open one (the node's second address too, to keep its leaf
    ///      unclaimed and its deposit); a claimant who re-ran the leaf can reveal it itself.
    ///      Read from DisputeManager (no storage added to the dispute paths).
    function _leafContested(bytes32 leafRef) private view returns (bool) {
        IDisputeManager dm = IDisputeManager(IJobManagerWiring(address(jobManager)).disputeManager());
        return dm.getDispute(leafRef).status != IDisputeManager.DisputeStatus.None;
    }

    /// @dev The last second a claim is accepted (0 if the window is shorter than the margin).
    function _claimDeadline(uint64 challengeDeadline) private view returns (uint64) {
        return challengeDeadline > claimMargin ? challengeDeadline - claimMargin : 0;
    }

    /// @dev The recorded seed of batch `batchId`, recording it now if `blockhash` can still read it.
    function _batchSeed(uint256 batchId, uint64 commitBlock) private returns (bytes32 seed) {
        seed = batchSeedOf[batchId];
        if (seed != bytes32(0)) return seed;
        seed = _readSeed(commitBlock);
        batchSeedOf[batchId] = seed;
        emit BatchSeedRecorded(batchId, commitBlock, seed);
    }

    /// @dev blockhash(commitBlock + 1), readable iff commitBlock + 1 < block.number <= commitBlock + 257.
    function _readSeed(uint256 commitBlock) private view returns (bytes32 seed) {
        uint256 seedBlock = commitBlock + 1;
        require(block.number > seedBlock, SeedNotYetAvailable(commitBlock, block.number));
        require(block.number - seedBlock <= BLOCKHASH_WINDOW, SeedUnavailable(commitBlock, block.number));
        seed = blockhash(seedBlock);
        // Unreachable inside the window; kept so that a zero seed never means "recorded".
        require(seed != bytes32(0), SeedUnavailable(commitBlock, block.number));
    }

    /// @dev Pull `amount` from the caller and check it all arrived.
    function _pull(uint256 amount) private {
        uint256 before = token.balanceOf(address(this));
        // SAFETY: pull after effects; every entry point is nonReentrant.
        token.safeTransferFrom(msg.sender, address(this), amount);
        require(token.balanceOf(address(this)) - before == amount, FeeOnTransferToken());
    }
}


interface IJobManagerWiring {
    function disputeManager() external view returns (address);
}
