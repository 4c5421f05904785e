"""A sound bound of ``|honest node output - circuit output|`` over a whole input domain.

For graphs whose every op is in :data:`SUPPORTED_OPS`, the deviation is propagated through
the graph with interval arithmetic, per element, in the spirit of TAO (arXiv 2510.16028):

- ideal values: the exact real-number result of the ONNX model on the domain's box
  (intervals ``[lo, hi]`` per element);
- circuit error ``e_c``: how far ezkl's fixed-point value (``q / 2**scale``) can be from the
  ideal one. A linear op ``y = A x + b`` runs in the circuit as ``Aq x_c + bq`` with weights
  quantized at ``param_scale`` (``Aq = A + dA``), so ``|y_c - y| <= |Aq| e_x + |dA| |x| + |db|``;
  every rescale (ezkl's rebase when a product's scale exceeds ``scale_rebase_multiplier *
  max(input_scale, param_scale)``, the division of an average pool, a lookup's output) adds
  half a unit of the scale it lands on (ezkl rounds to nearest, :data:`RESCALE_UNITS`);
  Relu, MaxPool, Flatten and Reshape are 1-Lipschitz and exact on integers;
- float error ``e_f``: how far onnxruntime's float32 result can be from the ideal one
  (``gamma_n = n u / (1 - n u)``, ``u = 2**-24``, times ``|A| |x| + |b|`` for a sum of n
  products in any order, plus the input errors carried through ``|A|``);
- the node's output rounding: half a unit.

BatchNormalization (eval) is the linear map ``a x + c`` per channel, with a full half unit of
``param_scale`` charged to ``a`` and ``c`` (ezkl folds them in its own arithmetic); LeakyRelu
multiplies by ``alpha`` at ``param_scale`` like ezkl. Batches above 1 are block diagonal.
The float side assumes IEEE float32 arithmetic in any summation order (FMA included): not
TF32 or half precision, which the slack of ``tau`` does not cover either.

The bound is ``floor(0.5 + 2**s_out * max(e_c + e_f))`` output units. The input itself carries
no error: nodes run the model on ``q / 2**s_in``, exactly the circuit's input.

The ezkl side is a model of what ezkl 23 does (scales, rebase rule, bias quantization); the
propagated output scale is checked against the circuit's settings, and the caller never uses
a bound below a deviation it observed (``tolerance.measure``). Anything outside the supported
set returns ``units=None`` with the reason: tau is then empirical.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from verifier.artifacts import CircuitArtifacts, read_settings
from verifier.domain import InputDomain

SUPPORTED_OPS = (
    "Gemm",
    "BatchNormalization",
    "LeakyRelu",
    "MatMul",
    "Conv",
    "Relu",
    "MaxPool",
    "AveragePool",
    "Flatten",
    "Reshape",
    "Identity",
    "Sigmoid",
    "Tanh",
)
U32 = 2.0**-24  # float32 unit roundoff
#: Error of one circuit rescale (rebase division, average-pool division, lookup output), in
#: units of the scale it lands on. ezkl 23 rounds to nearest: the tiny MLP's witness matched
#: round-to-nearest rebases on 60 of 60 random inputs, floor division on 14.
RESCALE_UNITS = 0.5
#: Absolute float32 error bound of onnxruntime's sigmoid/tanh (values in [-1, 1]).
ACTIVATION_FLOAT_ERROR = 8 * U32


class UnsupportedGraphError(Exception):
    """The graph leaves the supported set (the message says where)."""


@dataclass(frozen=True)
class SoundBound:
    units: int | None  # None: not available (see note)
    note: str = ""


@dataclass
class _T:
    """A tensor: shape, ideal-value interval, circuit error, float error (all per element),
    and the circuit's fixed-point scale."""

    shape: tuple[int, ...]
    lo: np.ndarray
    hi: np.ndarray
    ec: np.ndarray
    ef: np.ndarray
    scale: int

    @property
    def mag(self) -> np.ndarray:
        return np.maximum(np.abs(self.lo), np.abs(self.hi))


def _gamma(n: int) -> float:
    return n * U32 / (1 - n * U32)


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _conv_matrix(
    w: np.ndarray, in_shape: tuple[int, ...], strides: list[int], pads: list[int], dil: list[int]
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Dense matrix of a group-1 N-d convolution with kernel ``w`` (batch: block diagonal)."""
    if in_shape[0] != 1:
        one, out = _conv_matrix(w, (1, *in_shape[1:]), strides, pads, dil)
        return np.kron(np.eye(in_shape[0]), one), (in_shape[0], *out[1:])
    m_out, c_in = w.shape[0], w.shape[1]
    ks = w.shape[2:]
    spatial = in_shape[2:]
    rank = len(spatial)
    out_sp = tuple(
        (spatial[d] + pads[d] + pads[d + rank] - dil[d] * (ks[d] - 1) - 1) // strides[d] + 1
        for d in range(rank)
    )
    n_in, n_o = int(np.prod(spatial)), int(np.prod(out_sp))
    mat = np.zeros((m_out * n_o, c_in * n_in))
    for o_flat, o in enumerate(itertools.product(*(range(s) for s in out_sp))):
        rows = np.arange(m_out) * n_o + o_flat
        for kk in itertools.product(*(range(k) for k in ks)):
            idx = [o[d] * strides[d] - pads[d] + kk[d] * dil[d] for d in range(rank)]
            if any(i < 0 or i >= spatial[d] for d, i in enumerate(idx)):
                continue
            i_flat = int(np.ravel_multi_index(idx, spatial))
            cols = np.arange(c_in) * n_in + i_flat
            mat[np.ix_(rows, cols)] += w[(slice(None), slice(None), *kk)]  # type: ignore[arg-type]
    return mat, (1, m_out, *out_sp)


class _Propagator:
    def __init__(self, settings: dict[str, Any]) -> None:
        ra = settings["run_args"]
        self.param_scale = int(ra["param_scale"])
        self.input_scale = int(ra["input_scale"])
        self.multiplier = int(ra.get("scale_rebase_multiplier") or 1)
        self.global_scale = max(self.input_scale, self.param_scale)

    def _quantize_err(self, values: np.ndarray) -> np.ndarray:
        scaled = values * 2.0**self.param_scale
        return np.abs(scaled - np.round(scaled)) / 2.0**self.param_scale

    def linear(
        self,
        x: _T,
        mat: np.ndarray,
        bias: np.ndarray,
        dmat: np.ndarray,
        out_shape: tuple[int, ...],
        bias_err: float | None = None,
    ) -> _T:
        """``y = mat @ x + bias`` (``dmat``: |weight quantization error| per matrix entry;
        ``bias_err``: a bound of the bias's quantization error, default the exact one)."""
        pos, neg = np.maximum(mat, 0), np.minimum(mat, 0)
        lo = pos @ x.lo + neg @ x.hi + bias
        hi = pos @ x.hi + neg @ x.lo + bias
        absm = np.abs(mat)
        db = self._quantize_err(bias) if bias_err is None else bias_err
        ec = (absm + dmat) @ x.ec + dmat @ x.mag + db
        scale = x.scale + self.param_scale
        if scale > self.multiplier * self.global_scale:
            scale = self.global_scale
            ec = ec + RESCALE_UNITS * 2.0**-scale
        n_terms = int(np.count_nonzero(mat, axis=1).max(initial=0)) + 1
        ef = absm @ x.ef + _gamma(n_terms) * (absm @ (x.mag + x.ef) + np.abs(bias))
        return _T(out_shape, lo, hi, ec, ef, scale)

    def weighted(self, x: _T, w: np.ndarray, bias: np.ndarray, build: Any) -> _T:
        mat, out_shape = build(w)
        dmat, _ = build(self._quantize_err(w))
        return self.linear(x, mat, bias, np.abs(dmat), out_shape)


def _windows(
    in_shape: tuple[int, ...], ks: list[int], strides: list[int], pads: list[int]
) -> tuple[list[np.ndarray], tuple[int, ...]]:
    """Input indices (flat) of each output element of an N-d pool (padding cells dropped)."""
    c = in_shape[0] * in_shape[1]  # NCHW is contiguous: batches x channels windows
    spatial = in_shape[2:]
    rank = len(spatial)
    out_sp = tuple(
        (spatial[d] + pads[d] + pads[d + rank] - ks[d]) // strides[d] + 1 for d in range(rank)
    )
    n_in = int(np.prod(spatial))
    wins = []
    for ch in range(c):
        for o in itertools.product(*(range(s) for s in out_sp)):
            idx = []
            for kk in itertools.product(*(range(k) for k in ks)):
                pos = [o[d] * strides[d] - pads[d] + kk[d] for d in range(rank)]
                if all(0 <= p < spatial[d] for d, p in enumerate(pos)):
                    idx.append(ch * n_in + int(np.ravel_multi_index(pos, spatial)))
            wins.append(np.asarray(idx))
    return wins, (in_shape[0], in_shape[1], *out_sp)


def _propagate(model: Any, settings: dict[str, Any], domain: InputDomain) -> _T:
    from onnx import numpy_helper

    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in graph.initializer}
    unsupported = sorted({n.op_type for n in graph.node} - set(SUPPORTED_OPS))
    if unsupported:
        raise UnsupportedGraphError(f"ops outside the supported set: {', '.join(unsupported)}")
    p = _Propagator(settings)
    inp = next(i for i in graph.input if i.name not in inits)
    shape = tuple(d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim)
    n = int(np.prod(shape))
    tensors: dict[str, _T] = {
        inp.name: _T(
            shape,
            np.full(n, domain.float_lo),
            np.full(n, domain.float_hi),
            np.zeros(n),
            np.zeros(n),
            domain.scale,
        )
    }
    for node in graph.node:
        op = node.op_type
        x = tensors.get(node.input[0]) if node.input else None
        if x is None:
            raise UnsupportedGraphError(f"{op} {node.name!r}: first input is not an activation")
        for extra in node.input[1:]:
            if extra and extra not in inits and op not in ("Reshape",):
                raise UnsupportedGraphError(
                    f"{op} {node.name!r}: input {extra!r} is not a constant"
                )
        if op in ("Gemm", "MatMul"):
            w = inits[node.input[1]]
            if op == "Gemm":
                if _attr(node, "alpha", 1.0) != 1.0 or _attr(node, "beta", 1.0) != 1.0:
                    raise UnsupportedGraphError("Gemm with alpha or beta != 1")
                if _attr(node, "transA", 0):
                    raise UnsupportedGraphError("Gemm with transA")
                if _attr(node, "transB", 0):
                    w = w.T
            if w.ndim != 2 or len(x.shape) != 2 or x.shape[1] != w.shape[0]:
                raise UnsupportedGraphError(f"{op} on shapes {x.shape} x {w.shape}")
            rows, m = x.shape[0], w.shape[1]
            bias = np.zeros((rows, m))
            if len(node.input) > 2 and node.input[2]:
                bias = np.broadcast_to(inits[node.input[2]], (rows, m))
            eye = np.eye(rows)
            y = p.weighted(
                x,
                w,
                bias.ravel().astype(np.float64),
                lambda k, m=m, eye=eye: (np.kron(eye, k.T), (eye.shape[0], m)),
            )
        elif op == "Conv":
            w = inits[node.input[1]]
            rank = w.ndim - 2
            if _attr(node, "group", 1) != 1 or _attr(node, "auto_pad", b"NOTSET") not in (
                b"NOTSET",
                "NOTSET",
            ):
                raise UnsupportedGraphError("Conv with groups or auto_pad")
            strides = list(_attr(node, "strides", [1] * rank))
            pads = list(_attr(node, "pads", [0] * 2 * rank))
            dil = list(_attr(node, "dilations", [1] * rank))
            b = inits[node.input[2]] if len(node.input) > 2 and node.input[2] else None

            def build(k: np.ndarray, xs=x.shape, st=strides, pd=pads, dl=dil) -> Any:  # type: ignore[no-untyped-def]
                return _conv_matrix(k, xs, st, pd, dl)

            mat0, out_shape = build(w)
            n_o = int(np.prod(out_shape[2:]))
            bias = (
                np.zeros(mat0.shape[0]) if b is None else np.tile(np.repeat(b, n_o), out_shape[0])
            )
            y = p.weighted(x, w, bias, build)
        elif op == "BatchNormalization":
            if len(node.output) != 1 or _attr(node, "training_mode", 0):
                raise UnsupportedGraphError("BatchNormalization in training mode")
            # eval mode: y = a x + c per channel, a = gamma / sqrt(var + eps), c = beta - a mean
            gamma, beta, mean, var = (inits[name] for name in node.input[1:5])
            a = gamma / np.sqrt(var + float(_attr(node, "epsilon", 1e-5)))
            c = beta - a * mean
            per = int(np.prod(x.shape[2:]))
            diag = np.tile(np.repeat(a, per), x.shape[0])
            bias = np.tile(np.repeat(c, per), x.shape[0])
            # ezkl folds a and c in its own float arithmetic: charge a full half unit of
            # param_scale per constant (whatever exact value it rounded), and float32's
            # own folding to the float side (4 ulps of |a x|)
            half = 0.5 * 2.0**-p.param_scale
            y = p.linear(
                x, np.diag(diag), bias, np.diag(np.full(diag.size, half)), x.shape, bias_err=half
            )
            y.ef = y.ef + 4 * U32 * (np.abs(diag) * x.mag + np.abs(bias))
        elif op == "LeakyRelu":
            alpha = float(_attr(node, "alpha", 0.01))
            half = 0.5 * 2.0**-p.param_scale
            lo = np.where(x.lo >= 0, x.lo, alpha * x.lo)
            hi = np.where(x.hi >= 0, x.hi, alpha * x.hi)
            ec = max(1.0, abs(alpha) + half) * x.ec + half * x.mag
            scale = x.scale + p.param_scale  # ezkl multiplies by alpha at param_scale
            if scale > p.multiplier * p.global_scale:
                scale = p.global_scale
                ec = ec + RESCALE_UNITS * 2.0**-scale
            ef = max(1.0, abs(alpha)) * x.ef + U32 * (x.mag + x.ef)
            y = _T(x.shape, lo, hi, ec, ef, scale)
        elif op == "Relu":
            y = _T(x.shape, np.maximum(x.lo, 0), np.maximum(x.hi, 0), x.ec, x.ef, x.scale)
        elif op in ("Flatten", "Reshape", "Identity"):
            if op == "Flatten":
                axis = int(_attr(node, "axis", 1))
                out: tuple[int, ...] = (int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))
            elif op == "Reshape":
                target = [int(v) for v in inits[node.input[1]].astype(np.int64)]
                out = tuple(
                    int(v)
                    for v in np.empty(x.shape)
                    .reshape([x.shape[i] if v == 0 else v for i, v in enumerate(target)])
                    .shape
                )
            else:
                out = x.shape
            y = _T(out, x.lo, x.hi, x.ec, x.ef, x.scale)
        elif op in ("MaxPool", "AveragePool"):
            ks = list(_attr(node, "kernel_shape", []))
            rank = len(ks)
            strides = list(_attr(node, "strides", [1] * rank))
            pads = list(_attr(node, "pads", [0] * 2 * rank))
            if _attr(node, "ceil_mode", 0) or any(d != 1 for d in _attr(node, "dilations", [1])):
                raise UnsupportedGraphError(f"{op} with ceil_mode or dilations")
            if op == "AveragePool" and any(pads) and not _attr(node, "count_include_pad", 0):
                raise UnsupportedGraphError("AveragePool with padding excluded from the count")
            wins, out_shape = _windows(x.shape, ks, strides, pads)
            if op == "MaxPool":
                y = _T(
                    out_shape,
                    np.array([x.lo[w].max() for w in wins]),
                    np.array([x.hi[w].max() for w in wins]),
                    np.array([x.ec[w].max() for w in wins]),
                    np.array([x.ef[w].max() for w in wins]),
                    x.scale,
                )
            else:
                k = float(np.prod(ks))
                ec = np.array([x.ec[w].sum() / k for w in wins]) + RESCALE_UNITS * 2.0**-x.scale
                mag = np.array([(x.mag[w] + x.ef[w]).sum() / k for w in wins])
                ef = np.array([x.ef[w].sum() / k for w in wins]) + _gamma(int(k) + 1) * mag
                y = _T(
                    out_shape,
                    np.array([x.lo[w].sum() / k for w in wins]),
                    np.array([x.hi[w].sum() / k for w in wins]),
                    ec,
                    ef,
                    x.scale,
                )
        elif op in ("Sigmoid", "Tanh"):
            fn, lip = (
                ((lambda v: 1 / (1 + np.exp(-v))), 0.25) if op == "Sigmoid" else (np.tanh, 1.0)
            )
            y = _T(
                x.shape,
                fn(x.lo),
                fn(x.hi),
                lip * x.ec + RESCALE_UNITS * 2.0**-x.scale + ACTIVATION_FLOAT_ERROR,
                lip * x.ef + ACTIVATION_FLOAT_ERROR,
                x.scale,
            )
        else:  # pragma: no cover - filtered above
            raise UnsupportedGraphError(op)
        tensors[node.output[0]] = y
    outs = [tensors[o.name] for o in graph.output]
    return outs[0] if len(outs) == 1 else _concat(outs)


_FIELDS = ("lo", "hi", "ec", "ef")


def _concat(outs: list[_T]) -> _T:
    if len({o.scale for o in outs}) != 1:
        raise UnsupportedGraphError("outputs at different scales")
    lo, hi, ec, ef = (
        np.concatenate([getattr(o, f) for o in outs]) for f in ("lo", "hi", "ec", "ef")
    )
    return _T((sum(int(np.prod(o.shape)) for o in outs),), lo, hi, ec, ef, outs[0].scale)


def bound(artifacts: CircuitArtifacts, domain: InputDomain) -> SoundBound:
    """The sound bound (output units) over ``domain``, or ``units=None`` and why not."""
    import onnx

    settings = read_settings(artifacts.settings_path)
    try:
        out = _propagate(onnx.load(str(artifacts.onnx_path)), settings, domain)
    except UnsupportedGraphError as err:
        return SoundBound(None, str(err))
    except (KeyError, IndexError, ValueError) as err:  # a graph shape the propagation misreads
        return SoundBound(None, f"graph not understood ({type(err).__name__}: {err})")
    if out.scale != artifacts.output_scale:
        return SoundBound(
            None,
            f"propagated output scale 2**{out.scale} differs from the circuit's "
            f"2**{artifacts.output_scale} (the rescale model does not match this circuit)",
        )
    worst = float(np.max(out.ec + out.ef)) * 2.0**out.scale
    return SoundBound(math.floor(0.5 + worst * (1 + 1e-9)), "")
