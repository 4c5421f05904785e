// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title SpotcheckHash
/// @notice The one on-chain definition of every hash that crosses the chain boundary.
///         Python twin: `spotcheck/encoding.py`; shared vectors: `tests/vectors/encoding.json`.
library SpotcheckHash {
    /// @dev BN254 scalar field modulus.
    uint256 internal constant BN254_R =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    /// @notice sha256(abi.encode(int256[] values)): the input and output hash.
    /// @dev SHA-256, not keccak256: the node hashes every input it serves (4.8 MB of ABI words for
    ///      a 224x224x3 image) and SHA-256 runs ~4x faster off-chain on CPUs with SHA extensions,
    ///      while the precompile costs a few hundred gas more per commit (docs/architecture.md).
    function hashVector(int256[] memory values) internal pure returns (bytes32) {
        return sha256(abi.encode(values));
    }

    /// @notice Batch leaf, double-hashed as OpenZeppelin's StandardMerkleTree does.
    function leaf(uint256 jobId, bytes32 modelId, bytes32 inputHash, bytes32 outputHash)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(bytes.concat(keccak256(abi.encode(jobId, modelId, inputHash, outputHash))));
    }

    /// @notice Dispute id / job key of an on-chain job.
    function onchainJobKey(uint256 jobId) internal pure returns (bytes32) {
        return keccak256(abi.encode(uint8(0), jobId));
    }

    /// @notice Dispute id / job key of leaf `jobId` in batch `batchId`.
    function batchJobKey(uint256 batchId, uint256 jobId) internal pure returns (bytes32) {
        return keccak256(abi.encode(uint8(1), batchId, jobId));
    }

    /// @notice BN254 field element -> signed integer (elements above r/2 are negative).
    function fromField(uint256 element) internal pure returns (int256) {
        // SAFETY: element < r < 2**254, so both casts are in range.
        return element > BN254_R / 2 ? -int256(BN254_R - element) : int256(element);
    }
}
