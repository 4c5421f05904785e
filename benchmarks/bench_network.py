"""A network run with many actors (issue 14): one anvil, real ``spotcheck node run`` and
``spotcheck challenger run`` processes, a dApp load generator, kill -9 of a node and a
challenger mid-run (restarted), and one reorg below the services' confirmation depth.

    .venv/bin/python benchmarks/bench_network.py --jobs 3000 --duration 150   # short
    .venv/bin/python benchmarks/bench_network.py                             # full soak

Roles: node 0 is honest (the generator's reference answers), then one cheating node per
``--cheat-rates`` entry (DISHONEST MODE at that rate), then a withholding node (its listings
answer 503 and it never reveals a leaf: challengers must use leaf requests), the rest honest.
Each challenger has its own account, state folder and VRF key (registered in the CheckPool).

It prints and writes ``<out>/network.json`` and PNG plots: gas per job, jobs/s, challenger
lag, detection rate against p with its Wilson interval, commit-to-slash time, slashed nodes,
RSS and SQLite size of every process over time, challenger tick time, and missed or duplicate
actions after the kills. Every verdict line is computed from what happened.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
# ``network`` is this folder's package (a ``benchmarks`` package of site-packages shadows ours)
sys.path.insert(0, str(Path(__file__).resolve().parent))

from network import analysis, plots  # noqa: E402
from network.chain import Chain, Event  # noqa: E402
from network.cluster import Cluster, ClusterConfig, NodeSpec, Service  # noqa: E402
from network.load import JobRecord, LoadGenerator  # noqa: E402
from network.sampler import Sampler  # noqa: E402

T0 = time.monotonic()


def say(line: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {line}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=100_000, help="jobs the dApp posts (at most)")
    ap.add_argument("--duration", type=float, default=1800.0, help="load phase cap (seconds)")
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--challengers", type=int, default=5)
    ap.add_argument("--cheat-rates", default="0.02,0.05", help="one cheating node per rate")
    ap.add_argument("--no-withholder", action="store_true", help="no withholding node")
    ap.add_argument("--sampling", type=float, default=0.1, help="each challenger's p")
    ap.add_argument("--threads", type=int, default=8, help="load generator threads")
    ap.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="jobs/s the dApp keeps to (0: as fast as the nodes answer); a soak sets it so that "
        "--jobs takes at least --duration's 30 minutes",
    )
    ap.add_argument(
        "--request-batch",
        type=int,
        default=1,
        help="jobs per HTTP request (>1 needs the node's batched requests)",
    )
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--batch-interval", type=float, default=3.0)
    ap.add_argument("--challenge-window", type=int, default=60)
    ap.add_argument("--proof-window", type=int, default=15)
    ap.add_argument("--confirmations", type=int, default=3)
    ap.add_argument("--reorg-depth", type=int, default=2, help="0: no reorg")
    ap.add_argument("--no-kills", action="store_true", help="no kill -9")
    ap.add_argument(
        "--no-paid-checks",
        action="store_true",
        help="do not register the challengers' VRF keys in the CheckPool",
    )
    ap.add_argument("--sample-interval", type=float, default=5.0)
    ap.add_argument("--drain-timeout", type=float, default=300.0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-network-output")
    ap.add_argument(
        "--plots-dir",
        type=Path,
        default=None,
        help="also copy the PNGs here (docs/ for the committed figures)",
    )
    args = ap.parse_args(argv)
    if args.reorg_depth >= args.confirmations and args.reorg_depth:
        ap.error("--reorg-depth must stay below --confirmations")
    return args


def node_specs(args: argparse.Namespace) -> list[NodeSpec]:
    rates = [float(r) for r in args.cheat_rates.split(",") if r.strip()]
    specs = [NodeSpec("node0")]
    specs += [NodeSpec(f"node{1 + i}", corrupt_rate=r) for i, r in enumerate(rates)]
    if not args.no_withholder:
        specs.append(NodeSpec(f"node{len(specs)}", withholding=True))
    if len(specs) > args.nodes:
        raise SystemExit(f"--nodes {args.nodes} is too few for {len(specs)} special nodes")
    specs += [NodeSpec(f"node{k}") for k in range(len(specs), args.nodes)]
    return specs


class Chaos:
    """kill -9 of one honest node and one challenger, each restarted after ``down_s``, and one
    reorg; each at its share of the load phase. Every action is timestamped."""

    def __init__(self, cluster: Cluster, chain: Chain, args: argparse.Namespace) -> None:
        self.cluster, self.chain = cluster, chain
        honest = [s for s in cluster.nodes if s.role == "honest"][1:]  # not the reference
        self.plan: list[tuple[float, str, Any]] = []
        if not args.no_kills and honest:
            self.plan.append((0.35, "kill", honest[len(honest) // 2]))
        if not args.no_kills and cluster.challengers:
            self.plan.append((0.5, "kill", cluster.challengers[min(1, args.challengers - 1)]))
        if args.reorg_depth:
            self.plan.append((0.65, "reorg", args.reorg_depth))
        self.down_s = 5.0
        self.log: list[dict[str, Any]] = []
        self._restarts: list[tuple[float, Service]] = []

    def tick(self, progress: float) -> None:
        while self.plan and progress >= self.plan[0][0]:
            _, what, target = self.plan.pop(0)
            if what == "kill":
                target.kill9()
                self.log.append({"t": time.time(), "action": "kill -9", "target": target.name})
                say(f"kill -9 {target.name}")
                self._restarts.append((time.monotonic() + self.down_s, target))
            else:
                info = self.chain.reorg(int(target))
                self.log.append({"t": time.time(), "action": "reorg", **info})
                say(
                    f"reorg: depth {info['depth']} at head {info['head']}, "
                    f"{info['replaced_blocks']} blocks replaced"
                )
        for due, svc in list(self._restarts):
            if time.monotonic() >= due:
                svc.start()
                self.log.append({"t": time.time(), "action": "restart", "target": svc.name})
                say(f"restarted {svc.name}")
                self._restarts.remove((due, svc))

    def finish(self) -> None:
        for _, svc in self._restarts:
            svc.start()
            self.log.append({"t": time.time(), "action": "restart", "target": svc.name})
        self._restarts.clear()


def committed_leaves(chain: Chain, start: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in chain.events("BatchCommitted", start):
        out[e.args["node"]] = out.get(e.args["node"], 0) + int(e.args["count"])
    return out


def drain(
    cluster: Cluster, chain: Chain, records: list[JobRecord], start: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Wait until every receipt's job is committed (or no leaf was committed for 30 s), every
    committed batch's challenge window closed, and every dispute and leaf request resolved or
    every cheating node slashed at least once (a node proves its disputes one after the other,
    so a long queue resolves long after the run), or the timeout."""
    t0 = time.monotonic()
    t_end = t0 + args.drain_timeout
    want: dict[str, int] = {}
    for r in records:
        addr = cluster.nodes[r.node].address
        want[addr] = want.get(addr, 0) + 1
    seen, changed = -1, time.monotonic()
    while time.monotonic() < t_end:
        have = committed_leaves(chain, start)
        if all(have.get(a, 0) >= n for a, n in want.items()):
            break
        if sum(have.values()) != seen:
            seen, changed = sum(have.values()), time.monotonic()
        elif time.monotonic() - changed > 30:
            break
        time.sleep(3)
    committed_s = time.monotonic() - t0
    deadlines = [e.args["challengeDeadline"] for e in chain.events("BatchCommitted", start)]
    last_deadline = max(deadlines, default=0)
    bad = {s.address for s in cluster.nodes if s.role != "honest"}
    open_disputes = open_requests = 0
    while time.monotonic() < t_end:
        now = chain.timestamp(chain.head())
        opened = {e.args["disputeId"] for e in chain.events("DisputeOpened", start)}
        closed = {e.args["disputeId"] for e in chain.events("DisputeSettled", start)}
        closed |= {e.args["disputeId"] for e in chain.events("DisputeDefended", start)}
        requested = {e.args["requestId"] for e in chain.events("LeafRequested", start)}
        answered = {e.args["requestId"] for e in chain.events("LeafRequestSettled", start)}
        answered |= {e.args["requestId"] for e in chain.events("LeafRevealed", start)}
        slashed = {e.args["node"] for e in chain.events("Slashed", start)}
        open_disputes, open_requests = len(opened - closed), len(requested - answered)
        # a revealed leaf stays disputable to its reveal's dispute deadline, past its batch's
        revealed = [e.args["disputeDeadline"] for e in chain.events("LeafRevealed", start)]
        last = max([last_deadline, *revealed])
        windows_closed = now > last + args.confirmations + 2
        resolved = not open_disputes and not open_requests
        if windows_closed and (resolved or bad <= slashed):
            break
        time.sleep(3)
    return {
        "all_committed_s": committed_s,
        "drain_s": time.monotonic() - t0,
        "timed_out": time.monotonic() >= t_end,
        "open_disputes_at_end": open_disputes,
        "open_leaf_requests_at_end": open_requests,
    }


def locate_jobs(
    cluster: Cluster, records: list[JobRecord], which: set[int]
) -> dict[tuple[int, int], int | None]:
    """The batch of every job the nodes in ``which`` served, and of every corrupted job, as
    each node's ``GET /v1/jobs/{id}`` says."""
    wanted = [r for r in records if r.node in which or r.corrupted]

    def one(r: JobRecord) -> tuple[tuple[int, int], int | None]:
        url = f"{cluster.nodes[r.node].http_url}/v1/jobs/{r.job_id}"
        for _ in range(3):
            try:
                answer = httpx.get(url, timeout=10)
                if answer.status_code == 404:
                    return (r.node, r.job_id), None
                batch = answer.json().get("batchId")
                return (r.node, r.job_id), None if batch is None else int(batch)
            except httpx.HTTPError:
                time.sleep(1)
        return (r.node, r.job_id), None

    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(one, wanted))


def challenger_journals(cluster: Cluster) -> dict[str, Any]:
    """Each challenger's own account of its work (``spotcheck challenger status --json``)."""
    out: dict[str, Any] = {}
    for s in cluster.challengers:
        try:
            text = cluster.run(
                "challenger", "status", "--config", str(s.workdir / "challenger.toml"), "--json"
            )
            out[s.name] = json.loads(text[text.index("{") :])
        except (RuntimeError, ValueError) as err:
            out[s.name] = {"error": str(err)}
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    specs = node_specs(args)
    cfg = ClusterConfig(
        nodes=specs,
        challengers=args.challengers,
        sampling=args.sampling,
        challenge_window=args.challenge_window,
        proof_window=args.proof_window,
        batch_size=args.batch_size,
        batch_interval_s=args.batch_interval,
        confirmations=args.confirmations,
        # every leaf of a window's batches is backed by a slash; generous for the soak
        node_stake_tokens=2_000_000,
        workdir=out / "run",
    )
    cluster = Cluster(cfg)
    try:
        return _run(args, cluster, out)
    finally:
        cluster.close()


def _run(args: argparse.Namespace, cluster: Cluster, out: Path) -> dict[str, Any]:
    say(f"anvil at {cluster.start_anvil()}")
    chain = Chain(cluster.rpc)
    model = cluster.setup_chain(say)
    start_block = chain.head()
    cluster.build_services()
    if not args.no_paid_checks:
        cluster.register_challengers()
        say(f"{args.challengers} challengers registered their own VRF keys in the CheckPool")
    cluster.start_services()
    for s in cluster.nodes:
        say(f"{s.name:9} {s.role:11} {s.address}  {s.http_url}")
    for s in cluster.challengers:
        say(f"{s.name:9} p={args.sampling:<9g} {s.address}")
    gen = LoadGenerator(
        [s.http_url for s in cluster.nodes],
        model.model_id,
        model.tau,
        threads=args.threads,
        request_batch=args.request_batch,
    )
    gen.rate = args.rate
    gen.calibrate(0)
    calibration = gen.calibration
    assert cluster.anvil is not None
    sampler = Sampler(cluster.services, args.sample_interval, cluster.anvil.pid)
    chaos = Chaos(cluster, chain, args)
    sampler.sample_once()
    sampler.start()
    load_t0 = time.time()
    worker = threading.Thread(target=gen.run, args=(args.jobs, args.duration), daemon=True)
    worker.start()
    last_print = 0.0
    while worker.is_alive():
        elapsed = time.time() - load_t0
        progress = max(elapsed / args.duration, gen.done() / args.jobs)
        chaos.tick(progress)
        if time.monotonic() - last_print >= 15:
            last_print = time.monotonic()
            lags = [
                s.lag_blocks
                for s in sampler.samples[-len(cluster.services) - 1 :]
                if s.lag_blocks is not None
            ]
            say(
                f"load: {gen.done():,} jobs ({gen.done() / max(elapsed, 1e-9):.0f}/s), "
                f"{gen.stats.refused} refused, {gen.stats.failed} failed; head "
                f"{chain.head()}; challenger lag {max(lags, default=0):g} blocks"
            )
        worker.join(0.5)
    chaos.tick(1.0)
    chaos.finish()
    stats = gen.stats
    say(
        f"load done: {len(stats.records):,} jobs in {stats.ended - stats.started:.1f} s; "
        "draining (commitments, windows, disputes)"
    )
    drained = drain(cluster, chain, stats.records, start_block, args)
    say(f"drained in {drained['drain_s']:.0f} s" + (" (TIMED OUT)" if drained["timed_out"] else ""))
    sampler.stop()
    killed = {k for k, s in enumerate(cluster.nodes) if s.kills}
    cheaters = {k for k, s in enumerate(cluster.nodes) if s.role == "cheater"}
    batch_of = locate_jobs(cluster, stats.records, killed | cheaters)
    journals = challenger_journals(cluster)
    end_block = chain.head()
    wall_to_chain = chain.timestamp(end_block) - time.time()
    names = [
        "BatchCommitted",
        "BatchFinalized",
        "DisputeOpened",
        "DisputeDefended",
        "DisputeSettled",
        "LeafRequested",
        "LeafRevealed",
        "LeafRequestSettled",
        "Slashed",
    ]
    events: dict[str, list[Event]] = {n: chain.events(n, start_block, end_block) for n in names}
    infos = [
        analysis.NodeInfo(s.name, s.role, s.address, spec.corrupt_rate, bool(s.kills))
        for s, spec in zip(cluster.nodes, cluster.cfg.nodes, strict=True)
    ]
    ts = analysis.Timestamps(chain)
    records = stats.records
    committed = sum(int(e.args["count"]) for e in events["BatchCommitted"])
    load_s = stats.ended - stats.started
    result: dict[str, Any] = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "model": asdict(model),
        "nodes": [
            {
                "name": i.name,
                "role": i.role,
                "address": i.address,
                "corrupt_rate": i.corrupt_rate,
                "killed": i.killed,
            }
            for i in infos
        ],
        "load": {
            "jobs_answered": len(records),
            "calibration_jobs": len(calibration),
            "refused_503": stats.refused,
            "failed": stats.failed,
            "errors": stats.errors,
            "seconds": load_s,
            "jobs_per_s": len(records) / load_s if load_s else float("nan"),
            "latency_ms_median": 1000 * analysis._quantile([r.latency_s for r in records], 0.5),
            "latency_ms_p99": 1000 * analysis._quantile([r.latency_s for r in records], 0.99),
            "corrupted_answers": sum(r.corrupted for r in records),
        },
        "chain": {
            "start_block": start_block,
            "end_block": end_block,
            "committed_leaves": committed,
            "batches": len(events["BatchCommitted"]),
            "committed_jobs_per_s": committed / (ts(end_block) - ts(start_block)),
        },
        "drain": drained,
        "chaos": chaos.log,
        "gas": analysis.gas(chain, events, committed, start_block, end_block),
        "detection": analysis.detection(
            records,
            infos,
            batch_of,
            events,
            ts(end_block) - args.confirmations,
            args.sampling,
            args.challengers,
        ),
        "slashing": analysis.slashing(
            events, infos, ts, {infos[r.node].name for r in records if r.corrupted}
        ),
        "node_accounting": analysis.node_accounting(
            [*records, *calibration], infos, batch_of, events
        ),
        "challenger_actions": analysis.challenger_actions(
            events, [(s.name, s.address) for s in cluster.challengers]
        ),
        "challenger_journals": journals,
        "missed_jobs": analysis.missed_jobs(
            journals,
            {(infos[r.node].address.lower(), r.job_id) for r in records if r.corrupted},
            analysis.down_windows(chaos.log, wall_to_chain),
            ts,
            {i.address.lower(): i.name for i in infos},
        ),
        "flatness": analysis.flatness(sampler.samples),
    }
    result["verdicts"] = verdicts(result, args)
    (out / "network.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "samples.json").write_text(json.dumps([asdict(s) for s in sampler.samples]))
    marks = [(c["t"], c["action"] + " " + str(c.get("target", ""))) for c in chaos.log]
    figs = {
        "network_resources.png": lambda p: plots.resources(sampler.samples, load_t0, marks, p),
        "network_service.png": lambda p: plots.service(records, sampler.samples, load_t0, marks, p),
        "network_detection.png": lambda p: plots.detection(result["detection"], p),
    }
    for name, draw in figs.items():
        draw(out / name)
        if args.plots_dir is not None:
            args.plots_dir.mkdir(parents=True, exist_ok=True)
            draw(args.plots_dir / name)
    return result


def verdicts(r: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each line: what was measured, the criterion, and whether it held."""
    sl, det, flat = r["slashing"], r["detection"], r["flatness"]
    acc, ch = r["node_accounting"], r["challenger_actions"]
    missed = sum(v["missed"] for v in acc.values())
    dup_nodes = sum(v["duplicates"] for v in acc.values())
    dup_ch = sum(v["duplicate_disputes"] + v["duplicate_leaf_requests"] for v in ch.values())
    mj = r["missed_jobs"]
    # a job the challenger disputed is dispute_open, then won or lost, in its journal
    disputed_states = ("dispute_open", "disputed", "won", "lost")
    disagree = {
        name: (sum(j.get("states", {}).get(k, 0) for k in disputed_states), ch[name]["disputes"])
        for name, j in r["challenger_journals"].items()
    }
    disagree = {n: v for n, v in disagree.items() if v[0] != v[1]}
    rss_bad = [n for n, v in flat.items() if n != "anvil" and v.get("rss_flat") is False]
    rss_known = [n for n, v in flat.items() if "rss_flat" in v]
    tick_bad = [n for n, v in flat.items() if v.get("tick_flat") is False]
    soak = r["load"]["seconds"] >= 1800 and r["load"]["jobs_answered"] >= 100_000
    lines = [
        (
            "honest nodes slashed",
            len(sl["honest_nodes_slashed"]),
            "== 0",
            not sl["honest_nodes_slashed"],
        ),
        (
            "cheaters slashed (those that served a corrupted answer, and the withholder)",
            f"{len(sl['cheaters_slashed'])}/{len(sl['cheaters'])}",
            "all",
            sl["every_cheater_slashed"],
        ),
        (
            "receipts missing from the chain (killed node and cheaters, per job)",
            missed,
            "== 0",
            missed == 0,
        ),
        (
            "leaves committed beyond the dApp's receipts (a duplicate, or a job whose answer a "
            "kill -9 cut off)",
            dup_nodes,
            "== 0",
            dup_nodes == 0,
        ),
        ("duplicate disputes/leaf requests by one challenger", dup_ch, "== 0", dup_ch == 0),
        (
            "jobs the challengers' journals mark missed (or leave unfinished) though they were "
            "up to act",
            f"{mj['failing']} = {mj['could_act']} seen in time + {mj['seen_late_up']} seen late "
            f"while up + {mj['pending_at_end']} still sampled/mismatched at the end (excused: "
            f"{mj['seen_late_down']} seen late, the deadline while down; {mj['missed']} missed "
            f"in all; {mj['dispute_sent_at_end']} dispute sent, unconfirmed at the end)",
            "== 0",
            mj["failing"] == 0,
        ),
        (
            "leaf requests the challengers failed to send in time (state missed in their journals)",
            mj["leaf_requests_missed"],
            "== 0",
            mj["leaf_requests_missed"] == 0,
        ),
        (
            "detection rate",
            f"{det['disputed']}/{det['corrupted_closed']} = {det['rate']:.3f} "
            f"[{det['wilson95'][0]:.3f}, {det['wilson95'][1]:.3f}]",
            f"interval holds 1-(1-p)^{det['challengers']} = {det['expected']:.3f}",
            det["expected_inside_interval"] if det["corrupted_closed"] else None,
        ),
        (
            "processes with RSS not flat within 10% after warm-up",
            f"{len(rss_bad)}/{len(rss_known)} {rss_bad}",
            "== 0",
            not rss_bad if rss_known else None,
        ),
        (
            "challengers with tick time not flat (late <= 1.25 x early)",
            f"{tick_bad}",
            "== 0",
            not tick_bad if any("tick_flat" in v for v in flat.values()) else None,
        ),
        (
            "soak length",
            f"{r['load']['seconds']:.0f} s, {r['load']['jobs_answered']:,} jobs",
            ">= 1800 s and >= 100,000 jobs",
            soak,
        ),
        (
            "drained before the timeout",
            r["drain"]["drain_s"],
            f"< {args.drain_timeout:g} s",
            not r["drain"]["timed_out"],
        ),
    ]
    return [{"check": c, "measured": m, "criterion": k, "ok": ok} for c, m, k, ok in lines]


def summary(r: dict[str, Any]) -> str:
    g, ld, det, sl = r["gas"], r["load"], r["detection"], r["slashing"]
    lines = [
        f"jobs answered      {ld['jobs_answered']:,} in {ld['seconds']:.1f} s = "
        f"{ld['jobs_per_s']:.1f} jobs/s (median {ld['latency_ms_median']:.1f} ms, p99 "
        f"{ld['latency_ms_p99']:.1f} ms per job; {ld['refused_503']} refused, {ld['failed']} "
        "failed requests)",
        f"committed leaves   {r['chain']['committed_leaves']:,} in {r['chain']['batches']} "
        f"batches ({r['chain']['committed_jobs_per_s']:.1f}/s of chain time)",
        f"gas per job        commit {g['commit_gas_per_job']:,.0f}, finalize "
        f"{g['finalize_gas_per_job']:,.0f}, all chain gas during the run "
        f"{g['chain_gas_per_job']:,.0f}",
        f"detection          {det['disputed']}/{det['corrupted_closed']} corrupted leaves "
        f"disputed = {det['rate']:.3f}, 95% Wilson [{det['wilson95'][0]:.3f}, "
        f"{det['wilson95'][1]:.3f}]; 1-(1-p)^{det['challengers']} at p={det['p']:g}: "
        f"{det['expected']:.3f}",
    ]
    for name, row in det["nodes"].items():
        lines.append(
            f"  {name} (rate {row['corrupt_rate']:g}): {row['disputed']}/"
            f"{row['corrupted_closed']} [{row['wilson95'][0]:.3f}, {row['wilson95'][1]:.3f}]"
        )
    d, lr = sl["commit_to_slash_dispute"], sl["commit_to_slash_leaf_request"]
    lines.append(
        f"commit to slash    disputes: {d['count']} slashes, median {d['median_s']:.0f} s, max "
        f"{d['max_s']:.0f} s; leaf requests: {lr['count']}, median {lr['median_s']:.0f} s"
    )
    for name, v in sl["per_node"].items():
        if v["slashed_wei"]:
            lines.append(f"  slashed {name} ({v['role']}): {v['slashed_wei'] / 1e18:,.0f} tokens")
    for name, v in r["flatness"].items():
        parts = [f"{name:12}"]
        if "rss_early_mb" in v:
            parts.append(
                f"RSS {v['rss_early_mb']:.0f} -> {v['rss_late_mb']:.0f} MiB "
                f"({v['rss_growth']:+.1%})"
            )
        if "db_last_mb" in v:
            parts.append(f"SQLite {v['db_first_mb']:.1f} -> {v['db_last_mb']:.1f} MiB")
        if "lag_max" in v:
            parts.append(f"lag median {v['lag_median']:g} max {v['lag_max']:g} blocks")
        if "tick_early_s" in v:
            parts.append(f"tick {1000 * v['tick_early_s']:.0f} -> {1000 * v['tick_late_s']:.0f} ms")
        lines.append("  ".join(parts))
    for c in r["chaos"]:
        lines.append(
            f"chaos              {c['action']} {c.get('target', '')} "
            f"{ {k: v for k, v in c.items() if k not in ('t', 'action', 'target')} or '' }"
        )
    lines += missed_lines(r["missed_jobs"])
    for v in r["verdicts"]:
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[v["ok"]]
        lines.append(f"{mark}  {v['check']}: {v['measured']} ({v['criterion']})")
    return "\n".join(lines)


def missed_lines(mj: dict[str, Any], per_challenger: int = 10) -> list[str]:
    """Each challenger's missed jobs (seen in time, seen late while down, seen late while up),
    unfinished jobs and missed leaf requests, then its missed jobs one line each (the first
    ``per_challenger``)."""
    lines: list[str] = []
    for name, c in mj["challengers"].items():
        if not (c["missed"] or c["pending_at_end"] or c["leaf_requests_missed"]):
            continue
        lines.append(
            f"missed             {name}: {c['missed']} ({c['could_act']} seen in time, "
            f"{c['seen_late_down']} seen late while down, {c['seen_late_up']} seen late while "
            f"up; {c['corrupted']} corrupted, {c['deadline_while_down']} with the deadline while "
            f"it was down) {c['by_reason']}; {c['pending_at_end']} still sampled/mismatched at "
            f"the end; {c['leaf_requests_missed']} leaf requests missed"
        )
        for j in c["jobs"][:per_challenger]:
            where = f"{j['ref']}/{j['leaf_index']}" if j["leaf_index"] is not None else j["ref"]
            late = j["seen_minus_deadline_s"]
            lines.append(
                f"  {j['kind']} {where} job {j['job_id']} {j['node_name']} commit block "
                f"{j['commit_block']} (t={j['commit_time']}) deadline {j['challenge_deadline']} "
                f"seen {'?' if late is None else f'{late:+d} s vs deadline'}: {j['reason']}"
                + (" CORRUPTED" if j["corrupted"] else "")
                + (" (deadline while down)" if j["deadline_while_down"] else "")
            )
        if len(c["jobs"]) > per_challenger:
            lines.append(f"  ... {len(c['jobs']) - per_challenger} more in network.json")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    text = summary(result)
    print(text)
    (args.out / "summary.txt").write_text(text + "\n")
    say(f"wrote {args.out / 'network.json'}, {args.out / 'summary.txt'} and the PNG plots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
