"""Example models shipped with the library: a tiny MLP (4 -> 8 -> 2: Gemm, ReLU, Gemm).

Fixed-seed weights and deterministic bytes, so the demo, the tests and a new user's first
`spotcheck model onboard` all share one entry in the content-addressed artifact cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OPSET = 13
IR_VERSION = 8
#: Part of the model bytes (and so of its cache key): keep it stable.
PRODUCER = "spotcheck-tests"


def _weights(seed: int, *shape: int, scale: float = 0.5) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


def tiny_mlp_bytes() -> bytes:
    """The serialized ONNX model (deterministic)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], transB=1),
    ]
    inits = {
        "W1": _weights(1, 8, 4),
        "b1": _weights(2, 8, scale=0.1),
        "W2": _weights(3, 2, 8),
        "b2": _weights(4, 2, scale=0.1),
    }
    graph = helper.make_graph(
        nodes,
        "tiny_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=PRODUCER
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def write_tiny_mlp(folder: Path) -> Path:
    """Write ``folder/tiny_mlp.onnx`` (only if its bytes changed) and return its path."""
    path = folder / "tiny_mlp.onnx"
    data = tiny_mlp_bytes()
    if not path.is_file() or path.read_bytes() != data:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return path
