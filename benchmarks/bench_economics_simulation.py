"""Throughput of the economics Monte-Carlo simulations (jobs per second) and the CLI's sweep.

Run: ``.venv/bin/python benchmarks/bench_economics_simulation.py``
"""

from __future__ import annotations

import time

from spotcheck import economics as econ
from spotcheck import simulation as sim
from spotcheck.economics_checks import CHECK_DEFAULTS


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

    for n_batches in (20_000, 100_000):
        start = time.perf_counter()
        node = sim.simulate_contract_node(mean_value=1.0, n_batches=n_batches, seed=0)
        elapsed = time.perf_counter() - start
        print(
            f"simulate_contract_node {node.jobs:>11,} jobs (batches of 64, selective): "
            f"{elapsed:6.3f} s ({node.jobs / elapsed / 1e6:5.1f} M jobs/s), profit "
            f"{node.profit.mean:+.4f} +- {node.profit.half_width:.4f} "
            f"(closed form {node.profit.closed_form:+.4f})"
        )
    for n_jobs in (2_000_000, 10_000_000):
        start = time.perf_counter()
        checks = sim.simulate_checks(CHECK_DEFAULTS, n_jobs=n_jobs, seed=0)
        elapsed = time.perf_counter() - start
        print(
            f"simulate_checks {n_jobs:>11,} jobs x 4 challengers: {elapsed:6.3f} s "
            f"({n_jobs / elapsed / 1e6:5.1f} M jobs/s), diligent "
            f"{checks.diligent.mean:+.4f} ({checks.diligent.sigmas_from_zero:.0f} SE from 0), "
            f"lazy {checks.lazy.mean:+.4f} ({checks.lazy.sigmas_from_zero:.0f} SE from 0)"
        )


if __name__ == "__main__":
    main()
