"""The dashboard page in a real headless Chromium (Debian's, driven by Playwright) over a
running anvil chain with a deployed system: the page shows what ``spotcheck status`` reads,
updates live when the chain changes, loads nothing from the network, and its screenshot is
saved to ``docs/dashboard.png``.

Chromium comes from ``scripts/install-chromium.sh`` (``make test`` runs it). Outside CI a
missing browser skips the test with the reason; in CI (``CI`` set) it fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spotcheck.dashboard import StatusCache, build_app, economics_plot_png
from spotcheck.encoding import hash_vector
from spotcheck.kit.serve import HttpThread, free_port
from spotcheck.status import gather_status
from tests.fixtures.chain import JOB_OUTPUT, MOCK_MODEL, advance

pytestmark = pytest.mark.chain
CHROMIUM = Path("/usr/bin/chromium")
#: the picture in docs/demo.md, rewritten only with SPOTCHECK_UPDATE_SCREENSHOT=1 (so a test
#: run leaves the working tree clean); otherwise the screenshot goes to the test's tmp_path
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
#: the flags python.md measured for a closed network (no background connections at start)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _need_browser() -> None:
    why = None
    if not CHROMIUM.exists():
        why = f"{CHROMIUM} missing: run scripts/install-chromium.sh (make test does)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            why = "playwright missing: pip install -e '.[test]'"
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture
def browser_page() -> Iterator[Any]:
    _need_browser()
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="spotcheck-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000},
            )
            try:
                yield context.new_page()
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def dashboard(spotcheck: Any) -> Iterator[tuple[str, StatusCache]]:
    """The dashboard app over the fixture's deployment; the test refreshes the cache itself
    (on its own thread, which holds Ape's connection), as the command's loop does."""
    cache = StatusCache(lambda: gather_status(spotcheck.contracts))
    cache.refresh()
    with tempfile.TemporaryDirectory() as tmp:
        plot, missing = economics_plot_png(Path(tmp) / "economics.png")
    assert plot is not None, missing  # matplotlib is in the test extra
    http = HttpThread(build_app(cache, plot, missing, poll_s=0.5), "127.0.0.1", free_port())
    http.start(wait_s=10.0)
    try:
        yield http.url, cache
    finally:
        http.stop()


def _wait_text(page: Any, selector: str, text: str, timeout_s: float = 15.0) -> None:
    page.wait_for_function(
        "([sel, want]) => (document.querySelector(sel)?.textContent || '').includes(want)",
        arg=[selector, text],
        timeout=timeout_s * 1000,
    )


def test_dashboard_inChromium_showsTheChainAndUpdatesLive(
    browser_page: Any,
    dashboard: tuple[str, StatusCache],
    spotcheck: Any,
    make_job: Callable[..., int],
    node: Any,
    challenger: Any,
    chain: Any,
    tmp_path: Path,
) -> None:
    url, cache = dashboard
    page = browser_page
    foreign: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith(url) else foreign.append(r.url),
    )
    dm = spotcheck.dispute_manager
    out_hash = hash_vector(JOB_OUTPUT)
    slashed = make_job()
    dispute = bytes(dm.openDispute(slashed, out_hash, sender=challenger).return_value)
    advance(chain, MOCK_MODEL.proof_window + 1)
    dm.settle(dispute, sender=challenger)
    cache.refresh()

    page.goto(url)
    _wait_text(page, "#nodes-title", "Nodes (2)")
    assert page.text_content("#models-title") == "Models (1)"
    assert "0x" + spotcheck.model_id.hex()[:8] in (page.text_content("#models") or "")
    nodes = page.text_content("#nodes") or ""
    assert str(node.address)[:10] in nodes
    # amounts are exact: 10,000 staked minus one slash of 100 (18 decimals, no float rounding)
    assert "9900" in nodes and "9900.0" not in nodes
    assert page.text_content("#slashes-title") == "Recent slashes (1)"
    assert page.text_content("#disputes-title") == "Open disputes (0)"
    meta = page.text_content("#meta") or ""
    assert f"chain {spotcheck.deployment.chain_id}" in meta
    # the plot is served by the dashboard and decoded by the browser
    assert page.evaluate("document.getElementById('plot').naturalWidth") > 100

    # live: a dispute opened on chain shows up without a reload
    open_job = make_job(input=[4, 3, 2, 1])
    dm.openDispute(open_job, out_hash, sender=challenger)
    cache.refresh()
    _wait_text(page, "#disputes-title", "Open disputes (1)")
    assert str(open_job) in (page.text_content("#disputes") or "")
    time.sleep(0.3)  # let the last redraw settle before the picture
    update = os.environ.get("SPOTCHECK_UPDATE_SCREENSHOT") == "1"
    shot = DOCS_SCREENSHOT if update else tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert foreign == [], f"the page loaded from elsewhere: {foreign}"


def test_dashboard_failedRefresh_keepsLastStatusAndShowsTheError(
    browser_page: Any, spotcheck: Any
) -> None:
    calls = {"n": 0}

    def read() -> Any:
        calls["n"] += 1
        if calls["n"] > 1:
            raise ConnectionError("RPC unreachable: connection refused\nsecond line")
        return gather_status(spotcheck.contracts)

    cache = StatusCache(read)
    cache.refresh()
    cache.refresh()
    http = HttpThread(build_app(cache, None, "no plot here", poll_s=0.5), "127.0.0.1", free_port())
    http.start(wait_s=10.0)
    try:
        browser_page.goto(http.url)
        _wait_text(browser_page, "#error", "last refresh failed: ConnectionError")
        assert "second line" not in (browser_page.text_content("#error") or "")
        _wait_text(browser_page, "#models-title", "Models (1)")
        r = browser_page.request.get(f"{http.url}/economics.png")
        assert r.status == 404 and "no plot here" in r.text()
    finally:
        http.stop()
