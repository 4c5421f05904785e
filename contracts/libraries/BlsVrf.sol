// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title BlsVrf
/// @notice A BLS VRF on BN254, verified with the EVM precompiles (modexp 0x05, ecPairing 0x08).
///         The proof of `(seed, jobRef)` is the BLS signature `sk * H(abi.encode(seed, jobRef))`
///         in G1; the output is `keccak256(abi.encode(sig.x, sig.y))`; a job is sampled iff
///         `uint256(output) < floor(pBps * 2**256 / 10_000)`.
///         Python twin: `spotcheck/vrf.py` (which documents every rule); shared vectors:
///         `tests/vectors/vrf.json` (asserted through `contracts/test/BlsVrfHarness.sol`).
/// @dev    A public key is a G2 point as four words in EIP-197 order `(x_im, x_re, y_im, y_re)`:
///         each Fp2 element imaginary part first. A signature is a G1 point `(x, y)`.
library BlsVrf {
    /// @notice A signature or proof of possession is not a G1 point (coordinate >= p, off the
    ///         curve, or the point at infinity).
    error InvalidSignature(uint256 x, uint256 y);
    /// @notice A public key is not a G2 point of order r (the ecPairing precompile refused it),
    ///         has a coordinate >= p, or is the point at infinity.
    error InvalidPublicKey(uint256[4] publicKey);
    /// @notice Try-and-increment found no curve point in `tries` counters (probability 2**-256
    ///         at MAX_TRIES).
    error HashToG1Failed(uint256 tries);
    /// @notice A sampling rate above 10,000 basis points.
    error SamplingRateTooHigh(uint256 pBps);
    /// @notice The modexp precompile failed (out of gas).
    error ModexpFailed();
    /// @notice The ecAdd or ecMul precompile failed (out of gas).
    error EcOperationFailed();
    /// @notice `verifyBatch` got arrays of different lengths, or none.
    error BatchLengthMismatch(uint256 seeds, uint256 jobRefs, uint256 sigs);

    /// @dev BN254 base field modulus; p ≡ 3 mod 4.
    uint256 internal constant P =
        21888242871839275222246405745257275088696311157297823662689037894645226208583;
    /// @dev BN254 group order (scalars).
    uint256 internal constant R =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    /// @dev (p + 1) / 4: `rhs^SQRT_EXP` is a square root of `rhs` whenever one exists.
    uint256 internal constant SQRT_EXP =
        5472060717959818805561601436314318772174077789324455915672259473661306552146;
    /// @dev Try-and-increment gives up after this many counters (uint8 counter 0..255).
    uint256 internal constant MAX_TRIES = 256;
    uint256 internal constant BPS = 10_000;

    /// @dev Domain tags, raw ASCII: 16 and 20 bytes.
    bytes16 internal constant DOMAIN = "spotcheck.vrf.v1";
    bytes20 internal constant POP_DOMAIN = "spotcheck.vrf.pop.v1";

    /// @dev The G2 generator, EIP-197 word order.
    uint256 internal constant G2_X_IM =
        11559732032986387107991004021392285783925812861821192530917403151452391805634;
    uint256 internal constant G2_X_RE =
        10857046999023057135944570762232829481370756359578518086990519993285655852781;
    uint256 internal constant G2_Y_IM =
        4082367875863433681332203403145435568316851327593401208105741076214120093531;
    uint256 internal constant G2_Y_RE =
        8495653923123431417604973247489272438418190587263600148770280649306958101930;

    /// @notice True iff `sig` is `publicKey`'s VRF proof of `(seed, jobRef)`.
    /// @dev Reverts `InvalidSignature` / `InvalidPublicKey` on malformed points: a valid point
    ///      that is the wrong signature returns false. Gas: docs/contracts.md.
    function verify(uint256[4] memory publicKey, bytes32 seed, bytes32 jobRef, uint256[2] memory sig)
        internal
        view
        returns (bool)
    {
        return _pairingCheck(publicKey, hashToG1(abi.encodePacked(DOMAIN, abi.encode(seed, jobRef))), sig);
    }

    /// @notice True iff every `sigs[i]` is `publicKey`'s VRF proof of `(seeds[i], jobRefs[i])`,
    ///         checked by ONE pairing product: `e(sum c_i sig_i, G2) == e(sum c_i H_i, pk)`.
    /// @dev The coefficients are `c_i = keccak256(abi.encode(t, i)) mod r` (1 if that is 0),
    ///      `t = keccak256(abi.encode(publicKey, seeds, jobRefs, sigs))`: drawn after every proof
    ///      is fixed. With a plain sum (`c_i = 1`) two wrong proofs `sig_1 + E`, `sig_2 - E`
    ///      would pass, each with its own (ground) VRF output; with coefficients a set of wrong
    ///      proofs passes only if `sum c_i E_i = 0`, which for hash-drawn `c_i` happens with
    ///      probability about 1/r per try. Each signature is checked as a G1 point first.
    ///      Cost per proof: a hash to G1, two ecMul and two ecAdd; one pairing for all.
    function verifyBatch(
        uint256[4] memory publicKey,
        bytes32[] memory seeds,
        bytes32[] memory jobRefs,
        uint256[2][] memory sigs
    ) internal view returns (bool) {
        uint256 n = sigs.length;
        require(n > 0 && seeds.length == n && jobRefs.length == n, BatchLengthMismatch(seeds.length, jobRefs.length, n));
        bytes32 transcript = keccak256(abi.encode(publicKey, seeds, jobRefs, sigs));
        // Both sums start at the point at infinity, (0, 0) for the precompiles.
        uint256[2] memory sigSum = [uint256(0), uint256(0)];
        uint256[2] memory hashSum = [uint256(0), uint256(0)];
        // Bounded by the caller (CheckPool caps batches at MAX_BATCH_CLAIMS).
        for (uint256 i; i < n; ++i) {
            _checkG1(sigs[i]);
            uint256 c = uint256(keccak256(abi.encode(transcript, i))) % R;
            if (c == 0) c = 1;
            uint256[2] memory h = hashToG1(abi.encodePacked(DOMAIN, abi.encode(seeds[i], jobRefs[i])));
            sigSum = _ecAdd(sigSum, _ecMul(sigs[i], c));
            hashSum = _ecAdd(hashSum, _ecMul(h, c));
        }
        return _pairing(publicKey, hashSum, sigSum);
    }

    /// @notice True iff `pop` is the signature of
    ///         `abi.encode(publicKey, registrant, pool, chainId)` under the PoP domain: the proof
    ///         is bound to who registers the key, where and on which chain (a copy of a pending
    ///         registration cannot register the key for another address first).
    function verifyPossession(
        uint256[4] memory publicKey,
        uint256[2] memory pop,
        address registrant,
        address pool,
        uint256 chainId
    ) internal view returns (bool) {
        bytes memory message = abi.encode(publicKey, registrant, pool, chainId);
        return _pairingCheck(publicKey, hashToG1(abi.encodePacked(POP_DOMAIN, message)), pop);
    }

    /// @notice The VRF output of a (verified) proof.
    function output(uint256[2] memory sig) internal pure returns (bytes32) {
        return keccak256(abi.encode(sig[0], sig[1]));
    }

    /// @notice The sampling decision: `uint256(output(sig)) < floor(pBps * 2**256 / 10_000)`.
    /// @dev Call only on a verified proof. Exact: 2**256 = BPS * q + rem, so the threshold is
    ///      `pBps * q + floor(pBps * rem / BPS)` (no overflow for pBps < BPS).
    function isSampled(uint256[2] memory sig, uint256 pBps) internal pure returns (bool) {
        require(pBps <= BPS, SamplingRateTooHigh(pBps));
        if (pBps == BPS) return true;
        uint256 q = type(uint256).max / BPS;
        uint256 rem = type(uint256).max % BPS + 1;
        return uint256(output(sig)) < pBps * q + (pBps * rem) / BPS;
    }

    /// @notice Hash to G1 by try-and-increment over at most MAX_TRIES counters.
    /// @param prefix `domain ‖ message`; the counter is appended as one byte.
    function hashToG1(bytes memory prefix) internal view returns (uint256[2] memory) {
        return hashToG1(prefix, MAX_TRIES);
    }

    /// @notice Hash to G1 by try-and-increment over at most `maxTries` (<= MAX_TRIES) counters:
    ///         `x = keccak256(prefix ‖ uint8(counter)) mod p`, the first `x` with `x^3 + 3` a
    ///         square, `y` its smaller root. Not constant-time: for public inputs only.
    function hashToG1(bytes memory prefix, uint256 maxTries) internal view returns (uint256[2] memory point) {
        require(maxTries <= MAX_TRIES, HashToG1Failed(maxTries));
        for (uint256 counter = 0; counter < maxTries; ++counter) {
            uint256 x = uint256(keccak256(abi.encodePacked(prefix, uint8(counter)))) % P;
            uint256 rhs = addmod(mulmod(mulmod(x, x, P), x, P), 3, P);
            uint256 y = _modexp(rhs, SQRT_EXP);
            if (mulmod(y, y, P) == rhs) {
                point[0] = x;
                point[1] = y > (P - 1) / 2 ? P - y : y;
                return point;
            }
        }
        revert HashToG1Failed(maxTries);
    }

    /// @dev e(sig, G2) * e(-h, publicKey) == 1, by the ecPairing precompile.
    function _pairingCheck(uint256[4] memory publicKey, uint256[2] memory h, uint256[2] memory sig)
        private
        view
        returns (bool)
    {
        _checkG1(sig);
        return _pairing(publicKey, h, sig);
    }

    /// @dev The pairing product for points already checked or computed by a precompile (either
    ///      may be the point at infinity, encoded (0, 0), after a batch sum).
    function _pairing(uint256[4] memory publicKey, uint256[2] memory h, uint256[2] memory sig)
        private
        view
        returns (bool)
    {
        // The precompile checks the key's curve and subgroup membership; it treats all-zero
        // words as the point at infinity, which would make every signature of infinity valid.
        require(
            publicKey[0] | publicKey[1] | publicKey[2] | publicKey[3] != 0 && publicKey[0] < P
                && publicKey[1] < P && publicKey[2] < P && publicKey[3] < P,
            InvalidPublicKey(publicKey)
        );
        uint256[12] memory input = [
            sig[0],
            sig[1],
            G2_X_IM,
            G2_X_RE,
            G2_Y_IM,
            G2_Y_RE,
            h[0],
            h[1] == 0 ? 0 : P - h[1], // -h; (0, 0) is infinity (no G1 point has y = 0)
            publicKey[0],
            publicKey[1],
            publicKey[2],
            publicKey[3]
        ];
        uint256[1] memory result;
        bool ok;
        // SAFETY: a static call to the ecPairing precompile on 384 bytes of memory we own.
        assembly ("memory-safe") {
            ok := staticcall(gas(), 0x08, input, 384, result, 32)
        }
        // The signature and h are G1 points (checked, hashed or computed by a precompile), so a
        // failure here is the key's (off the twist curve or outside the order-r subgroup).
        require(ok, InvalidPublicKey(publicKey));
        return result[0] == 1;
    }

    /// @dev `sig` is an affine G1 point with canonical coordinates, not the point at infinity.
    function _checkG1(uint256[2] memory sig) private pure {
        uint256 x = sig[0];
        uint256 y = sig[1];
        bool onCurve = x < P && y < P && mulmod(y, y, P) == addmod(mulmod(mulmod(x, x, P), x, P), 3, P);
        require(onCurve, InvalidSignature(x, y));
    }

    /// @dev a + b on G1 by the ecAdd precompile (0x06).
    function _ecAdd(uint256[2] memory a, uint256[2] memory b) private view returns (uint256[2] memory r) {
        uint256[4] memory input = [a[0], a[1], b[0], b[1]];
        bool ok;
        // SAFETY: a static call to the ecAdd precompile on 128 bytes of memory we own.
        assembly ("memory-safe") {
            ok := staticcall(gas(), 0x06, input, 128, r, 64)
        }
        require(ok, EcOperationFailed());
    }

    /// @dev s * a on G1 by the ecMul precompile (0x07).
    function _ecMul(uint256[2] memory a, uint256 s) private view returns (uint256[2] memory r) {
        uint256[3] memory input = [a[0], a[1], s];
        bool ok;
        // SAFETY: a static call to the ecMul precompile on 96 bytes of memory we own.
        assembly ("memory-safe") {
            ok := staticcall(gas(), 0x07, input, 96, r, 64)
        }
        require(ok, EcOperationFailed());
    }

    /// @dev base^exponent mod P through the modexp precompile.
    function _modexp(uint256 base, uint256 exponent) private view returns (uint256 result) {
        bool ok;
        // SAFETY: a static call to the modexp precompile; input and output in scratch memory
        // past the free pointer, which is not advanced (nothing else is allocated meanwhile).
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, 0x20)
            mstore(add(m, 0x20), 0x20)
            mstore(add(m, 0x40), 0x20)
            mstore(add(m, 0x60), base)
            mstore(add(m, 0x80), exponent)
            mstore(add(m, 0xa0), P)
            ok := staticcall(gas(), 0x05, m, 0xc0, m, 0x20)
            result := mload(m)
        }
        require(ok, ModexpFailed());
    }
}
