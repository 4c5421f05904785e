// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title FeeOnTransferToken
/// @notice An ERC-20 that burns 1 % of a transfer between two holders (mints are whole): of
///         every transfer, or, once `setFeeTarget` named one, only of transfers to that address.
///         The protocol must refuse it wherever it pulls tokens. Tests only.
contract FeeOnTransferToken is ERC20 {
    address public feeTarget;

    constructor() ERC20("Fee Token", "FEE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setFeeTarget(address target) external {
        feeTarget = target;
    }

    function _update(address from, address to, uint256 value) internal override {
        bool charged = from != address(0) && to != address(0) && (feeTarget == address(0) || to == feeTarget);
        if (!charged) {
            super._update(from, to, value);
            return;
        }
        uint256 fee = value / 100;
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
