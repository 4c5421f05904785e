// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {SpotcheckHash} from "../libraries/SpotcheckHash.sol";

/// @title HashHarness
/// @notice Exposes SpotcheckHash so the shared vectors can be asserted against Solidity. Tests only.
contract HashHarness {
    function hashVector(int256[] calldata values) external pure returns (bytes32) {
        return SpotcheckHash.hashVector(values);
    }

    function leaf(uint256 jobId, bytes32 modelId, bytes32 inputHash, bytes32 outputHash)
        external
        pure
        returns (bytes32)
    {
        return SpotcheckHash.leaf(jobId, modelId, inputHash, outputHash);
    }

    function onchainJobKey(uint256 jobId) external pure returns (bytes32) {
        return SpotcheckHash.onchainJobKey(jobId);
    }

    function batchLeafKey(uint256 batchId, uint256 index) external pure returns (bytes32) {
        return SpotcheckHash.batchLeafKey(batchId, index);
    }

    function treeDepth(uint256 count) external pure returns (uint256) {
        return SpotcheckHash.treeDepth(count);
    }

    function merkleRoot(bytes32 leafHash, uint256 index, bytes32[] calldata proof)
        external
        pure
        returns (bytes32)
    {
        return SpotcheckHash.merkleRoot(leafHash, index, proof);
    }

    function verify(
        bytes32[] calldata proof,
        bytes32 root,
        bytes32 leafHash,
        uint256 index,
        uint256 count
    )
        external
        pure
        returns (bool)
    {
        return SpotcheckHash.verify(proof, root, leafHash, index, count);
    }

    function receiptDigest(uint256 chainId, address jobManager, bytes32 leafHash)
        external
        pure
        returns (bytes32)
    {
        return SpotcheckHash.receiptDigest(chainId, jobManager, leafHash);
    }

    function fromField(uint256 element) external pure returns (int256) {
        return SpotcheckHash.fromField(element);
    }
}
