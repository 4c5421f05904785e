// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {IHalo2Verifier} from "../interfaces/IHalo2Verifier.sol";

/// @title MockVerifier
/// @notice Stands in for an ezkl Halo2Verifier in tests: accepts, returns false, reverts or
///         burns all its gas, as set. Tests only.
contract MockVerifier is IHalo2Verifier {
    enum Mode {
        Accept,
        Reject,
        Revert,
        BurnGas
    }

    error MockProofInvalid();

    Mode public mode;
    uint256 public calls;

    event ModeSet(Mode mode);

    function setMode(Mode mode_) external {
        mode = mode_;
        emit ModeSet(mode_);
    }

    /// @inheritdoc IHalo2Verifier
    function verifyProof(bytes calldata, uint256[] calldata) external returns (bool) {
        calls += 1;
        if (mode == Mode.Reject) return false;
        if (mode == Mode.Revert) revert MockProofInvalid();
        if (mode == Mode.BurnGas) {
            while (true) {}
        }
        return true;
    }
}
