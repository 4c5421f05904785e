// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title SpotcheckHash
/// @notice The one on-chain definition of every hash that crosses the chain boundary.
///         Python twin: `spotcheck/encoding.py` and `spotcheck/merkle.py`; shared vectors:
///         `tests/vectors/encoding.json` (asserted through `contracts/test/HashHarness.sol`).
library SpotcheckHash {
    /// @dev BN254 scalar field modulus.
    uint256 internal constant BN254_R =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    /// @dev keccak256("spotcheck.receipt.v2"): the receipt digest's domain tag.
    bytes32 internal constant RECEIPT_TYPEHASH = keccak256("spotcheck.receipt.v2");

    /// @notice sha256(abi.encode(int256[] values)): the input and output hash.
    /// @dev SHA-256, not keccak256: the node hashes every input it serves (4.8 MB of ABI words for
    ///      a 224x224x3 image) and SHA-256 runs ~4x faster off-chain on CPUs with SHA extensions,
    ///      while the precompile costs a few hundred gas more per commit (docs/architecture.md).
    function hashVector(int256[] memory values) internal pure returns (bytes32) {
        return sha256(abi.encode(values));
    }

    /// @notice Batch leaf, double-hashed as OpenZeppelin's StandardMerkleTree does (a leaf can
    ///         never be read as an inner node: inner nodes hash 64 bytes, leaves 32).
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

    /// @notice Dispute id / leaf-request id / verdict key of leaf `index` in batch `batchId`.
    /// @dev Keyed by position, never by the node's job id: two leaves can never share a verdict.
    function batchLeafKey(uint256 batchId, uint256 index) internal pure returns (bytes32) {
        return keccak256(abi.encode(uint8(1), batchId, index));
    }

    /// @notice Depth of the positional tree over `count` leaves: ceil(log2(count)), 0 for 1.
    /// @dev `count` must be >= 1 (callers check); at most 256 iterations.
    function treeDepth(uint256 count) internal pure returns (uint256 depth) {
        // `count - 1` has exactly ceil(log2(count)) significant bits for count >= 1.
        uint256 rest = count - 1;
        while (rest != 0) {
            rest >>= 1;
            ++depth;
        }
    }

    /// @notice Root rebuilt from `leafHash` at `index` and its bottom-up siblings: at level k the
    ///         node is a right child iff bit k of `index` is set; inner node = keccak256(left ++ right).
    /// @dev Ordered pairs, not sorted: the position is part of the proof. The caller checks
    ///      `index < count` and `proof.length == treeDepth(count)` (see `verify`).
    function merkleRoot(bytes32 leafHash, uint256 index, bytes32[] memory proof)
        internal
        pure
        returns (bytes32 node)
    {
        node = leafHash;
        uint256 path = index;
        for (uint256 k = 0; k < proof.length; ++k) {
            node = (path & 1) == 0 ? _hashNode(node, proof[k]) : _hashNode(proof[k], node);
            path >>= 1;
        }
    }

    /// @notice True iff `leafHash` is leaf `index` of the positional tree over `count` leaves
    ///         with root `root`: `index < count`, `proof.length == treeDepth(count)`, root rebuilds.
    function verify(
        bytes32[] memory proof,
        bytes32 root,
        bytes32 leafHash,
        uint256 index,
        uint256 count
    )
        internal
        pure
        returns (bool)
    {
        if (index >= count || proof.length != treeDepth(count)) return false;
        return merkleRoot(leafHash, index, proof) == root;
    }

    /// @notice The digest a node signs (EIP-191 personal_sign) for a receipt:
    ///         keccak256(abi.encode(keccak256("spotcheck.receipt.v2"), chainId, jobManager, leaf)).
    function receiptDigest(uint256 chainId, address jobManager, bytes32 leafHash)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(RECEIPT_TYPEHASH, chainId, jobManager, leafHash));
    }

    /// @notice BN254 field element -> signed integer (elements above r/2 are negative).
    function fromField(uint256 element) internal pure returns (int256) {
        // SAFETY: element < r < 2**254, so both casts are in range.
        return element > BN254_R / 2 ? -int256(BN254_R - element) : int256(element);
    }

    function _hashNode(bytes32 left, bytes32 right) private pure returns (bytes32) {
        return keccak256(abi.encodePacked(left, right));
    }
}
