"""Regenerate the example model and its calibration file: ``python examples/make_example.py``.

``model.onnx`` is the library's tiny MLP (``verifier.examples``: 4 inputs -> 8 -> 2 outputs;
Gemm, ReLU, Gemm; fixed-seed weights, opset 13, saved with IR version 8 so the pinned
onnxruntime loads it). ``calibration.json`` holds 16 input samples in [-1, 1] in the format
``spotcheck model onboard --calibration`` reads (``{"inputs": [[...], ...]}``). Both are
deterministic: ``tests/unit/test_verifier_examples.py`` checks the committed files equal this
script's output. The same bytes and samples are what the tests and the demo onboard, so the
artifact cache (``.spotcheck-cache/``) is shared with them.

``--check`` compares instead of writing and exits 1 when a committed file differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(HERE.parent))

from verifier.examples import tiny_mlp_bytes  # noqa: E402

#: 16 samples of 4 elements, values k/100 for k in [-100, 99]: spread over [-1, 1).
CALIBRATION_SAMPLES = [[(i * 37 % 200 - 100) / 100 for i in range(k, k + 4)] for k in range(16)]


def calibration_bytes() -> bytes:
    """``calibration.json``: one sample per line, so a diff shows which changed."""
    rows = ",\n".join("  " + json.dumps(sample) for sample in CALIBRATION_SAMPLES)
    return ('{"inputs": [\n' + rows + "\n]}\n").encode()


def files() -> dict[str, bytes]:
    """Every generated file of ``examples/`` by name, with its exact bytes."""
    return {"model.onnx": tiny_mlp_bytes(), "calibration.json": calibration_bytes()}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, data in files().items():
        path = HERE / name
        if check:
            if not path.is_file() or path.read_bytes() != data:
                stale.append(name)
        else:
            path.write_bytes(data)
            print(f"wrote {path} ({len(data)} bytes)")
    if stale:
        print(f"out of date: {', '.join(stale)} (run python examples/make_example.py)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
