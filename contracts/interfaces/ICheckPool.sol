// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IJobManager} from "./IJobManager.sol";

/// @title ICheckPool
/// @notice Paid checks (issue 15): challengers register a BLS VRF key (BN254, `BlsVrf`) with a
///         proof of possession and a bond; a registered challenger claims, with its VRF proof
///         over `(seed, jobRef)`, an on-chain job its key sampled and that it found correct.
///         Each open claim locks `claimCollateral` of the bond. A job that becomes final pays
///         a per-model share of its fee into the pool, split equally among its claimants
///         (`collect`); a job that ends invalid forfeits every claimant's collateral, which is
///         burned (`forfeit`). Rules and reasons: docs/sampling-vrf.md.
/// @dev Seed rule: the seed of on-chain job `jobId` is `blockhash(job.commitBlock + 1)`, of
///      every leaf of batch `batchId` `blockhash(batch.commitBlock + 1)`; it is stored by
///      `recordSeed` / `recordBatchSeed` (anyone) or by the first claim, only while the EVM can
///      read it (`commitBlock + 1 < block.number <= commitBlock + 257`). A job whose seed was
///      not recorded in time cannot be claimed (`SeedUnavailable`): no check reward is taken
///      from its fee. `jobRef` is `SpotcheckHash.onchainJobKey(jobId)` (batch leaves:
///      `batchLeafKey(batchId, index)`).
///      Batch leaves: at `commitBatch` the node pays `count * leafCheckFee(modelId)` into the
///      pool (`BatchDeposit`). A leaf claimed by `claimLeaves` and never invalidated pays its
///      `perLeaf` to its claimants once the batch is Final (`collectLeaf`); a leaf that is
///      invalidated has its deposit burned at once (a cheating node never gets it back) and its
///      claimants' collateral burned (`forfeitLeaf`); the deposits of the other leaves go back
///      to the node once the batch is Final (`refundBatchDeposit`).
///      INVARIANT (solvency): token.balanceOf(this) == sum of bonds + sum over funded jobs of
///      (reward - collected) + sum over batches of (deposit - burned - collected - refunded).
///      INVARIANT (backed claims): for every challenger, openClaims * claimCollateral <= bond;
///      so a forfeit moves locked collateral and never reverts for lack of funds.
interface ICheckPool {
    enum ClaimStatus {
        None,
        Open,
        Collected,
        Forfeited
    }

    struct Challenger {
        uint256[4] publicKey; // G2, EIP-197 word order
        uint256 bond;
        uint32 openClaims;
        uint64 exitRequestedAt; // 0 unless exiting
        bool registered;
    }

    struct ModelTerms {
        uint16 checkShareBps; // share of a claimed job's fee paid to its claimants
        uint16 samplingBps; // VRF sampling rate; 0 = the model's jobs cannot be claimed
    }

    struct JobChecks {
        uint32 claimCount;
        uint32 collected; // claims paid out (the last one also takes the rounding dust)
        uint16 shareBps; // ModelTerms.checkShareBps when the first claim arrived
        bool funded; // the job became final and its reward arrived
        uint256 reward;
    }

    /// @notice A batch's check deposit, booked at commit (`perLeaf` is the fee snapshot).
    struct BatchDeposit {
        uint128 perLeaf;
        uint32 count;
        uint32 claimedLeaves; // leaves with at least one claim (their deposit is the claimants')
        uint32 invalidUnclaimed; // leaves invalidated before any claim (their deposit burned)
        uint16 samplingBps; // ModelTerms.samplingBps at commit: the rate its leaves are claimed at
        bool recorded; // committed with a deposit (pool connected, leafCheckFee > 0)
        bool refunded; // the unclaimed leaves' deposit went back to the node
    }

    error ZeroAddress();
    error ZeroAmount();
    error BondBelowMinimum(uint256 bond, uint256 minBond);
    error AlreadyRegistered(address challenger);
    /// @notice The key was registered before (by `owner`); a key is registered once, ever.
    error KeyAlreadyRegistered(bytes32 keyHash, address owner);
    /// @notice The proof of possession does not verify under the key.
    error InvalidPossession();
    error NotRegistered(address challenger);
    error Exiting(address challenger);
    error NotExiting(address challenger);
    error ExitDelayNotOver(address challenger, uint64 readyAt);
    error ClaimsOpen(address challenger, uint32 openClaims);
    error NotRegistrar(address caller);
    error InvalidTerms(uint16 checkShareBps, uint16 samplingBps);
    error ModelNotConfigured(bytes32 modelId);
    /// @notice Only a Committed job (not disputed, final, invalid) can be claimed.
    error NotClaimable(uint256 jobId, IJobManager.JobStatus status);
    /// @notice Claims close `claimMargin` before the challenge deadline; `deadline` is the last
    ///      second a claim was accepted.
    error ClaimWindowClosed(uint256 jobId, uint64 deadline);
    /// @notice The seed block `commitBlock + 1` is not mined yet.
    error SeedNotYetAvailable(uint256 commitBlock, uint256 blockNumber);
    /// @notice The seed was not recorded while `blockhash` could read it (256 blocks).
    error SeedUnavailable(uint256 commitBlock, uint256 blockNumber);
    /// @notice The VRF proof does not verify under the claimant's key for the job's seed.
    error InvalidProof(uint256 jobId);
    /// @notice The batched proofs do not verify (one pairing product over all of them).
    error InvalidBatchProof();
    /// @notice The proof's output is not below the model's sampling threshold.
    error NotSampled(uint256 jobId, bytes32 output);
    error AlreadyClaimed(uint256 jobId, address claimant);
    error InsufficientFreeBond(address challenger, uint256 free, uint256 need);
    error BatchTooLarge(uint256 length, uint256 max);
    error LengthMismatch(uint256 jobs, uint256 proofs);
    error EmptyBatch();
    error NoOpenClaim(uint256 jobId, address claimant);
    error JobNotFinal(uint256 jobId, IJobManager.JobStatus status);
    error JobNotInvalid(uint256 jobId, IJobManager.JobStatus status);
    error NotJobManager(address caller);
    /// @notice Leaf claims: only a Committed batch, inside its claim window (`deadline`: the
    ///         challenge deadline less `claimMargin`, the last second a claim is accepted).
    error BatchNotClaimable(uint256 batchId, IJobManager.BatchStatus status);
    error BatchClaimWindowClosed(uint256 batchId, uint64 deadline);
    /// @notice The batch has no check deposit (committed before the pool was connected, or
    ///         while its model's leafCheckFee was 0): its leaves earn nothing to claim.
    error BatchNotFunded(uint256 batchId);
    error LeafIndexOutOfRange(uint256 batchId, uint256 index, uint32 count);
    /// @notice The leaf was invalidated: nothing to check.
    error LeafInvalid(uint256 batchId, uint256 index);
    /// @notice The leaf has a dispute (open or settled) or was proven: its outcome is decided
    ///         in the open, so a claim on it would be no check. An open leaf request does not
    ///         block a claim (audit A6-2).
    error LeafNotClaimable(uint256 batchId, uint256 index);
    error LeafNotSampled(uint256 batchId, uint256 index, bytes32 output);
    error LeafAlreadyClaimed(uint256 batchId, uint256 index, address claimant);
    /// @notice The VRF proof does not verify under the claimant's key for the batch's seed.
    error InvalidLeafProof(uint256 batchId, uint256 index);
    error NoOpenLeafClaim(uint256 batchId, uint256 index, address claimant);
    error BatchNotFinal(uint256 batchId, IJobManager.BatchStatus status);
    error LeafNotInvalid(uint256 batchId, uint256 index);
    error DepositAlreadyRefunded(uint256 batchId);
    /// @notice The token delivered less than was sent (fee-on-transfer tokens are unsupported).
    error FeeOnTransferToken();

    event ChallengerRegistered(address indexed challenger, bytes32 indexed keyHash, uint256 bond);
    event BondAdded(address indexed challenger, uint256 amount, uint256 bond);
    event ExitRequested(address indexed challenger, uint64 readyAt);
    event BondWithdrawn(address indexed challenger, uint256 amount);
    event ModelTermsSet(bytes32 indexed modelId, uint16 checkShareBps, uint16 samplingBps);
    event SeedRecorded(bytes32 indexed jobRef, uint256 indexed jobId, uint256 commitBlock, bytes32 seed);
    event BatchSeedRecorded(uint256 indexed batchId, uint256 commitBlock, bytes32 seed);
    event CheckClaimed(
        uint256 indexed jobId, address indexed claimant, bytes32 output, uint32 claimCount, uint256 collateral
    );
    event RewardFunded(uint256 indexed jobId, uint256 fee, uint256 reward, uint32 claimCount);
    event RewardCollected(uint256 indexed jobId, address indexed claimant, uint256 amount);
    /// @notice A claim on an Invalid job: its collateral `amount` was burned.
    event CollateralForfeited(uint256 indexed jobId, address indexed claimant, uint256 amount);

    event LeafCheckFeeSet(bytes32 indexed modelId, uint256 leafCheckFee);
    event BatchDepositRecorded(
        uint256 indexed batchId, bytes32 indexed modelId, uint256 perLeaf, uint32 count, uint16 samplingBps
    );
    event LeafCheckClaimed(
        uint256 indexed batchId,
        uint256 indexed index,
        address indexed claimant,
        bytes32 output,
        uint32 claimCount,
        uint256 collateral
    );
    event LeafRewardCollected(uint256 indexed batchId, uint256 indexed index, address indexed claimant, uint256 amount);
    /// @notice A claim on an invalidated leaf: its collateral `amount` was burned.
    event LeafCollateralForfeited(
        uint256 indexed batchId, uint256 indexed index, address indexed claimant, uint256 amount
    );
    /// @notice Leaf `index` of `batchId` was invalidated: its check deposit `amount` was burned.
    event LeafDepositBurned(uint256 indexed batchId, uint256 indexed index, uint256 amount);
    /// @notice The deposits of the batch's unclaimed, valid leaves went back to its node.
    event BatchDepositRefunded(uint256 indexed batchId, address indexed node, uint256 amount);

    /// @notice Register the caller's VRF key with a bond of `bond` tokens (needs allowance).
    /// @param publicKey `sk * G2`, four words in EIP-197 order (`vrf.G2Point.words()`)
    /// @param pop the proof of possession: the signature of `abi.encode(publicKey)` under the
    ///        PoP domain (`vrf.prove_possession`)
    /// @param bond at least `minBond`
    function register(uint256[4] calldata publicKey, uint256[2] calldata pop, uint256 bond) external;

    /// @notice Add `amount` to the caller's bond (not while exiting).
    function addBond(uint256 amount) external;

    /// @notice Start the exit: no new claims from now; `withdrawBond` after `exitDelay`.
    function requestExit() external;

    /// @notice After `exitDelay` with no open claim: pay out the bond and clear the record.
    ///         The key stays burnt (never registrable again); the address may register anew.
    function withdrawBond() external;

    /// @notice Set a model's check share and sampling rate. The model registry's owner only.
    /// @param checkShareBps at most `MAX_CHECK_SHARE_BPS`
    /// @param samplingBps at most 10,000; 0 stops new claims on the model's jobs
    function setModelTerms(bytes32 modelId, uint16 checkShareBps, uint16 samplingBps) external;

    /// @notice Store on-chain job `jobId`'s seed `blockhash(commitBlock + 1)` (anyone; idempotent).
    function recordSeed(uint256 jobId) external returns (bytes32 seed);

    /// @notice Store batch `batchId`'s seed `blockhash(commitBlock + 1)` (anyone; idempotent).
    function recordBatchSeed(uint256 batchId) external returns (bytes32 seed);

    /// @notice Claim on-chain job `jobId` as sampled and checked: `proof` is the caller's VRF
    ///         proof of `(seed, onchainJobKey(jobId))`, sampled at the model's rate. The job
    ///         must be Committed, at least `claimMargin` before its challenge deadline; locks
    ///         `claimCollateral`.
    function claim(uint256 jobId, uint256[2] calldata proof) external;

    /// @notice `claim` for up to `MAX_BATCH_CLAIMS` jobs, verified by one pairing product with
    ///         coefficients drawn from a hash of every proof (`BlsVrf.verifyBatch`).
    function claimBatch(uint256[] calldata jobIds, uint256[2][] calldata proofs) external;

    /// @notice The caller's claim on a Final job: pay its share of the reward, free the collateral.
    function collect(uint256 jobId) external;

    /// @notice `claimant`'s claim on an Invalid job: its collateral is burned (no one's income,
    ///         so no one gains from causing a forfeit). Anyone may call.
    function forfeit(uint256 jobId, address claimant) external;

    /// @notice Set a model's check deposit per batch leaf (the registry's owner only); batches
    ///         keep the fee of their commit.
    function setLeafCheckFee(bytes32 modelId, uint128 fee) external;

    /// @notice Store batch leaves' claims: `proofs[i]` is the caller's VRF proof of
    ///         `(batchSeed(batchIds[i]), batchLeafKey(batchIds[i], indices[i]))`, sampled at
    ///         the batch's rate (snapshot at commit). Each batch must be Committed, at least
    ///         `claimMargin` before its challenge deadline, the leaf `index < count`, not
    ///         invalid, not proven, with no dispute (an open leaf request is allowed). Up to `MAX_BATCH_CLAIMS`; one pairing product for two or more. Locks
    ///         `claimCollateral` per leaf.
    function claimLeaves(uint256[] calldata batchIds, uint256[] calldata indices, uint256[2][] calldata proofs)
        external;

    /// @notice The caller's claim on a leaf of a Final batch that was never invalidated: pay its
    ///         share of the leaf's deposit (the last collector takes the dust), free the collateral.
    function collectLeaf(uint256 batchId, uint256 index) external;

    /// @notice `claimant`'s claim on an invalidated leaf: its collateral is burned. Anyone may call.
    function forfeitLeaf(uint256 batchId, uint256 index, address claimant) external;

    /// @notice Once the batch is Final: pay its node the deposits of the leaves nobody claimed
    ///         and nobody invalidated, `perLeaf * (count - claimedLeaves - invalidUnclaimed)`.
    ///         Anyone may call; pays the node, once.
    function refundBatchDeposit(uint256 batchId) external;

    function getChallenger(address challenger) external view returns (Challenger memory);
    function getJobChecks(bytes32 jobRef) external view returns (JobChecks memory);
    function claimOf(bytes32 jobRef, address claimant) external view returns (ClaimStatus);
    function modelTerms(bytes32 modelId) external view returns (uint16 checkShareBps, uint16 samplingBps);
    /// @notice The bond not locked by open claims.
    function freeBond(address challenger) external view returns (uint256);
    /// @notice The recorded seed of a job (zero if not recorded).
    function seedOf(bytes32 jobRef) external view returns (bytes32);
    function batchSeedOf(uint256 batchId) external view returns (bytes32);
    /// @notice A model's check deposit per batch leaf (0: batches of the model pay none).
    function leafCheckFee(bytes32 modelId) external view returns (uint128);
    function getBatchDeposit(uint256 batchId) external view returns (BatchDeposit memory);
    /// @notice Who registered the key `keccak256(abi.encode(publicKey))` (zero if nobody).
    function keyOwner(bytes32 keyHash) external view returns (address);
    function minBond() external view returns (uint256);
    function claimCollateral() external view returns (uint256);
    function exitDelay() external view returns (uint64);
    /// @notice Claims close this many seconds before the challenge deadline (of a job or a
    ///      batch), so a dispute can still follow every accepted claim (audit A6-1).
    function claimMargin() external view returns (uint64);
    function jobManager() external view returns (IJobManager);
}
