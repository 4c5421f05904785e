// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IModelRegistry
/// @notice Registered models: what a commitment to a model means, and the dispute parameters.
/// @dev `modelId = keccak256(abi.encode(onnxHash, settingsHash, verifier))`. Registration is
///      restricted to the registry owner in v1 (see docs/contracts.md, Decisions): a model's verifier is
///      trusted code that `defend` calls, so it must not be chosen by an anonymous party.
interface IModelRegistry {
    struct Model {
        address verifier; // ezkl Halo2Verifier for this circuit
        bytes32 onnxHash; // keccak256 of the ONNX file bytes
        bytes32 settingsHash; // keccak256 of the ezkl settings.json bytes
        uint32 inputLen; // number of input elements (flattened)
        uint32 outputLen; // number of output elements (flattened)
        uint8 inputScale; // q = round(x * 2**inputScale)
        uint8 outputScale;
        uint256 tau; // tolerance in output units; 0 = exact mode
        uint64 challengeWindow; // seconds after a commitment during which disputes may open
        uint64 proofWindow; // seconds after a dispute opens during which the node may defend
        uint256 challengerBond; // tokens a challenger locks to open a dispute
        uint256 slashAmount; // tokens slashed from a node that fails to defend
        uint16 bountyBps; // share of the slash paid to the challenger, in basis points
        bool active;
    }

    error NotRegistrar(address caller);
    error ModelExists(bytes32 modelId);
    error UnknownModel(bytes32 modelId);
    error InvalidModelParams(string reason);
    error WindowsExceedUnbondingDelay(uint64 challengeWindow, uint64 proofWindow, uint64 unbondingDelay);

    event ModelRegistered(
        bytes32 indexed modelId, address indexed verifier, bytes32 onnxHash, bytes32 settingsHash, uint256 tau
    );
    event ModelDeactivated(bytes32 indexed modelId);

    /// @notice What a registrar supplies; `Model` is these plus `active`.
    /// @dev A struct rather than thirteen flat parameters: the legacy code generator cannot
    ///      ABI-decode thirteen value parameters (stack too deep) and via-IR is not used.
    struct ModelParams {
        address verifier;
        bytes32 onnxHash;
        bytes32 settingsHash;
        uint32 inputLen;
        uint32 outputLen;
        uint8 inputScale;
        uint8 outputScale;
        uint256 tau;
        uint64 challengeWindow;
        uint64 proofWindow;
        uint256 challengerBond;
        uint256 slashAmount;
        uint16 bountyBps;
    }

    /// @notice Register a model. Only the owner. The windows must fit in the stake manager's
    ///         unbonding delay (`challengeWindow + proofWindow < unbondingDelay`).
    /// @param params the model's binding (verifier, hashes), shapes, scales, tau and economics
    /// @return modelId keccak256(abi.encode(onnxHash, settingsHash, verifier))
    function registerModel(ModelParams calldata params) external returns (bytes32 modelId);

    /// @notice Stop new jobs and commitments for a model; open work still resolves.
    function deactivateModel(bytes32 modelId) external;

    /// @notice The model's parameters; reverts `UnknownModel` if it was never registered.
    function getModel(bytes32 modelId) external view returns (Model memory);

    function computeModelId(bytes32 onnxHash, bytes32 settingsHash, address verifier)
        external
        pure
        returns (bytes32);
}
