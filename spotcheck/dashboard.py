"""``spotcheck dashboard``: a read-only status page over the chain, the same data as
``spotcheck status`` (:mod:`spotcheck.status`), the economics plot, and live updates.

The command's own thread (which holds Ape's network connection) re-reads the status every
``--refresh`` seconds into a :class:`StatusCache`; the page is served by FastAPI on a thread of
its own (:class:`spotcheck.kit.serve.HttpThread`) and reads only the cache, so a slow RPC never
blocks a page load and a page never sends a chain call. The page polls ``/api/status`` and
redraws; it loads nothing from the network (inline CSS and script, the plot from this server).

Routes: ``/`` (the page), ``/api/status`` (JSON: ``status`` as :meth:`SystemStatus.to_dict`,
``error`` of the last refresh or null, ``refreshed_at``), ``/economics.png`` (the plot of
:func:`spotcheck.simulation.plot_profit_vs_p`, made once at start; 404 with the reason when
matplotlib, the optional ``plot`` extra, is not installed), ``/health``.

Imports only click and core at module level (``spotcheck --help`` stays cheap).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from spotcheck.ape_cli import ReadChainCommand
from spotcheck.cli_options import deployment_option
from spotcheck.status import SystemStatus, lookback_options

log = logging.getLogger(__name__)

DEFAULT_PORT = 8470
DEFAULT_REFRESH_S = 5.0


class StatusCache:
    """The last status read (or the error of the last failed read), shared by two threads."""

    def __init__(self, read: Callable[[], SystemStatus]) -> None:
        self._read = read
        self._lock = threading.Lock()
        self._status: dict[str, Any] | None = None
        self._error: str | None = None
        self._refreshed_at: float | None = None

    def refresh(self) -> None:
        """Read the status now (call it on the thread that owns the chain connection). A
        failed read keeps the last good status and records the error, in one line."""
        try:
            data = self._read().to_dict()
        except Exception as err:
            why = (str(err).splitlines() or [type(err).__name__])[0][:300]
            log.warning("dashboard: status refresh failed: %s", why)
            with self._lock:
                self._error = f"{type(err).__name__}: {why}"
            return
        with self._lock:
            self._status, self._error, self._refreshed_at = data, None, time.time()

    def snapshot(self) -> dict[str, Any]:
        """What ``/api/status`` answers; integers beyond 2**53 (token amounts in base units)
        are strings, which JavaScript reads exactly (``BigInt``), unlike JSON numbers."""
        with self._lock:
            return {
                "status": _js_safe(self._status),
                "error": self._error,
                "refreshed_at": self._refreshed_at,
            }


def _js_safe(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) > 2**53:
        return str(value)
    if isinstance(value, dict):
        return {k: _js_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_js_safe(v) for v in value]
    return value


def economics_plot_png(path: Path) -> tuple[bytes | None, str]:
    """The economics plot as PNG bytes (written to ``path``), or None and why not."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return None, "the economics plot needs matplotlib: pip install 'spotcheck[plot]'"
    from spotcheck.simulation import plot_profit_vs_p

    written = plot_profit_vs_p(path, n_jobs=20_000)
    return written.read_bytes(), ""


def build_app(cache: StatusCache, plot: bytes | None, plot_missing: str, poll_s: float) -> Any:
    """The FastAPI app of the page (see the module)."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    app = FastAPI(title="Spotcheck dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    page = PAGE.replace("__POLL_MS__", str(int(poll_s * 1000)))

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/status")
    def api_status() -> JSONResponse:
        return JSONResponse(cache.snapshot(), headers={"cache-control": "no-store"})

    @app.get("/economics.png")
    def economics_png() -> Response:
        if plot is None:
            raise HTTPException(404, plot_missing)
        return Response(plot, media_type="image/png")

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    return app


@click.command("dashboard", cls=ReadChainCommand)
@deployment_option
@lookback_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True, help="Port.")
@click.option(
    "--refresh",
    type=click.FloatRange(min=0.5),
    default=DEFAULT_REFRESH_S,
    show_default=True,
    help="Seconds between two reads of the chain (the page polls as often).",
)
def dashboard(
    deployment: Path | None,
    lookback: int,
    live_window: int,
    host: str,
    port: int,
    refresh: float,
) -> None:
    """A read-only status page (the data of `status`, the economics plot, live updates)."""
    import tempfile

    from spotcheck.cli_options import connect_contracts
    from spotcheck.kit.loop import run_loop
    from spotcheck.kit.quiet import ape_traces_to_debug, demote_chatter
    from spotcheck.kit.serve import HttpThread
    from spotcheck.status import gather_status

    ape_traces_to_debug()
    demote_chatter()
    contracts = connect_contracts(deployment)
    cache = StatusCache(
        lambda: gather_status(contracts, lookback_blocks=lookback, live_window_s=live_window)
    )
    cache.refresh()
    with tempfile.TemporaryDirectory() as tmp:
        plot, missing = economics_plot_png(Path(tmp) / "economics.png")
    if plot is None:
        click.echo(missing, err=True)
    http = HttpThread(build_app(cache, plot, missing, refresh), host, port, name="dashboard")
    try:
        http.start(wait_s=10.0)
    except RuntimeError as err:
        raise click.ClickException(f"{err} (is port {port} in use? try --port)") from err
    click.echo(f"dashboard on {http.url} (read-only; Ctrl-C stops it)")
    try:
        run_loop(cache.refresh, stop=threading.Event(), interval_s=refresh, name="status refresh")
    finally:
        http.stop()


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Spotcheck status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1b1f24; background: #fafafa; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; } h2 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
table { border-collapse: collapse; background: #fff; }
td, th { border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: left; }
th { background: #f0f3f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: .9em; } .bad { color: #b42318; font-weight: 600; }
.ok { color: #1a7f37; font-weight: 600; } .muted { color: #57606a; }
#error { color: #b42318; } img { max-width: 100%; border: 1px solid #d0d7de; background: #fff; }
.grid { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1.5rem; }
</style></head>
<body>
<h1>Spotcheck status</h1>
<div id="meta" class="muted">loading...</div>
<div id="error"></div>
<div class="grid"><div>
<h2 id="models-title">Models</h2><table id="models"></table>
<h2 id="nodes-title">Nodes</h2><table id="nodes"></table>
<h2 id="disputes-title">Open disputes</h2><table id="disputes"></table>
<h2 id="leaves-title">Open leaf requests</h2><table id="leaves"></table>
<h2 id="slashes-title">Recent slashes</h2><table id="slashes"></table>
</div><div>
<h2>Economics</h2>
<p class="muted">A cheater's expected profit per job against the sampling probability p:
below the bound cheating pays, above it every cheat loses money on average.</p>
<img id="plot" src="/economics.png" alt="economics plot: expected profit of cheating vs p">
<h2>Contracts</h2><table id="contracts"></table>
</div></div>
<script>
"use strict";
const TOKEN = 10n ** 18n;
const $ = id => document.getElementById(id);
function tokens(v) {
  const b = BigInt(v), f = (b % TOKEN).toString().padStart(18, "0").replace(/0+$/, "");
  return f ? `${b / TOKEN}.${f}` : `${b / TOKEN}`;
}
function short(a) { return a && a.length > 14 ? `${a.slice(0, 10)}...${a.slice(-4)}` : a; }
function row(cells, tag) {
  const tr = document.createElement("tr");
  for (const [text, cls, title] of cells) {
    const td = document.createElement(tag || "td");
    td.textContent = String(text);
    if (cls) td.className = cls;
    if (title) td.title = title;
    tr.appendChild(td);
  }
  return tr;
}
// columns: [header, value(item) -> text, class(item) -> css class or ""]
function table(id, label, columns, items) {
  const t = $(id);
  t.textContent = "";
  $(`${id}-title`).textContent = `${label} (${items.length})`;
  t.appendChild(row(columns.map(c => [c[0]]), "th"));
  if (!items.length) {
    const tr = row([["none", "muted"]]);
    tr.firstChild.colSpan = columns.length;
    t.appendChild(tr);
  }
  for (const it of items) t.appendChild(row(columns.map(c => [c[1](it), c[2] ? c[2](it) : ""])));
}
const num = () => "num";
const liveness = n => (n.live ? "live" : `not live: ${n.why_not_live}`);
const lastCommit = n => (n.last_commit_age_s === null ? "never" : `${n.last_commit_age_s} s ago`);
const where = d => (d.kind === "batch" ? `${d.job_id} (batch ${d.batch_id} leaf ${d.index})`
                                       : `${d.job_id}`);
function render(s) {
  const at = new Date(s.gathered_at * 1000).toLocaleTimeString();
  $("meta").textContent = `chain ${s.chain_id} - head block ${s.head_block} - events from block `
    + `${s.from_block} - minimum stake ${tokens(s.min_stake)} - jobs requested `
    + `${s.jobs_requested}, batches committed ${s.batches_committed} - updated ${at}`;
  table("models", "Models", [
    ["model id", m => short(m.model_id)],
    ["state", m => (m.active ? "active" : "inactive"), m => (m.active ? "ok" : "bad")],
    ["in/out", m => `${m.input_len}/${m.output_len}`, num],
    ["tau", m => m.tau, num],
    ["slash", m => tokens(m.slash), num],
    ["bond", m => tokens(m.challenger_bond), num],
    ["windows (s)", m => `${m.challenge_window_s}/${m.proof_window_s}`, num],
  ], s.models);
  table("nodes", "Nodes", [
    ["node", n => short(n.address)],
    ["liveness", liveness, n => (n.live ? "ok" : "bad")],
    ["stake", n => tokens(n.stake), num],
    ["locked", n => tokens(n.locked), num],
    ["open disputes", n => n.open_disputes, num],
    ["liveness failures", n => n.liveness_failures, num],
    ["last commit", lastCommit, num],
  ], s.nodes);
  table("disputes", "Open disputes", [
    ["dispute", d => short(d.dispute_id)],
    ["job", where],
    ["node", d => short(d.node)],
    ["challenger", d => short(d.challenger)],
    ["bond", d => tokens(d.bond), num],
    ["proof due in", d => `${d.seconds_left} s`, num],
  ], s.open_disputes);
  table("leaves", "Open leaf requests", [
    ["request", r => short(r.request_id)],
    ["batch / leaf", r => `${r.batch_id} / ${r.index}`],
    ["node", r => short(r.node)],
    ["requester", r => short(r.requester)],
    ["state", r => (r.status === "open" ? "reveal due" : "revealed, disputable")],
    ["bond", r => tokens(r.bond), num],
  ], s.open_leaf_requests);
  table("slashes", "Recent slashes", [
    ["block", x => x.block, num],
    ["node", x => short(x.node)],
    ["slashed", x => tokens(x.slashed), num],
    ["requested", x => tokens(x.requested), num],
    ["to", x => short(x.recipient)],
  ], s.recent_slashes);
  const c = $("contracts");
  c.textContent = "";
  for (const [k, v] of Object.entries(s.contracts)) c.appendChild(row([[k], [v ?? "-"]]));
}
async function poll() {
  try {
    const body = await (await fetch("/api/status", {cache: "no-store"})).json();
    $("error").textContent = body.error ? `last refresh failed: ${body.error}` : "";
    if (body.status) render(body.status);
  } catch (e) {
    $("error").textContent = `dashboard unreachable: ${e}`;
  }
}
poll();
setInterval(poll, __POLL_MS__);
</script>
</body></html>
"""
