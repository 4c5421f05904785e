"""A model's input domain: the box ``[inLo, inHi]`` (quantized units, every element) that the
registry stores, the node and the challenger enforce, and the circuit and ``tau`` must cover.

The registrar chooses the domain from the calibration data (by default the smallest and the
largest value of any element of any sample) or sets it. Before ezkl calibrates, the
calibration set is extended with points that cover the whole box (:func:`covering_calibration`:
its corners and uniform random points), so that the circuit's scales and lookup ranges are
chosen for every input a node may be sent, not only for the registrar's samples.

:func:`in_domain` is the one membership rule for Python (nodes refuse, challengers never
dispute, inputs it rejects); ``JobManager.requestJob`` applies the same rule on-chain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spotcheck.encoding import BN254_R, MAX_EXACT_FLOAT_INT
from spotcheck.errors import ConfigError

#: Random points over the box added to the calibration set (besides the corners).
DEFAULT_COVER_RANDOM = 32
#: Corners with a random lo/hi pattern added besides all-lo, all-hi and the two alternations.
DEFAULT_COVER_CORNERS = 8
#: Seed of the covering points: part of the calibration set, so of the circuit's cache key.
COVER_SEED = 0x5C0FE


def in_domain(input_q: Sequence[int], lo: int, hi: int) -> int | None:
    """Index of the first element outside ``[lo, hi]``, or ``None`` if all are inside.

    The Python twin of ``JobManager.requestJob``'s ``InputOutOfDomain(index, value, inLo,
    inHi)``: nodes refuse such inputs, challengers never dispute them.
    """
    for i, v in enumerate(input_q):
        if not lo <= v <= hi:
            return i
    return None


@dataclass(frozen=True)
class InputDomain:
    """``[lo, hi]`` in quantized units at ``scale`` (``q = round(x * 2**scale)``)."""

    lo: int
    hi: int
    scale: int

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ConfigError(f"input domain is empty: inLo {self.lo} > inHi {self.hi}")
        bound = min(BN254_R // 2, MAX_EXACT_FLOAT_INT - 1)
        if self.lo < -bound or self.hi > bound:
            raise ConfigError(f"input domain [{self.lo}, {self.hi}] exceeds |q| < 2**53")

    @property
    def float_lo(self) -> float:
        return self.lo / 2.0**self.scale

    @property
    def float_hi(self) -> float:
        return self.hi / 2.0**self.scale

    def first_outside(self, input_q: Sequence[int]) -> int | None:
        return in_domain(input_q, self.lo, self.hi)

    def describe(self) -> str:
        return (
            f"[{self.lo}, {self.hi}] at scale 2**{self.scale} "
            f"(floats [{self.float_lo:.6g}, {self.float_hi:.6g}])"
        )

    @classmethod
    def from_floats(cls, lo: float, hi: float, scale: int) -> InputDomain:
        """The largest quantized box inside the float box ``[lo, hi]``."""
        return cls(math.ceil(lo * 2.0**scale), math.floor(hi * 2.0**scale), scale)


def float_domain_of(calibration: np.ndarray) -> tuple[float, float]:
    """The default domain: the smallest and largest value of any element of any sample."""
    arr = np.asarray(calibration, dtype=np.float64)
    if arr.size == 0:
        raise ConfigError("calibration is empty: cannot choose an input domain")
    return float(arr.min()), float(arr.max())


def corners(lo: float, hi: float, input_len: int, random_corners: int, seed: int) -> np.ndarray:
    """All-lo, all-hi, the two lo/hi alternations and ``random_corners`` random corners."""
    alt = np.arange(input_len) % 2 == 0
    rows = [
        np.full(input_len, lo),
        np.full(input_len, hi),
        np.where(alt, lo, hi),
        np.where(alt, hi, lo),
    ]
    rng = np.random.default_rng(seed)
    rows += [np.where(rng.random(input_len) < 0.5, lo, hi) for _ in range(random_corners)]
    return np.asarray(rows, dtype=np.float64)


def covering_points(
    lo: float,
    hi: float,
    input_len: int,
    random_points: int = DEFAULT_COVER_RANDOM,
    random_corners: int = DEFAULT_COVER_CORNERS,
    seed: int = COVER_SEED,
) -> np.ndarray:
    """Corners of the box and uniform random points inside it, shape (samples, input_len)."""
    rng = np.random.default_rng(seed + 1)
    inside = rng.uniform(lo, hi, size=(random_points, input_len))
    return np.concatenate([corners(lo, hi, input_len, random_corners, seed), inside])


def covering_calibration(
    calibration: np.ndarray,
    lo: float,
    hi: float,
    random_points: int = DEFAULT_COVER_RANDOM,
    random_corners: int = DEFAULT_COVER_CORNERS,
) -> np.ndarray:
    """The registrar's samples followed by the box's covering points (deterministic)."""
    cal = np.asarray(calibration, dtype=np.float64)
    cover = covering_points(lo, hi, cal.shape[1], random_points, random_corners)
    return np.concatenate([cal, cover])


def is_covering(calibration: np.ndarray) -> bool:
    """Whether ``calibration`` already ends with the covering points of its own value range
    (what :func:`ensure_covering` and onboarding produce)."""
    cal = np.asarray(calibration, dtype=np.float64)
    lo, hi = float(cal.min()), float(cal.max())
    cover = covering_points(lo, hi, cal.shape[1])
    return len(cal) > len(cover) and np.array_equal(cal[-len(cover) :], cover)


def ensure_covering(calibration: np.ndarray) -> np.ndarray:
    """``calibration`` covering its own value range ``[min, max]`` (the default domain):
    unchanged if it already does (idempotent), else with the covering points appended.

    Every builder applies it (``artifacts.normalize_calibration``), so a node or validator
    that rebuilds from the registrar's raw calibration file, or from the covering file
    onboarding writes, gets the registrar's circuit."""
    cal = np.asarray(calibration, dtype=np.float64)
    if is_covering(cal):
        return cal
    lo, hi = float(cal.min()), float(cal.max())
    return covering_calibration(cal, lo, hi)
