// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IModelRegistry
/// @notice Registered models: what a commitment to a model means, its input domain, its minimum
///         fee and the dispute parameters (docs/v2-protocol.md, section 1).
/// @dev `modelId = keccak256(abi.encode(onnxHash, settingsHash, verifier))`. Registration is
///      restricted to the registry owner (see docs/contracts.md, Decisions): a model's verifier is
///      trusted code that `defend` calls, so it must not be chosen by an anonymous party.
interface IModelRegistry {
    struct Model {
        address verifier; // ezkl Halo2Verifier for this circuit (serves this model only)
        bytes32 onnxHash; // keccak256 of the ONNX file bytes
        bytes32 settingsHash; // keccak256 of the ezkl settings.json bytes
        uint32 inputLen; // number of input elements (flattened)
        uint32 outputLen; // number of output elements (flattened)
        uint8 inputScale; // q = round(x * 2**inputScale)
        uint8 outputScale;
        uint256 tau; // tolerance in output units; 0 = exact mode; <= MAX_TAU
        uint64 challengeWindow; // seconds after a commitment during which disputes may open
        uint64 proofWindow; // seconds a node has to defend one dispute (queued per node)
        uint256 challengerBond; // tokens a challenger locks to open a dispute or a leaf request
        uint256 slashAmount; // tokens slashed per invalid job or leaf (reserved per job at commit)
        uint16 bountyBps; // share of the slash paid to the challenger; <= MAX_BOUNTY_BPS
        int256 inLo; // input domain, every element, quantized units: -r/2 <= inLo <= inHi <= r/2
        int256 inHi;
        uint256 minFee; // no on-chain request below it exists
        bytes32 verifierCodeHash; // verifier.codehash at registration
        bool active;
    }

    /// @notice What a registrar supplies; `Model` is these plus `verifierCodeHash` and `active`.
    /// @dev A struct rather than flat parameters: the legacy code generator cannot ABI-decode
    ///      sixteen value parameters (stack too deep) and via-IR is not used.
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
        int256 inLo;
        int256 inHi;
        uint256 minFee;
    }

    error NotRegistrar(address caller);
    error ModelExists(bytes32 modelId);
    error UnknownModel(bytes32 modelId);
    error InvalidModelParams(string reason);
    error WindowsExceedUnbondingDelay(uint64 challengeWindow, uint64 proofWindow, uint64 unbondingDelay);
    /// @notice `verifier` already serves `modelId`: one verifier, one model.
    error VerifierInUse(address verifier, bytes32 modelId);
    error ZeroAddress();

    event ModelRegistered(
        bytes32 indexed modelId, address indexed verifier, bytes32 onnxHash, bytes32 settingsHash, uint256 tau
    );
    /// @notice The rest of the registration: domain, minimum fee, verifier code hash.
    event ModelTermsRegistered(
        bytes32 indexed modelId, int256 inLo, int256 inHi, uint256 minFee, bytes32 verifierCodeHash
    );
    event ModelDeactivated(bytes32 indexed modelId);

    /// @notice Register a model. Only the owner. Reverts `InvalidModelParams(reason)` unless:
    ///         the verifier has code and serves no other model (`VerifierInUse`); lengths in
    ///         1..MAX_VECTOR_LEN; windows, bond and slash > 0; `tau <= MAX_TAU`;
    ///         `bountyBps <= MAX_BOUNTY_BPS`; `-r/2 <= inLo <= inHi <= r/2`; and
    ///         `challengeWindow + proofWindow < unbondingDelay`.
    /// @param params the model's binding (verifier, hashes), shapes, scales, tau, domain, economics
    /// @return modelId keccak256(abi.encode(onnxHash, settingsHash, verifier))
    function registerModel(ModelParams calldata params) external returns (bytes32 modelId);

    /// @notice Stop new jobs and commitments for a model; open work still resolves.
    function deactivateModel(bytes32 modelId) external;

    /// @notice The model's parameters; reverts `UnknownModel` if it was never registered.
    function getModel(bytes32 modelId) external view returns (Model memory);

    /// @notice The model `verifier` serves (zero if none).
    function modelOfVerifier(address verifier) external view returns (bytes32);

    function computeModelId(bytes32 onnxHash, bytes32 settingsHash, address verifier)
        external
        pure
        returns (bytes32);
}
