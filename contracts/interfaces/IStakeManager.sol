// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title IStakeManager
/// @notice Node stake in an ERC-20: bonding, reservations per open commitment, unbonding, slashing.
/// @dev Every open commitment is fully backed (docs/v2-protocol.md, section 4): an on-chain job
///      reserves its model's `slashAmount`, a batch of `count` leaves `count * slashAmount`.
///      A slash draws only from its own commitment's reservation and takes the amount out of both
///      `locked` and `amount`, so `locked <= amount` always holds. Unbonding blocks new
///      commitments and completes only after `unbondingDelay` (longer than any challenge window
///      + proof window) and never while a dispute against the node is open.
interface IStakeManager {
    struct NodeStake {
        uint256 amount; // total staked (includes locked)
        uint256 locked; // sum of the reservations of open commitments
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
    error ZeroAddress();
    /// @notice The token delivered less than was sent (fee-on-transfer tokens are unsupported).
    error FeeOnTransferToken();
    /// @notice JobManager or DisputeManager was built for another token or stake manager.
    error WrongWiring(address contract_);

    event Initialized(address indexed jobManager, address indexed disputeManager);
    event Staked(address indexed node, uint256 amount, uint256 total);
    event UnbondRequested(address indexed node, uint64 readyAt);
    /// @notice A node slashed to zero while unbonding stakes again: its unbonding request is gone.
    event UnbondCleared(address indexed node);
    event Unbonded(address indexed node, uint256 amount);
    event StakeLocked(address indexed node, uint256 amount, uint256 totalLocked);
    event StakeUnlocked(address indexed node, uint256 amount, uint256 totalLocked);
    event DisputeCountChanged(address indexed node, uint32 openDisputes);
    event Slashed(address indexed node, uint256 requested, uint256 slashed, address indexed recipient);

    /// @notice Add `amount` tokens (needs allowance) to the caller's stake. Refused while
    ///         unbonding, unless the stake is 0 (then the unbonding request is cleared).
    function stake(uint256 amount) external;

    /// @notice Start unbonding: blocks new commitments from now on.
    function requestUnbond() external;

    /// @notice After the delay, with no open dispute, withdraw the whole unlocked stake.
    function withdrawStake() external;

    /// @notice Reserve `amount` for a new commitment; reverts unless the node may commit
    ///         (not unbonding, stake >= minStake, free stake >= amount). JobManager only.
    function lock(address node, uint256 amount) external;

    /// @notice Release (what is left of) a reservation when its commitment resolves. Only
    ///         releases: never moves tokens. JobManager only.
    function unlock(address node, uint256 amount) external;

    /// @notice Count a dispute opened / closed against `node`. DisputeManager only.
    function disputeOpened(address node) external;
    function disputeClosed(address node) external;

    /// @notice Slash `amount` of `node`'s reserved stake to `recipient`: taken out of both
    ///         `locked` and `amount` (clamped to `locked`, which the caller's reservation
    ///         covers; never reverts). DisputeManager only.
    /// @return slashed the amount actually taken
    function slash(address node, uint256 amount, address recipient) external returns (uint256 slashed);

    function stakeOf(address node) external view returns (NodeStake memory);
    function freeStake(address node) external view returns (uint256);
    function canCommit(address node, uint256 lockAmount) external view returns (bool);
    function minStake() external view returns (uint256);
    function unbondingDelay() external view returns (uint64);
    function token() external view returns (IERC20);
}
