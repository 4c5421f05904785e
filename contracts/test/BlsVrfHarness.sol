// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {BlsVrf} from "../libraries/BlsVrf.sol";

/// @title BlsVrfHarness
/// @notice Exposes BlsVrf so the shared vectors can be asserted against Solidity. Tests only.
contract BlsVrfHarness {
    function verify(uint256[4] calldata publicKey, bytes32 seed, bytes32 jobRef, uint256[2] calldata sig)
        external
        view
        returns (bool)
    {
        return BlsVrf.verify(publicKey, seed, jobRef, sig);
    }

    /// @notice `verify` and the gas it used (the library call alone, without call overhead).
    function verifyGas(uint256[4] calldata publicKey, bytes32 seed, bytes32 jobRef, uint256[2] calldata sig)
        external
        view
        returns (bool valid, uint256 gasUsed)
    {
        uint256 before = gasleft();
        valid = BlsVrf.verify(publicKey, seed, jobRef, sig);
        gasUsed = before - gasleft();
    }

    function verifyBatch(
        uint256[4] calldata publicKey,
        bytes32[] calldata seeds,
        bytes32[] calldata jobRefs,
        uint256[2][] calldata sigs
    ) external view returns (bool) {
        return BlsVrf.verifyBatch(publicKey, seeds, jobRefs, sigs);
    }

    function verifyPossession(
        uint256[4] calldata publicKey,
        uint256[2] calldata pop,
        address registrant,
        address pool,
        uint256 chainId
    ) external view returns (bool) {
        return BlsVrf.verifyPossession(publicKey, pop, registrant, pool, chainId);
    }

    function hashToG1(bytes32 seed, bytes32 jobRef, uint256 maxTries) external view returns (uint256[2] memory) {
        return BlsVrf.hashToG1(abi.encodePacked(BlsVrf.DOMAIN, abi.encode(seed, jobRef)), maxTries);
    }

    function hashToG1Pop(uint256[4] calldata publicKey, address registrant, address pool, uint256 chainId)
        external
        view
        returns (uint256[2] memory)
    {
        return BlsVrf.hashToG1(abi.encodePacked(BlsVrf.POP_DOMAIN, abi.encode(publicKey, registrant, pool, chainId)));
    }

    function output(uint256[2] calldata sig) external pure returns (bytes32) {
        return BlsVrf.output(sig);
    }

    function isSampled(uint256[2] calldata sig, uint256 pBps) external pure returns (bool) {
        return BlsVrf.isSampled(sig, pBps);
    }
}
