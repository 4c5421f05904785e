// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IJobManager} from "../interfaces/IJobManager.sol";
import {IModelRegistry} from "../interfaces/IModelRegistry.sol";
import {ISpotcheckConsumer} from "../interfaces/ISpotcheckConsumer.sol";
import {SpotcheckHash} from "../libraries/SpotcheckHash.sol";

/// @title SpotcheckConsumerBase
/// @notice Base for dApps that request Spotcheck jobs and use only final outputs of their own
///         questions.
/// @dev An output is bound to its question: the base records `(modelId, inputHash)` of every
///      job it requested and accepts callbacks and outputs only for those jobs, and only when
///      the job still has that model and input. JobManager does not store outputs (only their
///      hash); the output is in the `ResultCommitted` event. A batch output (served off-chain
///      with a receipt) is accepted by `_isVerifiedBatchOutput`: the leaf rebuilt from the model,
///      input and output the dApp holds sits at the index under the batch root, the batch is of
///      that model and was committed by the node the dApp asked, the input is inside the
///      model's domain (challengers never dispute an input outside it), and the leaf is final. The callback is a notification only: it gets
///      `CALLBACK_GAS_LIMIT` gas and may fail without consequence.
abstract contract SpotcheckConsumerBase is ISpotcheckConsumer {
    using SafeERC20 for IERC20;

    /// @notice What this contract asked: the model and the input's hash.
    struct Question {
        bytes32 modelId;
        bytes32 inputHash;
    }

    error OnlyJobManager(address caller);
    /// @notice `jobId` was not requested by this contract.
    error NotOwnJob(uint256 jobId);
    error ZeroAddress();

    event QuestionRecorded(uint256 indexed jobId, bytes32 indexed modelId, bytes32 inputHash);

    IJobManager public immutable jobManager;
    IERC20 public immutable feeToken;

    /// @notice The question behind each job this contract requested (zero model id: not ours).
    mapping(uint256 jobId => Question) public questions;

    constructor(IJobManager jobManager_, IERC20 feeToken_) {
        require(address(jobManager_) != address(0) && address(feeToken_) != address(0), ZeroAddress());
        jobManager = jobManager_;
        feeToken = feeToken_;
    }

    /// @inheritdoc ISpotcheckConsumer
    function onSpotcheckJobFinalized(uint256 jobId, bytes32 outputHash) external {
        require(msg.sender == address(jobManager), OnlyJobManager(msg.sender));
        require(questions[jobId].modelId != bytes32(0), NotOwnJob(jobId));
        _onJobFinalized(jobId, outputHash);
    }

    /// @dev Request a job paying `fee` from this contract's token balance, and record the
    ///      question. Spends this contract's balance: gate the caller (e.g. `onlyOwner`, as
    ///      `ExampleConsumer.request`) or take the fee from `msg.sender` first.
    function _requestJob(bytes32 modelId, int256[] memory input, address node, uint256 fee)
        internal
        returns (uint256 jobId)
    {
        if (fee > 0) feeToken.forceApprove(address(jobManager), fee);
        jobId = jobManager.requestJob(modelId, input, node, fee);
        bytes32 inputHash = SpotcheckHash.hashVector(input);
        questions[jobId] = Question({modelId: modelId, inputHash: inputHash});
        emit QuestionRecorded(jobId, modelId, inputHash);
    }

    /// @dev True iff `jobId` is one of ours, final, still about our question, and `output` is
    ///      exactly its committed output.
    function _isVerifiedOutput(uint256 jobId, int256[] memory output) internal view returns (bool) {
        Question memory q = questions[jobId];
        if (q.modelId == bytes32(0)) return false;
        if (!jobManager.isJobFinal(jobId)) return false;
        IJobManager.Job memory job = jobManager.getJob(jobId);
        return job.modelId == q.modelId && job.inputHash == q.inputHash
            && SpotcheckHash.hashVector(output) == job.outputHash;
    }

    /// @dev True iff leaf `index` of `batchId` is `(jobId, modelId, sha256(input), sha256(output))`
    ///      (positional proof), the batch is of `modelId` and committed by `node`, every input
    ///      element is inside the model's `[inLo, inHi]`, and the leaf is final. The caller
    ///      supplies the node, model and input it asked about: another job's proof is no proof
    ///      here, and an out-of-domain leaf (which no challenger disputes) is no answer.
    ///      Bounded loop: an input of the wrong length never verifies, and the model's inputLen
    ///      is <= MAX_VECTOR_LEN; the length is checked before the loop.
    function _isVerifiedBatchOutput(
        uint256 batchId,
        uint256 index,
        uint256 jobId,
        bytes32 modelId,
        address node,
        int256[] memory input,
        int256[] memory output,
        bytes32[] memory proof
    ) internal view returns (bool) {
        IJobManager.Batch memory b = jobManager.getBatch(batchId);
        if (b.modelId != modelId || b.node != node) return false;
        if (!_inDomain(modelId, input)) return false;
        bytes32 leaf =
            SpotcheckHash.leaf(jobId, modelId, SpotcheckHash.hashVector(input), SpotcheckHash.hashVector(output));
        return jobManager.verifyBatchLeaf(batchId, index, leaf, proof) && jobManager.isBatchLeafFinal(batchId, index);
    }

    /// @dev True iff `input` has the model's length and every element is in `[inLo, inHi]`.
    function _inDomain(bytes32 modelId, int256[] memory input) private view returns (bool) {
        IModelRegistry.Model memory m = jobManager.registry().getModel(modelId);
        if (input.length != m.inputLen) return false;
        for (uint256 i; i < input.length; ++i) {
            if (input[i] < m.inLo || input[i] > m.inHi) return false;
        }
        return true;
    }

    /// @dev Called (gas-capped) when a job this contract requested is final. Keep it cheap.
    function _onJobFinalized(uint256 jobId, bytes32 outputHash) internal virtual;
}
