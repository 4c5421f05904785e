// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestToken
/// @notice A freely mintable ERC-20 for tests, the demo and local networks. Never deploy it
///         where its tokens are meant to have value: anyone can mint.
contract TestToken is ERC20 {
    constructor() ERC20("Spotcheck Test Token", "SPOT") {}

    /// @notice Mint `amount` tokens to `to`. Open to anyone: test networks only.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
