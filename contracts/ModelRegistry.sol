// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";

import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IStakeManager} from "./interfaces/IStakeManager.sol";
import {SpotcheckHash} from "./libraries/SpotcheckHash.sol";

/// @title ModelRegistry
/// @notice Registered models and their dispute parameters. Registration is owner-only: a
///         model's verifier is code that `defend` trusts, so an anonymous party must not pick it.
/// @dev Models are immutable once registered (no parameter updates); a registrar who needs
///      other parameters registers a new model (a new verifier or settings gives a new id).
contract ModelRegistry is IModelRegistry, Ownable2Step {
    /// @notice Upper bound on input and output lengths: bounds every loop over them (defend,
    ///         requestJob's domain check, revealLeaf) and the calldata a job can carry.
    uint32 public constant MAX_VECTOR_LEN = 4096;
    /// @notice Largest tolerance: keeps `|proven - committed| <= tau` meaningful and cheap.
    uint256 public constant MAX_TAU = 2 ** 64;
    /// @notice Largest bounty share: a cheater's second address disputing itself recovers at
    ///         most half its slash.
    uint16 public constant MAX_BOUNTY_BPS = 5000;
    int256 internal constant FIELD_HALF = int256(SpotcheckHash.BN254_R / 2);

    IStakeManager public immutable stakeManager;

    mapping(bytes32 modelId => Model) private _models;
    /// @inheritdoc IModelRegistry
    mapping(address verifier => bytes32 modelId) public modelOfVerifier;

    constructor(IStakeManager stakeManager_) Ownable(msg.sender) {
        require(address(stakeManager_) != address(0), ZeroAddress());
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
                inLo: p.inLo,
                inHi: p.inHi,
                minFee: p.minFee,
                verifierCodeHash: p.verifier.codehash,
                active: true
            })
        );
    }

    function _register(Model memory m) private returns (bytes32 modelId) {
        require(m.verifier.code.length > 0, InvalidModelParams("verifier has no code"));
        // INVARIANT: a verifier serves one model, so a proof for one model is never a defence
        // of another that shares its verifier.
        bytes32 other = modelOfVerifier[m.verifier];
        require(other == bytes32(0), VerifierInUse(m.verifier, other));
        require(m.inputLen > 0 && m.inputLen <= MAX_VECTOR_LEN, InvalidModelParams("inputLen"));
        require(m.outputLen > 0 && m.outputLen <= MAX_VECTOR_LEN, InvalidModelParams("outputLen"));
        require(m.challengeWindow > 0 && m.proofWindow > 0, InvalidModelParams("zero window"));
        require(m.challengerBond > 0, InvalidModelParams("zero challenger bond"));
        require(m.slashAmount > 0, InvalidModelParams("zero slash"));
        require(m.tau <= MAX_TAU, InvalidModelParams("tau > MAX_TAU"));
        require(m.bountyBps <= MAX_BOUNTY_BPS, InvalidModelParams("bountyBps > MAX_BOUNTY_BPS"));
        // INVARIANT: every in-domain input is a BN254 field element, so a proof can match it.
        require(-FIELD_HALF <= m.inLo && m.inLo <= m.inHi && m.inHi <= FIELD_HALF, InvalidModelParams("domain"));
        // INVARIANT: a node that asks to unbond right after a commitment is still slashable for
        // the whole challenge + proof window: the unbonding delay must outlast both.
        uint64 delay = stakeManager.unbondingDelay();
        require(
            uint256(m.challengeWindow) + uint256(m.proofWindow) < delay,
            WindowsExceedUnbondingDelay(m.challengeWindow, m.proofWindow, delay)
        );
        modelId = computeModelId(m.onnxHash, m.settingsHash, m.verifier);
        // Unreachable for a fresh verifier (the id binds it), kept as a guard.
        require(_models[modelId].verifier == address(0), ModelExists(modelId));
        _models[modelId] = m;
        modelOfVerifier[m.verifier] = modelId;
        emit ModelRegistered(modelId, m.verifier, m.onnxHash, m.settingsHash, m.tau);
        emit ModelTermsRegistered(modelId, m.inLo, m.inHi, m.minFee, m.verifierCodeHash);
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
