// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

import {IStakeManager} from "./interfaces/IStakeManager.sol";

/// @title StakeManager
/// @notice Holds node stake. JobManager locks a model's slash amount per open commitment;
///         DisputeManager counts open disputes and slashes. Unbonding is a delayed, two-step exit.
/// @dev INVARIANT (solvency): token.balanceOf(this) == sum over nodes of `amount`.
///      INVARIANT: locked <= amount holds except after a slash took more than the free stake;
///      `freeStake` saturates at zero, so locks never make money appear.
contract StakeManager is IStakeManager, ReentrancyGuard {
    using SafeERC20 for IERC20;

    IERC20 public immutable token;
    /// @inheritdoc IStakeManager
    uint256 public immutable minStake;
    /// @inheritdoc IStakeManager
    uint64 public immutable unbondingDelay;
    address private immutable _deployer;

    address public jobManager;
    address public disputeManager;

    mapping(address node => NodeStake) private _stakes;

    event Initialized(address indexed jobManager, address indexed disputeManager);

    modifier onlyJobManager() {
        require(msg.sender == jobManager, NotAuthorized(msg.sender));
        _;
    }

    modifier onlyDisputeManager() {
        require(msg.sender == disputeManager, NotAuthorized(msg.sender));
        _;
    }

    constructor(IERC20 token_, uint256 minStake_, uint64 unbondingDelay_) {
        require(address(token_) != address(0) && minStake_ > 0 && unbondingDelay_ > 0, ZeroAmount());
        token = token_;
        minStake = minStake_;
        unbondingDelay = unbondingDelay_;
        _deployer = msg.sender;
    }

    /// @notice Connect the job and dispute managers. Once, by the deployer.
    function initialize(address jobManager_, address disputeManager_) external {
        require(msg.sender == _deployer, NotAuthorized(msg.sender));
        require(jobManager == address(0), AlreadyInitialized());
        require(jobManager_ != address(0) && disputeManager_ != address(0), NotAuthorized(address(0)));
        jobManager = jobManager_;
        disputeManager = disputeManager_;
        emit Initialized(jobManager_, disputeManager_);
    }

    /// @inheritdoc IStakeManager
    function stake(uint256 amount) external nonReentrant {
        require(amount > 0, ZeroAmount());
        NodeStake storage s = _stakes[msg.sender];
        // INVARIANT: an unbonding node is leaving; new stake would restart nothing and hide that.
        require(s.unbondRequestedAt == 0, NodeUnbonding(msg.sender));
        s.amount += amount;
        emit Staked(msg.sender, amount, s.amount);
        // SAFETY: pull after the effect; nonReentrant; a fee-on-transfer token is unsupported.
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IStakeManager
    function requestUnbond() external {
        NodeStake storage s = _stakes[msg.sender];
        require(s.amount > 0, ZeroAmount());
        require(s.unbondRequestedAt == 0, NodeUnbonding(msg.sender));
        s.unbondRequestedAt = uint64(block.timestamp);
        emit UnbondRequested(msg.sender, uint64(block.timestamp) + unbondingDelay);
    }

    /// @inheritdoc IStakeManager
    /// @dev Withdraws the free (unlocked) stake. Stake still locked by unfinalized commitments
    ///      stays, and can be withdrawn by calling again once they resolve.
    function withdrawStake() external nonReentrant {
        NodeStake storage s = _stakes[msg.sender];
        require(s.unbondRequestedAt != 0, NotUnbonding(msg.sender));
        uint64 readyAt = s.unbondRequestedAt + unbondingDelay;
        require(block.timestamp >= readyAt, UnbondingDelayNotOver(msg.sender, readyAt));
        // INVARIANT: no stake leaves while a dispute against the node is open.
        require(s.openDisputes == 0, DisputesOpen(msg.sender, s.openDisputes));
        uint256 amount = _free(s);
        require(amount > 0, ZeroAmount());
        s.amount -= amount;
        if (s.amount == 0) s.unbondRequestedAt = 0; // fully exited: may stake again later
        emit Unbonded(msg.sender, amount);
        // SAFETY: effects done; nonReentrant.
        token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IStakeManager
    function lock(address node, uint256 amount) external onlyJobManager {
        NodeStake storage s = _stakes[node];
        require(s.unbondRequestedAt == 0, NodeUnbonding(node));
        require(s.amount >= minStake, InsufficientStake(node, s.amount, minStake));
        uint256 free = _free(s);
        // INVARIANT: every open commitment is backed by its slash amount in unlocked stake.
        require(free >= amount, InsufficientStake(node, free, amount));
        s.locked += amount;
        emit StakeLocked(node, amount, s.locked);
    }

    /// @inheritdoc IStakeManager
    function unlock(address node, uint256 amount) external {
        require(msg.sender == jobManager || msg.sender == disputeManager, NotAuthorized(msg.sender));
        NodeStake storage s = _stakes[node];
        // INVARIANT: each lock is released exactly once (JobManager's status machine), so this
        // never underflows; a checked underflow here would reveal a bookkeeping bug.
        s.locked -= amount;
        emit StakeUnlocked(node, amount, s.locked);
    }

    /// @inheritdoc IStakeManager
    function disputeOpened(address node) external onlyDisputeManager {
        NodeStake storage s = _stakes[node];
        s.openDisputes += 1;
        emit DisputeCountChanged(node, s.openDisputes);
    }

    /// @inheritdoc IStakeManager
    function disputeClosed(address node) external onlyDisputeManager {
        NodeStake storage s = _stakes[node];
        s.openDisputes -= 1;
        emit DisputeCountChanged(node, s.openDisputes);
    }

    /// @inheritdoc IStakeManager
    function slash(address node, uint256 amount, address recipient)
        external
        onlyDisputeManager
        nonReentrant
        returns (uint256 slashed)
    {
        NodeStake storage s = _stakes[node];
        // INVARIANT: clamped, never reverts; min(a, b) > 0 whenever both are > 0 (no rounding).
        slashed = amount < s.amount ? amount : s.amount;
        s.amount -= slashed;
        emit Slashed(node, amount, slashed, recipient);
        if (slashed > 0) {
            // SAFETY: recipient is DisputeManager (trusted); the token is the protocol token.
            token.safeTransfer(recipient, slashed);
        }
    }

    /// @inheritdoc IStakeManager
    function stakeOf(address node) external view returns (NodeStake memory) {
        return _stakes[node];
    }

    /// @inheritdoc IStakeManager
    function freeStake(address node) external view returns (uint256) {
        return _free(_stakes[node]);
    }

    /// @inheritdoc IStakeManager
    function canCommit(address node, uint256 lockAmount) external view returns (bool) {
        NodeStake storage s = _stakes[node];
        return s.unbondRequestedAt == 0 && s.amount >= minStake && _free(s) >= lockAmount;
    }

    function _free(NodeStake storage s) private view returns (uint256) {
        return s.amount > s.locked ? s.amount - s.locked : 0;
    }
}
