"""The network run's PNG plots (matplotlib, headless)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from network.analysis import expected_detection
from network.load import JobRecord
from network.sampler import Sample, tick_means


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _marks(ax: Any, t0: float, marks: list[tuple[float, str]]) -> None:
    for t, label in marks:
        ax.axvline(t - t0, color="grey", linestyle=":", linewidth=1)
        ax.annotate(
            label,
            (t - t0, 1),
            xycoords=("data", "axes fraction"),
            rotation=90,
            fontsize=7,
            va="top",
            ha="right",
            color="grey",
        )


def resources(samples: list[Sample], t0: float, marks: list[tuple[float, str]], path: Path) -> None:
    """RSS and SQLite size of every process over time."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
    series: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        series[s.name].append(s)
    cmap = plt.get_cmap("tab20")
    for i, (name, rows) in enumerate(sorted(series.items())):
        style = "--" if name.startswith("challenger") else "-"
        color = cmap(i % 20)  # one colour per process in both panels
        ts = [r.t - t0 for r in rows]
        rss = [(r.rss or 0) / 2**20 for r in rows]
        ax1.plot(ts, rss, style, color=color, label=name, linewidth=1)
        if name != "anvil":
            ax2.plot(ts, [r.db_bytes / 2**20 for r in rows], style, color=color, linewidth=1)
    ax1.set_ylabel("RSS (MiB)")
    ax2.set_ylabel("SQLite incl. WAL (MiB)")
    ax2.set_xlabel("seconds since the load started")
    for ax in (ax1, ax2):
        _marks(ax, t0, marks)
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=6, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def service(
    records: list[JobRecord],
    samples: list[Sample],
    t0: float,
    marks: list[tuple[float, str]],
    path: Path,
    bin_s: float = 5.0,
) -> None:
    """Jobs/s and /infer latency; challenger lag behind the head and tick time."""
    plt = _plt()
    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    bins: dict[int, list[float]] = defaultdict(list)
    for r in records:
        bins[int((r.t - t0) // bin_s)].append(r.latency_s)
    xs = sorted(bins)
    axes[0].plot([x * bin_s for x in xs], [len(bins[x]) / bin_s for x in xs], label="jobs/s")
    ax_lat = axes[0].twinx()
    ax_lat.plot(
        [x * bin_s for x in xs],
        [1000 * sorted(bins[x])[len(bins[x]) // 2] for x in xs],
        color="tab:orange",
        linewidth=1,
        label="median /infer latency (ms)",
    )
    axes[0].set_ylabel("answered jobs/s")
    ax_lat.set_ylabel("median latency per job (ms)", color="tab:orange")
    by_name: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        if s.name.startswith("challenger"):
            by_name[s.name].append(s)
    for name, rows in sorted(by_name.items()):
        axes[1].plot(
            [r.t - t0 for r in rows], [r.lag_blocks or 0 for r in rows], label=name, linewidth=1
        )
        pts = [(t - t0, v) for t, v in tick_means(rows)]
        axes[2].plot([p[0] for p in pts], [1000 * p[1] for p in pts], label=name, linewidth=1)
    axes[1].set_ylabel("challenger blocks behind head")
    axes[2].set_ylabel("challenger tick (ms, mean per sample)")
    axes[2].set_xlabel("seconds since the load started")
    for ax in axes:
        _marks(ax, t0, marks)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def detection(result: dict[str, Any], path: Path) -> None:
    """Measured detection rate per cheater (Wilson 95 %) against 1-(1-p)^k."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    k = int(result["challengers"])
    ps = [i / 200 for i in range(201)]
    ax.plot(ps, [expected_detection(p, k) for p in ps], label=f"1-(1-p)^{k} (independent)")
    ax.plot(ps, ps, ":", color="grey", label="one challenger: p")
    p = float(result["p"])
    for name, row in result["nodes"].items():
        if not row["corrupted_closed"]:
            continue
        lo, hi = row["wilson95"]
        ax.errorbar(
            [p],
            [row["rate"]],
            yerr=[[row["rate"] - lo], [hi - row["rate"]]],
            fmt="o",
            capsize=4,
            label=f"{name} ({row['disputed']}/{row['corrupted_closed']})",
        )
    ax.set_xlabel("sampling rate p of each challenger")
    ax.set_ylabel("corrupted leaves disputed")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
