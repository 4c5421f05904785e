"""The example model in ``examples/``: the committed files are exactly what
``examples/make_example.py`` writes, and the pinned onnxruntime and calibration reader take them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from spotcheck.toolchain import PROJECT_ROOT
from verifier.datafiles import load_calibration
from verifier.examples import tiny_mlp_bytes
from verifier.onnx_runner import OnnxRunner

EXAMPLES = PROJECT_ROOT / "examples"


def _make_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_example", EXAMPLES / "make_example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committedExampleFiles_equalTheScriptsOutput() -> None:
    generated = _make_example().files()
    assert set(generated) == {"model.onnx", "calibration.json"}
    for name, data in generated.items():
        assert (EXAMPLES / name).read_bytes() == data, f"examples/{name} is stale"


def test_makeExampleCheck_failsOnAChangedFile(tmp_path: Path) -> None:
    module = _make_example()
    assert module.main(["--check"]) == 0
    original = (EXAMPLES / "calibration.json").read_bytes()
    module.HERE = tmp_path  # a folder holding a changed copy
    (tmp_path / "model.onnx").write_bytes(tiny_mlp_bytes())
    (tmp_path / "calibration.json").write_bytes(original.replace(b"-1.0", b"-0.9"))
    assert module.main(["--check"]) == 1


def test_exampleScript_runsAsAScriptFromAnotherFolder(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "make_example.py"), "--check"],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_exampleModel_isTheLibrarysTinyMlp_andLoadsInOnnxruntime() -> None:
    assert (EXAMPLES / "model.onnx").read_bytes() == tiny_mlp_bytes()
    runner = OnnxRunner(EXAMPLES / "model.onnx")
    assert runner.input_shape == (1, 4) and runner.input_len == 4
    assert runner.run(np.zeros(4)).shape == (2,)


def test_exampleCalibration_readsAs16SamplesOf4InMinusOneToOne() -> None:
    samples = load_calibration(EXAMPLES / "calibration.json")
    assert samples.shape == (16, 4)
    assert samples.min() >= -1.0 and samples.max() <= 1.0
