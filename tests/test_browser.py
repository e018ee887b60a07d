"""The Streamlit app in a real browser: a server subprocess driven by headless Chromium (Playwright).

Run with ``pytest -m browser tests/test_browser.py``. Screenshots go to a pytest tmp dir, or to the
folder named by ``WORKBENCH_SCREENSHOTS`` (the README's pictures live in ``app/screenshots``).
"""
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parent.parent
ENTRY = REPO / "app" / "streamlit_app.py"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1400, "height": 1000}
HEALTH_TIMEOUT_S = 90
FIRST_CHARTS_TIMEOUT_S = 180  # a cold first render of Compare takes ~40 s on 2 cores
CHARTS_TIMEOUT_S = 90
MAX_FULL_PAGE_BYTES = 1_500_000
CHARTS = '[data-testid="stPlotlyChart"] .js-plotly-plot'
# keys of charts the default page draws for the shipped lorenz63 demo (st.plotly_chart key -> .st-key-<key>)
COMPARE_CHARTS = ["compare_timeseries", "compare_phase2d", "field_true", "field_learned", "field_error"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not healthy after {HEALTH_TIMEOUT_S} s:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A `streamlit run` subprocess on a free local port; yields its base URL and its log file."""
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {**os.environ, "WORKBENCH_THREADS": "1"}
    cmd = [sys.executable, "-m", "streamlit", "run", str(ENTRY), "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc, log)
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        print(f"streamlit server log:\n{log.read_text(errors='replace')[-5000:]}")  # shown on failure


@pytest.fixture()
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("WORKBENCH_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def wait_idle(page, timeout_s: float, quiet_s: float = 2.0) -> None:
    """Wait until the script is not running (no status widget) for `quiet_s` seconds in a row
    (the widget shows up ~1 s after a rerun starts, hence the quiet period)."""
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0 or \
            page.locator('[data-testid="stSpinner"]').count() > 0
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        page.wait_for_timeout(250)
    raise TimeoutError(f"the app was still running after {timeout_s} s")


def wait_charts(page, keys: list[str], timeout_s: float) -> int:
    """Wait until the Plotly charts with these Streamlit keys are drawn and the script is idle;
    return how many charts the page shows."""
    deadline = time.monotonic() + timeout_s
    page.wait_for_function(
        "keys => keys.every(k => document.querySelector(`.st-key-${k} .js-plotly-plot .main-svg`))",
        arg=keys, timeout=timeout_s * 1000)
    wait_idle(page, max(5.0, deadline - time.monotonic()))
    page.wait_for_timeout(2000)  # let Plotly finish drawing (and any transitions) before looking
    return page.locator(CHARTS).count()


def assert_clean(page, where: str) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{where}: exception shown:\n" + "\n".join(exceptions.all_inner_texts())
    text = page.locator("body").inner_text()
    assert "Traceback" not in text, f"{where}: a traceback is shown:\n{text[:3000]}"
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{where}: error shown: {errors.all_inner_texts()}"


def go_to(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.locator("h1", has_text={"Systems": "Systems catalog", "Compare": "Learned vs true flow",
                                 "Uncertainty": "Uncertainty"}[title]).first.wait_for(timeout=60_000)


SCROLL_HEIGHT_JS = """() => {
    // Streamlit scrolls its main area inside a container, so the document is only a viewport tall
    const heights = [document.documentElement.scrollHeight];
    for (const el of document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"], section'))
        if (el.scrollHeight > el.clientHeight) heights.push(el.scrollHeight + el.getBoundingClientRect().top);
    return Math.ceil(Math.max(...heights));
}"""


def screenshot(page, path: Path, max_height: int = 6000) -> None:
    """The whole page (the viewport stretched to the app's height), or the viewport at the first chart
    when that picture would be too heavy for the README."""
    height = min(max(page.evaluate(SCROLL_HEIGHT_JS), VIEWPORT["height"]), max_height)
    try:
        page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
        page.wait_for_timeout(1500)  # Plotly redraws on resize
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(VIEWPORT)
    if path.stat().st_size > MAX_FULL_PAGE_BYTES:
        page.wait_for_timeout(1000)
        page.locator(CHARTS).first.scroll_into_view_if_needed()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000, f"{path} looks empty"


def test_pages_render_in_a_real_browser(server, shots):
    from playwright.sync_api import sync_playwright

    url, log = server
    console_errors = []
    start = time.monotonic()

    def mark(step: str) -> None:  # shown with -s, or on failure
        print(f"[browser] {time.monotonic() - start:6.1f} s  {step}")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                                     timeout=60_000)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(60_000)
            page.on("pageerror", lambda exc: console_errors.append(str(exc)))
            page.on("console", lambda msg: print(f"[console {msg.type}] {msg.text}") if msg.type == "error" else None)
            page.on("requestfailed", lambda request: print(f"[request failed] {request.url} {request.failure}"))
            page.goto(url, wait_until="domcontentloaded", timeout=60_000)

            # default page: Compare (time series, phase portraits, vector fields, own initial condition)
            page.locator("h1", has_text="Learned vs true flow").first.wait_for(timeout=FIRST_CHARTS_TIMEOUT_S * 1000)
            assert wait_charts(page, COMPARE_CHARTS, FIRST_CHARTS_TIMEOUT_S) >= 3
            assert_clean(page, "Compare")
            mark("Compare rendered")
            screenshot(page, shots / "compare.png")

            # Systems: generate trajectories, then look at them
            go_to(page, "Systems")
            wait_idle(page, CHARTS_TIMEOUT_S)
            assert_clean(page, "Systems")
            page.get_by_role("button", name="Generate").click()
            page.locator('[data-testid="stAlertContentSuccess"]').first.wait_for(timeout=CHARTS_TIMEOUT_S * 1000)
            assert wait_charts(page, ["systems_timeseries", "systems_phase"], CHARTS_TIMEOUT_S) >= 2
            assert_clean(page, "Systems after Generate")
            mark("Systems generated")
            screenshot(page, shots / "systems.png")

            # back to Compare: the charts come back
            go_to(page, "Compare")
            assert wait_charts(page, COMPARE_CHARTS, CHARTS_TIMEOUT_S) >= 3
            assert_clean(page, "Compare (again)")
            mark("Compare rendered again")

            # Uncertainty: fan chart, calibration, marginals
            go_to(page, "Uncertainty")
            assert wait_charts(page, ["fan_chart", "coverage", "marginals"], CHARTS_TIMEOUT_S) >= 3
            assert_clean(page, "Uncertainty")
            mark("Uncertainty rendered")
            screenshot(page, shots / "uncertainty.png")
            mark("done")
        finally:
            browser.close()
    assert not console_errors, f"JavaScript errors in the page: {console_errors}"
