"""Throughput of the economics Monte-Carlo (jobs per second) and the CLI's default sweep.

Run: ``.venv/bin/python benchmarks/bench_economics_simulation.py``
"""

from __future__ import annotations

import time

from spotcheck import economics as econ
from spotcheck import simulation as sim


def main() -> None:
    params = (1.0, 1.25, 100.0, 0.1)
    p = 2 * econ.min_sampling_probability(*params)
    for n_jobs in (200_000, 2_000_000, 10_000_000):
        start = time.perf_counter()
        res = sim.simulate(*params, p, sim.cheat(1.0), n_jobs=n_jobs, seed=0)
        elapsed = time.perf_counter() - start
        print(
            f"simulate {n_jobs:>11,} jobs: {elapsed:6.3f} s "
            f"({n_jobs / elapsed / 1e6:5.1f} M jobs/s), "
            f"profit {res.mean_profit:+.4f} +- {res.half_width:.4f} "
            f"(closed form {res.closed_form_profit:+.4f})"
        )
    start = time.perf_counter()
    bound = econ.min_sampling_probability(*params)
    sim.sweep(
        *params,
        [0.5 * bound, bound, 2 * bound, econ.DEFAULTS.sampling],
        [sim.HONEST, sim.cheat(0.1), sim.cheat(1.0)],
    )
    print(f"default CLI sweep (12 cells x 200,000 jobs): {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
