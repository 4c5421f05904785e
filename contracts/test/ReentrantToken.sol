// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ReentrantToken
/// @notice A malicious ERC-20: on every transfer it calls `target` with `payload` (once per
///         arming), trying to re-enter the protocol mid-transfer. It records whether the
///         re-entry succeeded. Tests only.
contract ReentrantToken is ERC20 {
    address public target;
    bytes public payload;
    bool public armed;
    bool public lastReentrySucceeded;
    bytes public lastReentryError;

    event ReentryAttempted(address target, bool success);

    constructor() ERC20("Reentrant Token", "EVIL") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Arm one re-entry: the next transfer calls `target_` with `payload_`.
    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
        armed = true;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (armed) {
            armed = false;
            (bool ok, bytes memory err) = target.call(payload);
            lastReentrySucceeded = ok;
            lastReentryError = err;
            emit ReentryAttempted(target, ok);
        }
    }
}
