"""Choose ``tau``: a bound on ``|honest float output - circuit output|`` over the whole input
domain, not over a sample of it.

An honest node commits ``quantize(onnxruntime(q / 2**s_in))``; the contract accepts it iff every
element is within ``tau`` of the circuit's output for ``q``. ``tau`` must hold for every ``q``
in the registered domain ``[inLo, inHi]``, or an attacker who finds one input beyond it can
have an honest node slashed. Two measurements set it:

- **sound** (``verifier.error_bound``): where every op of the graph is in the supported set, a
  bound of the deviation propagated through the graph with interval arithmetic (weight
  quantization, every rescale of the circuit, float32 rounding of the node, the output
  rounding). It holds for every input of the domain.
- **empirical** (always run): an adversarial search over the domain: the calibration samples,
  the box's corners, uniform random points, rounding-edge inputs (inputs moved so that the
  node's float output sits at ``k + 0.5`` output units, where its rounding and the circuit's
  part ways) and a hill climb on the deviation from the worst points found.

``tau = max(sound bound, worst found) + slack`` when the sound bound applies, else
``tau = ceil(worst found * (1 + margin)) + slack`` (an empirical tau: the report says so).
The slack covers float differences between hardware a single machine cannot observe.
``exact=True`` gives ``tau = 0``: nodes must then commit the circuit's own output.

``tau`` is also the room a dishonest node has, so keep it as small as honest hardware allows
(docs/model-registrars.md).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from spotcheck.encoding import dequantize, quantize
from spotcheck.errors import ConfigError, ModelError, ProofError
from verifier.artifacts import CircuitArtifacts
from verifier.domain import InputDomain, corners, float_domain_of
from verifier.onnx_runner import OnnxRunner
from verifier.witness import witness_output

log = logging.getLogger(__name__)

DEFAULT_MARGIN = 0.5
DEFAULT_SLACK = 2
DEFAULT_RANDOM_SAMPLES = 200
DEFAULT_CORNERS = 16
DEFAULT_EDGE_SAMPLES = 40
DEFAULT_CLIMB_STEPS = 300
ONE_SAMPLE_WARNING = (
    "the calibration file has a single sample: one sample is not a domain. The domain was "
    "taken from its smallest and largest element; check it (--domain / --in-lo / --in-hi)."
)

KIND_SOUND = "sound"
KIND_EMPIRICAL = "empirical"


@dataclass(frozen=True)
class Deviation:
    """Worst deviation seen and the input that produced it (for the report)."""

    max_units: int
    mean_units: float
    worst_input_q: tuple[int, ...]
    samples: int


@dataclass(frozen=True)
class ToleranceReport:
    calibration_samples: int
    random_samples: int
    max_deviation: int  # the worst |honest - circuit| the search found, output units
    mean_deviation: float
    max_abs_output: int
    output_scale: int
    margin: float
    slack: int
    exact: bool
    tau: int
    domain: InputDomain | None = None
    kind: str = KIND_EMPIRICAL
    sound_bound: int | None = None
    sound_note: str = ""
    corner_samples: int = 0
    edge_samples: int = 0
    climb_samples: int = 0
    worst_input_q: tuple[int, ...] = field(default=(), repr=False)
    warnings: tuple[str, ...] = ()

    @property
    def samples(self) -> int:
        return (
            self.calibration_samples
            + self.random_samples
            + self.corner_samples
            + self.edge_samples
            + self.climb_samples
        )

    @property
    def relative_deviation(self) -> float:
        """max deviation as a share of the largest output magnitude seen."""
        return self.max_deviation / self.max_abs_output if self.max_abs_output else 0.0

    def describe(self) -> str:
        unit = 2.0**-self.output_scale
        if self.exact:
            rule = "exact mode: tau = 0 (nodes must commit the circuit output)"
        elif self.kind == KIND_SOUND:
            rule = f"tau = max({self.sound_bound}, {self.max_deviation}) + {self.slack}"
        else:
            rule = f"tau = ceil({self.max_deviation} * (1 + {self.margin:g})) + {self.slack}"
        if self.sound_bound is not None:
            sound = f"{self.sound_bound} units ({self.sound_bound * unit:.3g}), every input"
        else:
            sound = f"not available: {self.sound_note}"
        lines = [f"WARNING: {w}" for w in self.warnings]
        lines += [
            f"tolerance over {self.samples} inputs of the domain "
            f"({self.calibration_samples} calibration, {self.corner_samples} corners, "
            f"{self.random_samples} random, {self.edge_samples} rounding edges, "
            f"{self.climb_samples} hill climb)",
        ]
        if self.domain is not None:
            lines.append(f"  domain              {self.domain.describe()}")
        lines += [
            f"  output scale        2**{self.output_scale} (1 unit = {unit:.3g})",
            f"  tau kind            {self.kind}",
            f"  sound bound         {sound}",
            f"  worst deviation     {self.max_deviation} units "
            f"({self.max_deviation * unit:.3g}) found by the search",
            f"  mean deviation      {self.mean_deviation:.3f} units",
            f"  largest |output|    {self.max_abs_output} units "
            f"(worst deviation = {100 * self.relative_deviation:.4f} % of it)",
            f"  {rule}",
            f"  tau                 {self.tau} units ({self.tau * unit:.3g})",
        ]
        return "\n".join(lines)


def choose_tau(
    max_deviation: int, margin: float = DEFAULT_MARGIN, slack: int = DEFAULT_SLACK
) -> int:
    """``ceil(max_deviation * (1 + margin)) + slack`` (the empirical rule)."""
    if max_deviation < 0 or margin < 0 or slack < 0:
        raise ConfigError(
            f"deviation, margin and slack must be >= 0 ({max_deviation}, {margin}, {slack})"
        )
    return math.ceil(max_deviation * (1 + margin)) + slack


def random_inputs_in_range(calibration: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` inputs uniform in [min, max] of the calibration set, per element.

    Not a domain (with one calibration sample every row is that sample); kept for tests that
    want inputs near the calibration data. ``tau`` uses :func:`random_inputs_in_domain`.
    """
    low, high = calibration.min(axis=0), calibration.max(axis=0)
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=(count, calibration.shape[1]))


def random_inputs_in_domain(
    domain: InputDomain, input_len: int, count: int, seed: int
) -> list[list[int]]:
    """``count`` quantized inputs, each element uniform over ``[lo, hi]``."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(domain.lo, domain.hi, size=(count, input_len), endpoint=True)
    return [[int(v) for v in row] for row in rows]


def corner_inputs(domain: InputDomain, input_len: int, count: int, seed: int) -> list[list[int]]:
    """All-lo, all-hi, the two alternations and ``count`` random corners (quantized)."""
    rows = corners(domain.lo, domain.hi, input_len, count, seed)
    return [[int(v) for v in row] for row in rows]


def default_domain(artifacts: CircuitArtifacts) -> InputDomain:
    """The domain chosen from the circuit's calibration set (smallest and largest value)."""
    lo, hi = float_domain_of(artifacts.calibration_inputs())
    return InputDomain.from_floats(lo, hi, artifacts.input_scale)


def honest_output_q(
    runner: OnnxRunner, artifacts: CircuitArtifacts, input_q: list[int]
) -> list[int]:
    """What an honest node commits: onnxruntime on the dequantized input, quantized."""
    x = dequantize(input_q, artifacts.input_scale)
    return quantize(runner.run(x), artifacts.output_scale)


class _Search:
    """Evaluates inputs (onnxruntime vs witness) and remembers the worst."""

    def __init__(self, artifacts: CircuitArtifacts, domain: InputDomain, runner: OnnxRunner):
        self.a, self.domain, self.runner = artifacts, domain, runner
        self.unit = float(2**artifacts.output_scale)
        self.worst, self.worst_q = -1, [0] * artifacts.input_len
        self.total, self.count, self.max_abs, self.evaluations = 0, 0, 0, 0
        self.scores: list[tuple[int, float, list[int]]] = []
        self.last_edge = 0.5

    def scaled_float(self, q: list[int]) -> np.ndarray:
        return self.runner.run(dequantize(q, self.a.input_scale)) * self.unit

    def edge_distance(self, q: list[int], scaled: np.ndarray | None = None) -> float:
        """How far the float output's elements are from a rounding edge (k + 0.5 units)."""
        y = self.scaled_float(q) if scaled is None else scaled
        return float(np.abs(np.mod(y, 1.0) - 0.5).min())

    def evaluate(self, q: list[int]) -> int:
        try:
            circuit = witness_output(self.a, q)
        except ProofError as err:
            raise ModelError(
                f"the circuit has no witness at an in-domain input (first elements {q[:4]}): "
                f"{err}; shrink the domain or raise --max-logrows"
            ) from err
        y = self.scaled_float(q)
        honest = np.floor(np.abs(y) + 0.5) * np.sign(y)
        diffs = np.abs(honest.astype(np.int64) - np.asarray(circuit, dtype=np.int64))
        dev = int(diffs.max()) if diffs.size else 0
        self.total += int(diffs.sum())
        self.count += int(diffs.size)
        self.max_abs = max(self.max_abs, max((abs(v) for v in circuit), default=0))
        self.evaluations += 1
        if dev > self.worst:
            self.worst, self.worst_q = dev, list(q)
        self.last_edge = self.edge_distance(q, y)
        self.scores.append((dev, -self.last_edge, list(q)))
        return dev

    def evaluate_all(self, rows: Iterable[list[int]]) -> int:
        n = 0
        for q in rows:
            self.evaluate(q)
            n += 1
        return n

    def clip(self, q: Iterable[int]) -> list[int]:
        return [min(self.domain.hi, max(self.domain.lo, int(v))) for v in q]

    def rounding_edge(self, q: list[int], rng: np.random.Generator, tries: int = 64) -> list[int]:
        """Move ``q`` by small steps (onnxruntime only, cheap) until an output element sits
        as close as possible to ``k + 0.5`` output units."""
        best, best_d = list(q), self.edge_distance(q)
        for _ in range(tries):
            cand = list(best)
            i = int(rng.integers(len(cand)))
            cand[i] += int(rng.choice([-3, -2, -1, 1, 2, 3]))
            cand = self.clip(cand)
            d = self.edge_distance(cand)
            if d < best_d:
                best, best_d = cand, d
        return best

    def climb(self, steps: int, rng: np.random.Generator, starts: int = 3) -> int:
        """Greedy hill climb on (deviation, closeness to a rounding edge) from the worst
        points found so far; ``steps`` witness evaluations in all."""
        ranked = sorted(self.scores, key=lambda s: (s[0], s[1]), reverse=True)[:starts]
        if not ranked:
            return 0
        lo, hi, n = self.domain.lo, self.domain.hi, self.a.input_len
        span = max(hi - lo, 1)
        done = 0
        per_start = max(steps // len(ranked), 1)
        for dev, neg_edge, q in ranked:
            cur, cur_key = list(q), (dev, neg_edge)
            for _ in range(per_start):
                cand = list(cur)
                for i in rng.choice(n, size=int(rng.integers(1, min(n, 3) + 1)), replace=False):
                    move = int(rng.integers(5))
                    if move == 0:
                        cand[i] = lo
                    elif move == 1:
                        cand[i] = hi
                    else:
                        size = int(2 ** rng.integers(0, max(1, int(math.log2(span)))))
                        cand[i] += size if rng.random() < 0.5 else -size
                cand = self.clip(cand)
                key = (self.evaluate(cand), -self.last_edge)
                done += 1
                if key >= cur_key:
                    cur, cur_key = cand, key
        return done


def search_deviation(
    artifacts: CircuitArtifacts,
    domain: InputDomain,
    random_samples: int = DEFAULT_RANDOM_SAMPLES,
    corner_count: int = DEFAULT_CORNERS,
    edge_samples: int = DEFAULT_EDGE_SAMPLES,
    climb_steps: int = DEFAULT_CLIMB_STEPS,
    seed: int = 0,
    runner: OnnxRunner | None = None,
) -> tuple[_Search, dict[str, int]]:
    """Adversarial search of the worst deviation over ``domain``. Raises ModelError if the
    circuit has no witness at one of the inputs it visits."""
    runner = runner or OnnxRunner(artifacts.onnx_path)
    s = _Search(artifacts, domain, runner)
    rng = np.random.default_rng(seed)
    n = artifacts.input_len
    counts: dict[str, int] = {}
    cal = [s.clip(quantize(row, artifacts.input_scale)) for row in artifacts.calibration_inputs()]
    counts["calibration"] = s.evaluate_all(cal)
    counts["corners"] = s.evaluate_all(corner_inputs(domain, n, corner_count, seed))
    counts["random"] = s.evaluate_all(random_inputs_in_domain(domain, n, random_samples, seed + 1))
    bases = random_inputs_in_domain(domain, n, edge_samples, seed + 2)
    counts["edges"] = s.evaluate_all(s.rounding_edge(q, rng) for q in bases)
    counts["climb"] = s.climb(climb_steps, rng)
    return s, counts


def measure_deviation(
    artifacts: CircuitArtifacts,
    inputs: np.ndarray,
    runner: OnnxRunner | None = None,
    on_sample: Callable[[int], None] | None = None,
) -> tuple[Deviation, int]:
    """Worst ``|onnxruntime - circuit|`` over float ``inputs``; also the largest |output|."""
    runner = runner or OnnxRunner(artifacts.onnx_path)
    worst, total, count, max_abs = -1, 0, 0, 0
    worst_q: list[int] = []
    for i, row in enumerate(inputs):
        q = quantize(row, artifacts.input_scale)
        circuit = witness_output(artifacts, q)
        honest = honest_output_q(runner, artifacts, q)
        diffs = [abs(a - b) for a, b in zip(honest, circuit, strict=True)]
        total += sum(diffs)
        count += len(diffs)
        max_abs = max(max_abs, *(abs(v) for v in circuit))
        if max(diffs) > worst:
            worst, worst_q = max(diffs), q
        if on_sample is not None:
            on_sample(i)
    return Deviation(max(worst, 0), total / max(count, 1), tuple(worst_q), len(inputs)), max_abs


def measure(
    artifacts: CircuitArtifacts,
    random_samples: int = DEFAULT_RANDOM_SAMPLES,
    margin: float = DEFAULT_MARGIN,
    slack: int = DEFAULT_SLACK,
    exact: bool = False,
    seed: int = 0,
    domain: InputDomain | None = None,
    corner_count: int = DEFAULT_CORNERS,
    edge_samples: int = DEFAULT_EDGE_SAMPLES,
    climb_steps: int = DEFAULT_CLIMB_STEPS,
    sound: bool = True,
    registrar_samples: int | None = None,
) -> ToleranceReport:
    """Bound the deviation over ``domain`` (default: the calibration set's value range) and
    choose ``tau``. ``registrar_samples`` is how many samples the registrar's calibration file
    had (one triggers the warning); default: the circuit's calibration set."""
    from verifier import error_bound

    domain = domain or default_domain(artifacts)
    if domain.scale != artifacts.input_scale:
        raise ConfigError(
            f"domain at scale 2**{domain.scale}; the circuit's input scale is "
            f"2**{artifacts.input_scale}"
        )
    warnings: list[str] = []
    cal_count = len(artifacts.calibration_inputs())
    if (registrar_samples if registrar_samples is not None else cal_count) == 1:
        warnings.append(ONE_SAMPLE_WARNING)
        log.info("tau report warning: %s", ONE_SAMPLE_WARNING)
    search, counts = search_deviation(
        artifacts, domain, random_samples, corner_count, edge_samples, climb_steps, seed
    )
    worst = max(search.worst, 0)
    bound = error_bound.bound(artifacts, domain) if sound else None
    sound_units = bound.units if bound is not None and bound.units is not None else None
    note = "" if bound is None else bound.note
    if not sound:
        note = "not computed (disabled)"
    if sound_units is not None and sound_units < worst:
        # The propagation missed something of the circuit: never trust it below a witness.
        log.error("sound bound %d below the worst deviation found %d: ignored", sound_units, worst)
        note = f"computed {sound_units} < worst found {worst}: model of the circuit incomplete"
        sound_units = None
    if exact:
        tau, kind = 0, (KIND_SOUND if sound_units is not None else KIND_EMPIRICAL)
    elif sound_units is not None:
        tau, kind = max(sound_units, worst) + slack, KIND_SOUND
    else:
        tau, kind = choose_tau(worst, margin, slack), KIND_EMPIRICAL
    if slack < 0 or margin < 0:
        raise ConfigError(f"margin and slack must be >= 0 ({margin}, {slack})")
    report = ToleranceReport(
        calibration_samples=counts["calibration"],
        random_samples=counts["random"],
        max_deviation=worst,
        mean_deviation=search.total / max(search.count, 1),
        max_abs_output=search.max_abs,
        output_scale=artifacts.output_scale,
        margin=margin,
        slack=slack,
        exact=exact,
        tau=tau,
        domain=domain,
        kind=kind,
        sound_bound=sound_units,
        sound_note=note,
        corner_samples=counts["corners"],
        edge_samples=counts["edges"],
        climb_samples=counts["climb"],
        worst_input_q=tuple(search.worst_q),
        warnings=tuple(warnings),
    )
    if exact and worst > 0:
        log.warning(
            "exact mode with max deviation %d: nodes must commit witness outputs, not float ones",
            worst,
        )
    return report
