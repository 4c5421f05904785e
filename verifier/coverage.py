"""A circuit that covers the input domain: choose the domain, calibrate over it, check it.

Onboarding runs three steps around the artifact build:

1. :func:`prepare`: choose the float domain (the registrar's ``--domain LO HI``, the quantized
   ``--in-lo/--in-hi``, or by default the smallest and largest value of the calibration
   samples) and extend the calibration set with the box's corners and random points inside
   it, so ezkl picks scales and lookup ranges for every input a node may be sent (samples
   outside a registrar-given domain are clipped into it: nodes refuse such inputs anyway);
2. the caller builds the circuit (and keys) from :attr:`Prepared.calibration`, the file node
   operators and validators rebuild the same circuit from;
3. :func:`check` generates a witness and runs ezkl's mock prover (every constraint, no keys) at
   the domain's corners and at adversarial points (the tolerance search's worst inputs): a
   domain the circuit cannot cover is refused with one line saying what to change.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spotcheck.errors import ConfigError, ModelError, ProofError
from verifier import ezkl_backend, witness
from verifier.artifacts import (
    DEFAULT_CALIBRATION_SAMPLES,
    DEFAULT_FLOAT_DOMAIN,
    CircuitArtifacts,
    build_circuit,
    load_model_meta,
    normalize_calibration,
)
from verifier.domain import (
    InputDomain,
    corners,
    covering_calibration,
    float_domain_of,
)
from verifier.ezkl_backend import CircuitParams

log = logging.getLogger(__name__)

#: Random corners checked with the mock prover besides all-lo, all-hi and the alternations.
CHECK_RANDOM_CORNERS = 4
WHAT_TO_CHANGE = "shrink the domain (--domain LO HI or --in-lo/--in-hi) or raise --max-logrows"


@dataclass(frozen=True)
class Prepared:
    """The calibration to build from and the domain it covers."""

    calibration: np.ndarray  # registrar samples + covering points (what nodes rebuild from)
    float_lo: float
    float_hi: float
    registrar_samples: int
    quantized: tuple[int, int] | None = None  # --in-lo/--in-hi, at ``scale``
    scale: int | None = None
    source: str = "calibration"

    def domain(self, artifacts: CircuitArtifacts) -> InputDomain:
        """The quantized domain at the built circuit's input scale."""
        if self.quantized is not None:
            if artifacts.input_scale != self.scale:
                raise ConfigError(
                    f"the circuit's input scale moved from 2**{self.scale} to "
                    f"2**{artifacts.input_scale} with this domain; give it as floats (--domain)"
                )
            return InputDomain(*self.quantized, artifacts.input_scale)
        return InputDomain.from_floats(self.float_lo, self.float_hi, artifacts.input_scale)


def prepare(
    onnx_path: Path,
    calibration: np.ndarray | None,
    float_domain: tuple[float, float] | None = None,
    in_lo: int | None = None,
    in_hi: int | None = None,
    cache_root: Path | None = None,
    params: CircuitParams | None = None,
) -> Prepared:
    """Choose the domain and the covering calibration set (see the module docstring).

    With ``in_lo``/``in_hi`` (quantized units) the input scale is learned from a first circuit
    built over the float domain (circuit only, no keys), then the box is ``in_lo / 2**scale ..
    in_hi / 2**scale``; :meth:`Prepared.domain` refuses if the final scale differs.
    """
    if (in_lo is None) != (in_hi is None):
        raise ConfigError("give both --in-lo and --in-hi, or neither")
    if in_lo is not None and float_domain is not None:
        raise ConfigError("choose one of --domain and --in-lo/--in-hi")
    _, input_shape, _ = load_model_meta(Path(onnx_path))
    if calibration is None and float_domain is None and in_lo is None:
        # the default calibration already covers the default domain [-1, 1]
        cal = normalize_calibration(None, input_shape)
        lo, hi = DEFAULT_FLOAT_DOMAIN
        return Prepared(cal, lo, hi, DEFAULT_CALIBRATION_SAMPLES, source="default [-1, 1]")
    if calibration is None:
        cal = normalize_calibration(None, input_shape)[:DEFAULT_CALIBRATION_SAMPLES]
    else:
        cal = _registrar_samples(calibration, input_shape)
    registrar_samples = len(cal)
    source = "calibration"
    if float_domain is not None:
        lo, hi = float(float_domain[0]), float(float_domain[1])
        source = "registrar (floats)"
    elif calibration is not None:
        # the value range of the file (a covering file's corners included)
        lo, hi = float_domain_of(normalize_calibration(calibration, input_shape))
    else:
        lo, hi = DEFAULT_FLOAT_DOMAIN
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise ConfigError(f"input domain [{lo}, {hi}] is empty or not finite")
    if lo == hi:
        raise ConfigError(
            f"every calibration value is {lo}: give a domain (--domain LO HI) wider than a point"
        )
    if in_lo is None:
        # samples outside a registrar's domain are inputs nodes refuse: calibrate on them clipped
        cover = covering_calibration(np.clip(cal, lo, hi), lo, hi)
        return Prepared(cover, lo, hi, registrar_samples, source=source)
    assert in_hi is not None
    probe = build_circuit(onnx_path, covering_calibration(cal, lo, hi), cache_root, None, params)
    scale = probe.input_scale
    InputDomain(in_lo, in_hi, scale)  # checks order and size
    flo, fhi = in_lo / 2.0**scale, in_hi / 2.0**scale
    return Prepared(
        covering_calibration(np.clip(cal, flo, fhi), flo, fhi),
        flo,
        fhi,
        registrar_samples,
        quantized=(in_lo, in_hi),
        scale=scale,
        source="registrar (quantized)",
    )


def _registrar_samples(calibration: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """The registrar's own samples (a covering file onboarding wrote: without its points)."""
    from verifier.domain import covering_points, is_covering

    cal = normalize_calibration(calibration, input_shape)  # checked and covering
    raw = np.asarray(calibration, dtype=np.float64).reshape(-1, cal.shape[1])
    if is_covering(raw):
        return raw[: len(raw) - len(covering_points(0.0, 1.0, raw.shape[1]))]
    return raw


@dataclass(frozen=True)
class CoverageReport:
    domain: InputDomain
    points: int
    seconds: float

    def describe(self) -> str:
        return (
            f"coverage: witness + mock prover OK at {self.points} corner and adversarial "
            f"inputs of {self.domain.describe()} ({self.seconds:.1f} s)"
        )


def check_points(domain: InputDomain, input_len: int, seed: int = 0) -> list[list[int]]:
    """The corners :func:`check` always tries."""
    rows = corners(domain.lo, domain.hi, input_len, CHECK_RANDOM_CORNERS, seed)
    return [[int(v) for v in row] for row in rows]


def check(
    artifacts: CircuitArtifacts,
    domain: InputDomain,
    adversarial: Iterable[Sequence[int]] = (),
    mock: bool = True,
) -> CoverageReport:
    """Refuse (ModelError, one line) unless the circuit proves at the domain's corners and at
    ``adversarial`` inputs: a witness exists and every constraint holds (ezkl mock)."""
    start = time.perf_counter()
    points = check_points(domain, artifacts.input_len) + [list(q) for q in adversarial]
    for i, q in enumerate(points):
        bad = domain.first_outside(q)
        if bad is not None:
            raise ConfigError(f"check point {i} element {bad} = {q[bad]} is outside the domain")
        label = _label(q, domain, i)
        with tempfile.TemporaryDirectory(prefix="spotcheck-cover-") as tmp:
            try:
                _, witness_path = witness.generate(artifacts, q, Path(tmp))
                if mock:
                    ezkl_backend.mock(witness_path, artifacts.compiled_path)
            except ProofError as err:
                raise ModelError(
                    f"the circuit does not cover the domain {domain.describe()}: at {label} "
                    f"{err}; {WHAT_TO_CHANGE}"
                ) from err
    report = CoverageReport(domain, len(points), time.perf_counter() - start)
    log.info(report.describe())
    return report


def _label(q: Sequence[int], domain: InputDomain, i: int) -> str:
    if all(v == domain.lo for v in q):
        return "the all-inLo corner"
    if all(v == domain.hi for v in q):
        return "the all-inHi corner"
    if all(v in (domain.lo, domain.hi) for v in q):
        return f"corner {i}"
    return f"adversarial input {i}"


__all__ = [
    "CoverageReport",
    "Prepared",
    "check",
    "check_points",
    "prepare",
]
