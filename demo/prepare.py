"""Preparation without a chain: compile the contracts, build (or load from the cache) the
model's circuit, keys and verifier, and measure its tolerance ``tau``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from demo.config import DemoConfig
from demo.progress import Progress


@dataclass(frozen=True)
class PreparedModel:
    """The model's artifacts (``verifier.artifacts.ModelArtifacts``) and its measured ``tau``."""

    artifacts: Any
    tau: int


def prepare(cfg: DemoConfig, progress: Progress) -> PreparedModel:
    from spotcheck.toolchain import ensure_anvil_on_path, ensure_full_compile

    ensure_anvil_on_path()
    ensure_full_compile()
    with progress.stage("compile contracts (Ape, cached)"):
        from ape import project

        for name in ("TestToken", "StakeManager", "JobManager", "ExampleConsumer"):
            getattr(project, name)
    with progress.stage("model circuit, keys and verifier (cached by content hash)"):
        artifacts = _build_artifacts(cfg, progress)
    with progress.stage("measure tolerance tau"):
        tau = _measure_tau(cfg, artifacts, progress)
    return PreparedModel(artifacts, tau)


def _build_artifacts(cfg: DemoConfig, progress: Progress) -> Any:
    from verifier.artifacts import StageEvent, build_artifacts
    from verifier.examples import write_tiny_mlp
    from verifier.srs import SrsSource

    onnx_path = write_tiny_mlp(cfg.workdir / "model")

    def show(event: StageEvent) -> None:
        if event.started:
            progress.say(f"    {event.stage:10} started ...")
            return
        what = "cached" if event.cached else f"{event.seconds:.1f} s"
        progress.say(f"    {event.stage:10} {what}  {event.detail}")

    progress.say(
        "    model: tiny MLP 4 -> 8 -> 2 (Gemm, ReLU, Gemm); SRS: locally generated DEV "
        "SRS (insecure, demo only)"
    )
    return build_artifacts(onnx_path, srs=SrsSource.dev(), progress=show)


def _measure_tau(cfg: DemoConfig, artifacts: Any, progress: Progress) -> int:
    """``tau`` of the model, remembered in the demo's model folder per circuit."""
    from verifier.tolerance import measure

    key = artifacts.circuit_key[:16]
    cache = cfg.workdir / "model" / f"tau-{key}-{cfg.tolerance_samples}.json"
    if cache.is_file():
        data = json.loads(cache.read_text())
        progress.say(
            f"    tau {data['tau']} units (measured earlier: max deviation "
            f"{data['max_deviation']} over {data['samples']} inputs)"
        )
        return int(data["tau"])
    report = measure(artifacts, random_samples=cfg.tolerance_samples)
    for line in report.describe().splitlines():
        progress.say("    " + line)
    cache.write_text(
        json.dumps(
            {
                "tau": report.tau,
                "max_deviation": report.max_deviation,
                "samples": report.samples,
            }
        )
    )
    return int(report.tau)
