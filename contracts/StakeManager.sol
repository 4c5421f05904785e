// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

import {IStakeManager} from "./interfaces/IStakeManager.sol";

interface IWired {
    function token() external view returns (IERC20);
    function stakeManager() external view returns (IStakeManager);
}

/// @title StakeManager
/// @notice Holds node stake. JobManager reserves the slash of every job a commitment holds;
///         DisputeManager counts open disputes and slashes from reservations. Unbonding is a
///         delayed, two-step exit.
/// @dev INVARIANT (solvency): token.balanceOf(this) == sum over nodes of `amount`.
///      INVARIANT (fully backed): locked <= amount for every node, always: `lock` needs free
///      stake, `slash` takes from `locked` and `amount` alike, withdrawals take free stake only.
contract StakeManager is IStakeManager, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @inheritdoc IStakeManager
    IERC20 public immutable token;
    /// @inheritdoc IStakeManager
    uint256 public immutable minStake;
    /// @inheritdoc IStakeManager
    uint64 public immutable unbondingDelay;
    address private immutable _deployer;

    address public jobManager;
    address public disputeManager;

    mapping(address node => NodeStake) private _stakes;

    modifier onlyJobManager() {
        require(msg.sender == jobManager, NotAuthorized(msg.sender));
        _;
    }

    modifier onlyDisputeManager() {
        require(msg.sender == disputeManager, NotAuthorized(msg.sender));
        _;
    }

    constructor(IERC20 token_, uint256 minStake_, uint64 unbondingDelay_) {
        require(address(token_) != address(0), ZeroAddress());
        require(minStake_ > 0 && unbondingDelay_ > 0, ZeroAmount());
        token = token_;
        minStake = minStake_;
        unbondingDelay = unbondingDelay_;
        _deployer = msg.sender;
    }

    /// @notice Connect the job and dispute managers. Once, by the deployer. Both must use this
    ///         contract and its token.
    function initialize(address jobManager_, address disputeManager_) external {
        require(msg.sender == _deployer, NotAuthorized(msg.sender));
        require(jobManager == address(0), AlreadyInitialized());
        require(jobManager_ != address(0) && disputeManager_ != address(0), ZeroAddress());
        // INVARIANT: one token and one stake manager for the whole protocol.
        _checkWiring(jobManager_);
        _checkWiring(disputeManager_);
        jobManager = jobManager_;
        disputeManager = disputeManager_;
        emit Initialized(jobManager_, disputeManager_);
    }

    /// @inheritdoc IStakeManager
    function stake(uint256 amount) external nonReentrant {
        require(amount > 0, ZeroAmount());
        NodeStake storage s = _stakes[msg.sender];
        if (s.unbondRequestedAt != 0) {
            // INVARIANT: an unbonding node is leaving; new stake would hide that. A node slashed
            // to zero while unbonding has nothing left to leave with: it starts afresh.
            require(s.amount == 0, NodeUnbonding(msg.sender));
            s.unbondRequestedAt = 0;
            emit UnbondCleared(msg.sender);
        }
        s.amount += amount;
        emit Staked(msg.sender, amount, s.amount);
        // SAFETY: pull after the effect; nonReentrant; the amount received is checked.
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        require(token.balanceOf(address(this)) - before == amount, FeeOnTransferToken());
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
    /// @dev Withdraws the free (unreserved) stake. Stake still reserved by unfinalized
    ///      commitments stays, and can be withdrawn by calling again once they resolve.
    function withdrawStake() external nonReentrant {
        NodeStake storage s = _stakes[msg.sender];
        require(s.unbondRequestedAt != 0, NotUnbonding(msg.sender));
        uint64 readyAt = s.unbondRequestedAt + unbondingDelay;
        require(block.timestamp >= readyAt, UnbondingDelayNotOver(msg.sender, readyAt));
        // INVARIANT: no stake leaves while a dispute against the node is open.
        require(s.openDisputes == 0, DisputesOpen(msg.sender, s.openDisputes));
        uint256 amount = s.amount - s.locked;
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
        uint256 free = s.amount - s.locked;
        // INVARIANT: every open commitment is backed by its full reservation in unlocked stake.
        require(free >= amount, InsufficientStake(node, free, amount));
        s.locked += amount;
        emit StakeLocked(node, amount, s.locked);
    }

    /// @inheritdoc IStakeManager
    function unlock(address node, uint256 amount) external onlyJobManager {
        NodeStake storage s = _stakes[node];
        // INVARIANT: each reservation is released at most once and only what a slash left of
        // it (JobManager's status machine), so this never underflows.
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
        // INVARIANT: a slash draws only on reserved stake. The caller's reservation covers
        // `amount`, so the clamp never bites; it keeps `settle` from ever reverting.
        slashed = amount < s.locked ? amount : s.locked;
        s.locked -= slashed;
        s.amount -= slashed; // locked <= amount, so no underflow and locked <= amount still
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
        NodeStake storage s = _stakes[node];
        return s.amount - s.locked;
    }

    /// @inheritdoc IStakeManager
    function canCommit(address node, uint256 lockAmount) external view returns (bool) {
        NodeStake storage s = _stakes[node];
        return s.unbondRequestedAt == 0 && s.amount >= minStake && s.amount - s.locked >= lockAmount;
    }

    function _checkWiring(address c) private view {
        require(
            address(IWired(c).token()) == address(token) && address(IWired(c).stakeManager()) == address(this),
            WrongWiring(c)
        );
    }
}
