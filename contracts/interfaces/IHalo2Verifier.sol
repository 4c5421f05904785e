// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IHalo2Verifier
/// @notice The ABI of ezkl's generated verifier. It returns true on a valid proof and reverts
///         (or returns false) otherwise; DisputeManager treats both as a rejection.
interface IHalo2Verifier {
    function verifyProof(bytes calldata proof, uint256[] calldata instances) external returns (bool);
}
