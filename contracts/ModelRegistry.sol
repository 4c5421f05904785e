// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";

import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IStakeManager} from "./interfaces/IStakeManager.sol";

/// @title ModelRegistry
/// @notice Registered models and their dispute parameters. Registration is owner-only: a
///         model's verifier is code that `defend` trusts, so an anonymous party must not pick it.
/// @dev Models are immutable once registered (no parameter updates in v1); a registrar who needs
///      other parameters registers a new model (a new verifier or settings gives a new id).
contract ModelRegistry is IModelRegistry, Ownable2Step {
    /// @notice Upper bound on input and output lengths: bounds every loop over them (defend,
    ///         requestJob's field check) and the calldata a job can carry.
    uint32 public constant MAX_VECTOR_LEN = 4096;
    uint16 internal constant BPS = 10_000;

    IStakeManager public immutable stakeManager;

    mapping(bytes32 modelId => Model) private _models;

    constructor(IStakeManager stakeManager_) Ownable(msg.sender) {
        stakeManager = stakeManager_;
    }

    /// @inheritdoc IModelRegistry
    function registerModel(ModelParams calldata p) external returns (bytes32) {
        require(msg.sender == owner(), NotRegistrar(msg.sender));
        return _register(
            Model({
                verifier: p.verifier,
                onnxHash: p.onnxHash,
                settingsHash: p.settingsHash,
                inputLen: p.inputLen,
                outputLen: p.outputLen,
                inputScale: p.inputScale,
                outputScale: p.outputScale,
                tau: p.tau,
                challengeWindow: p.challengeWindow,
                proofWindow: p.proofWindow,
                challengerBond: p.challengerBond,
                slashAmount: p.slashAmount,
                bountyBps: p.bountyBps,
                active: true
            })
        );
    }

    function _register(Model memory m) private returns (bytes32 modelId) {
        require(m.verifier.code.length > 0, InvalidModelParams("verifier has no code"));
        require(m.inputLen > 0 && m.inputLen <= MAX_VECTOR_LEN, InvalidModelParams("inputLen"));
        require(m.outputLen > 0 && m.outputLen <= MAX_VECTOR_LEN, InvalidModelParams("outputLen"));
        require(m.challengeWindow > 0 && m.proofWindow > 0, InvalidModelParams("zero window"));
        require(m.challengerBond > 0, InvalidModelParams("zero challenger bond"));
        require(m.slashAmount > 0, InvalidModelParams("zero slash"));
        require(m.bountyBps <= BPS, InvalidModelParams("bountyBps > 10000"));
        // INVARIANT: a node that asks to unbond right after a commitment is still slashable for
        // the whole challenge + proof window: the unbonding delay must outlast both.
        uint64 delay = stakeManager.unbondingDelay();
        require(
            uint256(m.challengeWindow) + uint256(m.proofWindow) < delay,
            WindowsExceedUnbondingDelay(m.challengeWindow, m.proofWindow, delay)
        );
        modelId = computeModelId(m.onnxHash, m.settingsHash, m.verifier);
        require(_models[modelId].verifier == address(0), ModelExists(modelId));
        _models[modelId] = m;
        emit ModelRegistered(modelId, m.verifier, m.onnxHash, m.settingsHash, m.tau);
    }

    /// @inheritdoc IModelRegistry
    function deactivateModel(bytes32 modelId) external {
        require(msg.sender == owner(), NotRegistrar(msg.sender));
        Model storage m = _models[modelId];
        require(m.verifier != address(0), UnknownModel(modelId));
        m.active = false;
        emit ModelDeactivated(modelId);
    }

    /// @inheritdoc IModelRegistry
    function getModel(bytes32 modelId) external view returns (Model memory model) {
        model = _models[modelId];
        require(model.verifier != address(0), UnknownModel(modelId));
    }

    /// @inheritdoc IModelRegistry
    function computeModelId(bytes32 onnxHash, bytes32 settingsHash, address verifier)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(onnxHash, settingsHash, verifier));
    }
}
