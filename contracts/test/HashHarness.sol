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

    function batchJobKey(uint256 batchId, uint256 jobId) external pure returns (bytes32) {
        return SpotcheckHash.batchJobKey(batchId, jobId);
    }

    function fromField(uint256 element) external pure returns (int256) {
        return SpotcheckHash.fromField(element);
    }

}
