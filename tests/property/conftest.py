"""These tests compile the contracts: Ape recompiles all of them after any source change."""

from spotcheck.toolchain import ensure_full_compile

ensure_full_compile()
