"""Compile and deploy ezkl-generated Solidity verifiers at run time.

Every model has its own ``Halo2Verifier`` (same contract name, different verifying key), so the
verifiers cannot all live in the Ape project's ``contracts/`` folder. They are compiled here
with the same solc that ape-solidity uses (py-solc-x's ``solc-v<version>`` in ``~/.solcx`` or
``$SOLCX_BINARY_PATH``; offline that is the solc-js shim) through ``--standard-json`` (the shim
cannot do ``--combined-json``), and deployed through Ape from an in-memory ``ContractType``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spotcheck.errors import ChainError, ToolchainError

log = logging.getLogger(__name__)

VERIFIER_CONTRACT = "Halo2Verifier"
#: EIP-170 runtime code limit; a larger verifier cannot be deployed on mainnet-like chains.
MAX_RUNTIME_BYTES = 24_576
#: ``IHalo2Verifier``'s ABI (what every generated verifier exposes).
IHALO2_VERIFIER_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "verifyProof",
        "stateMutability": "nonpayable",
        "inputs": [
            {"name": "proof", "type": "bytes", "internalType": "bytes"},
            {"name": "instances", "type": "uint256[]", "internalType": "uint256[]"},
        ],
        "outputs": [{"name": "", "type": "bool", "internalType": "bool"}],
    }
]


@dataclass(frozen=True)
class CompiledVerifier:
    abi: list[dict[str, Any]]
    bytecode: bytes  # creation code
    runtime_bytecode: bytes
    solc_version: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "contractName": VERIFIER_CONTRACT,
                "abi": self.abi,
                "bytecode": "0x" + self.bytecode.hex(),
                "runtimeBytecode": "0x" + self.runtime_bytecode.hex(),
                "solcVersion": self.solc_version,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> CompiledVerifier:
        data = json.loads(text)
        return cls(
            abi=data["abi"],
            bytecode=bytes.fromhex(data["bytecode"].removeprefix("0x")),
            runtime_bytecode=bytes.fromhex(data["runtimeBytecode"].removeprefix("0x")),
            solc_version=data["solcVersion"],
        )


def _solc() -> tuple[Path, str]:
    import solcx
    from solcx.install import get_executable

    versions = solcx.get_installed_solc_versions()
    if not versions:
        raise ToolchainError(
            "no solc installed for py-solc-x: run `make setup` (installs the shim)"
        )
    latest = max(versions)
    return Path(get_executable(latest)), str(latest)


def compile_verifier(sol_path: Path, evm_version: str = "cancun") -> CompiledVerifier:
    """Compile a generated verifier (optimizer on, 200 runs: what ape-config.yaml uses)."""
    import solcx

    binary, solc_version = _solc()
    source = sol_path.read_text()
    standard_input = {
        "language": "Solidity",
        "sources": {sol_path.name: {"content": source}},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "evmVersion": evm_version,
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
            },
        },
    }
    try:
        out = solcx.compile_standard(standard_input, solc_binary=binary)
    except Exception as err:  # solcx.exceptions.SolcError and subprocess failures
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ToolchainError(f"solc could not compile {sol_path.name}: {first}") from err
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise ToolchainError(f"solc error in {sol_path.name}: {errors[0].get('message')}")
    contract = out["contracts"][sol_path.name][VERIFIER_CONTRACT]
    compiled = CompiledVerifier(
        abi=contract["abi"],
        bytecode=bytes.fromhex(contract["evm"]["bytecode"]["object"]),
        runtime_bytecode=bytes.fromhex(contract["evm"]["deployedBytecode"]["object"]),
        solc_version=solc_version,
    )
    if len(compiled.runtime_bytecode) > MAX_RUNTIME_BYTES:
        log.warning(
            "verifier runtime code is %d bytes, above the EIP-170 limit of %d: it deploys on anvil "
            "(code size limit disabled) but not on a public chain",
            len(compiled.runtime_bytecode),
            MAX_RUNTIME_BYTES,
        )
    return compiled


def contract_container(compiled: CompiledVerifier) -> Any:
    """An Ape ``ContractContainer`` for the verifier (deploy with ``account.deploy(...)``)."""
    from ape.contracts import ContractContainer
    from ethpm_types import ContractType

    contract_type = ContractType.model_validate(
        {
            "contractName": VERIFIER_CONTRACT,
            "abi": compiled.abi,
            "deploymentBytecode": {"bytecode": "0x" + compiled.bytecode.hex()},
            "runtimeBytecode": {"bytecode": "0x" + compiled.runtime_bytecode.hex()},
        }
    )
    return ContractContainer(contract_type)


def deploy_verifier(compiled: CompiledVerifier, sender: Any) -> Any:
    """Deploy through Ape from ``sender`` (an Ape account); returns the contract instance."""
    try:
        return sender.deploy(contract_container(compiled))
    except Exception as err:  # Ape raises a family of transaction errors
        raise ChainError(f"verifier deployment failed: {err}") from err
