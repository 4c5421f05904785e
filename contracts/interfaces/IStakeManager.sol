// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IStakeManager
/// @notice Node stake in an ERC-20: bonding, locking per open commitment, unbonding, slashing.
/// @dev Each unfinalized commitment locks its model's `slashAmount` (so stake bounds open work).
///      Unbonding blocks new commitments and completes only after `unbondingDelay` (longer than
///      any challenge window + proof window) and never while a dispute against the node is open.
interface IStakeManager {
    struct NodeStake {
        uint256 amount; // total staked (includes locked)
        uint256 locked; // sum of slashAmount over open commitments
        uint64 unbondRequestedAt; // 0 = not unbonding
        uint32 openDisputes;
    }

    error InsufficientStake(address node, uint256 have, uint256 need);
    error NodeUnbonding(address node);
    error NotUnbonding(address node);
    error UnbondingDelayNotOver(address node, uint64 readyAt);
    error DisputesOpen(address node, uint32 openDisputes);
    error NotAuthorized(address caller);
    error AlreadyInitialized();
    error ZeroAmount();

    event Staked(address indexed node, uint256 amount, uint256 total);
    event UnbondRequested(address indexed node, uint64 readyAt);
    event Unbonded(address indexed node, uint256 amount);
    event StakeLocked(address indexed node, uint256 amount, uint256 totalLocked);
    event StakeUnlocked(address indexed node, uint256 amount, uint256 totalLocked);
    event DisputeCountChanged(address indexed node, uint32 openDisputes);
    event Slashed(address indexed node, uint256 requested, uint256 slashed, address indexed recipient);

    /// @notice Add `amount` tokens (needs allowance) to the caller's stake.
    function stake(uint256 amount) external;

    /// @notice Start unbonding: blocks new commitments from now on.
    function requestUnbond() external;

    /// @notice After the delay, with no open dispute, withdraw the whole unlocked stake.
    function withdrawStake() external;

    /// @notice Lock `amount` for a new commitment; reverts unless the node may commit. JobManager only.
    function lock(address node, uint256 amount) external;

    /// @notice Release a lock when its commitment resolves. JobManager or DisputeManager only.
    function unlock(address node, uint256 amount) external;

    /// @notice Count a dispute opened / closed against `node`. DisputeManager only.
    function disputeOpened(address node) external;
    function disputeClosed(address node) external;

    /// @notice Slash up to `amount` from `node` and send it to `recipient`; clamped to the stake,
    ///         never reverts, never rounds a non-zero request against non-zero stake to zero.
    ///         DisputeManager only.
    /// @return slashed the amount actually taken
    function slash(address node, uint256 amount, address recipient) external returns (uint256 slashed);

    function stakeOf(address node) external view returns (NodeStake memory);
    function freeStake(address node) external view returns (uint256);
    function canCommit(address node, uint256 lockAmount) external view returns (bool);
    function minStake() external view returns (uint256);
    function unbondingDelay() external view returns (uint64);
}
