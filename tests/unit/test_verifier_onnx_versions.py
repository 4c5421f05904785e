"""Models that should load and did not: a file saved with an IR version newer than onnxruntime
reads (the pinned ``onnx`` writes IR 14, onnxruntime 1.31 reads at most 13), and symbolic batch
dimensions with any name. Issue 13."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from spotcheck.errors import ModelError
from verifier.examples import tiny_mlp_bytes
from verifier.onnx_runner import OnnxRunner

X = np.array([0.1, -0.3, 0.7, 0.2])


def _mlp() -> onnx.ModelProto:
    return onnx.load_from_string(tiny_mlp_bytes())


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def test_irVersion14_loadsLoweredInMemory_sameOutputs_fileUnchanged(tmp_path: Path) -> None:
    model = _mlp()
    model.ir_version = 14  # what onnx 1.23's helper.make_model writes by default
    path = _save(model, tmp_path / "ir14.onnx")
    before = path.read_bytes()
    lowered = OnnxRunner(path).run(X)
    reference = OnnxRunner(_save(_mlp(), tmp_path / "ir8.onnx")).run(X)
    np.testing.assert_array_equal(lowered, reference)
    assert path.read_bytes() == before  # its hash, the registered onnxHash, is untouched


def test_opsetThatNeedsANewerIr_failsWithOneLineSayingWhatToDo(tmp_path: Path) -> None:
    model = _mlp()
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("", 28))  # needs IR 14
    model.ir_version = 14
    path = _save(model, tmp_path / "opset28.onnx")
    with pytest.raises(ModelError) as err:
        OnnxRunner(path)
    message = str(err.value)
    assert "\n" not in message
    assert "IR version 14" in message and "reads at most IR 13" in message
    assert "convert_version" in message


def test_notAnIrProblem_keepsOnnxruntimesOwnFirstLine(tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"onnxruntime cannot load junk\.onnx"):
        OnnxRunner(path)


@pytest.mark.parametrize("name", ["N", "batch", "unk__0"])
def test_symbolicBatchDimension_anyName_isFixedToOneAndNamed(tmp_path: Path, name: str) -> None:
    model = _mlp()
    for tensor in [*model.graph.input, *model.graph.output]:
        dim = tensor.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = name
    runner = OnnxRunner(_save(model, tmp_path / f"{name}.onnx"))
    assert runner.input_shape == (1, 4)
    assert runner.symbolic_dims == (name,)
    assert runner.run(X).shape == (2,)


@pytest.mark.parametrize("name", ["N", "batch_size"])
def test_ezklSettings_symbolicDimensionOfAnyName_isFixedToOne(tmp_path: Path, name: str) -> None:
    """ezkl 23 resolves only the symbolic names in ``PyRunArgs.variables`` (default
    ``batch_size``; any other failed with ``Undetermined symbol in expression``): the model's
    own names are passed, each fixed to 1."""
    import json

    from verifier.ezkl_backend import CircuitParams, gen_settings

    model = _mlp()
    for tensor in [*model.graph.input, *model.graph.output]:
        tensor.type.tensor_type.shape.dim[0].dim_param = name
    settings = tmp_path / "settings.json"
    gen_settings(_save(model, tmp_path / "sym.onnx"), settings, CircuitParams())
    assert json.loads(settings.read_text())["run_args"]["variables"] == [[name, 1]]
