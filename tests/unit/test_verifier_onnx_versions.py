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


@pytest.mark.parametrize("name", ["N", "batch"])
def test_modelBuild_symbolicDimensionNotBatchSize_isOneLineBeforeEzkl(
    tmp_path: Path, name: str
) -> None:
    """Until ezkl_backend passes the names as ``PyRunArgs.variables`` (not built yet, see
    docs/model-registrars.md "Symbolic dimensions"), such a model is refused in one line
    instead of ezkl's ``Undetermined symbol in expression: <Sym0>``."""
    from click.testing import CliRunner

    from spotcheck.cli import cli

    model = _mlp()
    for tensor in [*model.graph.input, *model.graph.output]:
        tensor.type.tensor_type.shape.dim[0].dim_param = name
    path = _save(model, tmp_path / "sym.onnx")
    cache = tmp_path / "cache"
    result = CliRunner().invoke(
        cli, ["model", "build", str(path), "--dev-srs", "--cache", str(cache)]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, ModelError)  # spotcheck's main prints "error: <it>"
    assert str(result.exception) == (
        f"sym.onnx: the input's symbolic dimension {name!r} cannot be built yet (ezkl 23 "
        "resolves only 'batch_size'); rename it to 'batch_size' or fix it to 1 in the ONNX file"
    )
    assert not cache.exists()


def test_symbolicDimensionNamedBatchSize_isNotRefused(tmp_path: Path) -> None:
    from verifier.cli import check_symbolic_dims

    model = _mlp()
    for tensor in [*model.graph.input, *model.graph.output]:
        tensor.type.tensor_type.shape.dim[0].dim_param = "batch_size"
    check_symbolic_dims(_save(model, tmp_path / "ok.onnx"))  # no error
