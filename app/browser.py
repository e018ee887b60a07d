"""Drive the app in a real browser: a `streamlit run` subprocess and headless Chromium (Playwright).

Used by the browser test (``tests/test_browser.py``), the page-speed benchmark
(``benchmarks/bench_app.py``) and the README screenshots; nothing in the app imports it.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, Optional, Sequence

CHROMIUM = Path("/usr/bin/chromium")
ENTRY = Path(__file__).resolve().parent / "streamlit_app.py"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1400, "height": 1000}
CHARTS = '[data-testid="stPlotlyChart"] .js-plotly-plot'
HEADINGS = {"Systems": "Systems catalog", "Train": "Train a surrogate", "Compare": "Learned vs true flow",
            "Uncertainty": "Uncertainty", "Data": "Your data"}


# the fixed CPU-bound work whose wall time over CPU time says how busy the machine is right now
PROBE_ITERATIONS = 1_000_000


def slowdown() -> float:
    """How many times longer than its CPU time a fixed piece of work takes right now (at least 1): on an
    idle machine about 1, on a machine shared by N busy processes per core about N. Measured, so no
    reference machine is assumed."""
    wall, cpu = time.perf_counter(), time.process_time()
    total = 0
    for k in range(PROBE_ITERATIONS):
        total += k * k % 7
    return max(1.0, (time.perf_counter() - wall) / max(time.process_time() - cpu, 1e-3))


def scaled(idle_s: float) -> float:
    """A timeout for a step that takes up to ``idle_s`` seconds on an idle machine, stretched by the
    measured :func:`slowdown` of this machine now (re-measured at every call: the load changes)."""
    return idle_s * slowdown()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def health_seconds(url: str, timeout: float = 5.0) -> Optional[float]:
    """Seconds the server's health endpoint took to answer 200, None when it did not."""
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=timeout) as response:
            return time.perf_counter() - start if response.status == 200 else None
    except (urllib.error.URLError, ConnectionError, OSError):
        return None


@contextlib.contextmanager
def server(log: Path, timeout_s: float = 90.0, threads: str = "1") -> Iterator[str]:
    """A `streamlit run` subprocess of the app on a free local port; yields its base URL. ``timeout_s``
    is the wait for its health check on an idle machine, stretched by :func:`scaled`."""
    port = free_port()
    env = {**os.environ, "WORKBENCH_THREADS": threads}
    cmd = [sys.executable, "-m", "streamlit", "run", str(ENTRY), "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           # as `workbench app` serves it: Streamlit's source watcher walks every imported module's path on
           # the event loop after each script run, which stalled the health check for seconds under load
           "--server.fileWatcherType", "none"]
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ENTRY.parent.parent, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + scaled(timeout_s)
        while health_seconds(url) is None:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} not healthy after {timeout_s} s:\n{log.read_text(errors='replace')}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@contextlib.contextmanager
def chromium() -> Iterator["object"]:
    """A headless Chromium page (Playwright) with the app's viewport."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                                     timeout=scaled(30.0) * 1000)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(scaled(30.0) * 1000)
            yield page
        finally:
            browser.close()


def running(page) -> bool:
    return page.locator('[data-testid="stStatusWidget"]').count() > 0 or \
        page.locator('[data-testid="stSpinner"]').count() > 0


def wait_idle(page, timeout_s: float, quiet_s: float = 1.5) -> None:
    """Wait until the script is not running (no status widget) for ``quiet_s`` seconds in a row;
    ``timeout_s`` is for an idle machine, stretched by the measured :func:`slowdown`."""
    timeout_s = scaled(timeout_s)
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        if running(page):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        page.wait_for_timeout(100)
    raise TimeoutError(f"the app was still running after {timeout_s} s")


def wait_charts(page, keys: Sequence[str], timeout_s: float) -> float:
    """Wait until the Plotly charts with these Streamlit keys are drawn and the script has stopped;
    return the seconds until then (the quiet period that confirms it is not counted). ``timeout_s`` is
    for an idle machine, stretched by the measured :func:`slowdown`."""
    start = time.monotonic()
    page.wait_for_function(
        "keys => keys.every(k => document.querySelector(`.st-key-${k} .js-plotly-plot .main-svg`))",
        arg=list(keys), timeout=scaled(timeout_s) * 1000, polling=50)
    while running(page):
        page.wait_for_timeout(50)
    done = time.monotonic() - start
    wait_idle(page, timeout_s)
    return done


def go_to(page, title: str, timeout_s: float = 60.0) -> None:
    """Click the page's link in the sidebar and wait for its heading (``timeout_s`` on an idle machine,
    stretched by the measured :func:`slowdown`)."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.locator("h1", has_text=HEADINGS[title]).first.wait_for(timeout=scaled(timeout_s) * 1000)


def problems(page) -> list[str]:
    """Tracebacks, exceptions and error boxes shown in the page."""
    found = page.locator('[data-testid="stException"]').all_inner_texts()
    found += page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    if "Traceback" in page.locator("body").inner_text():
        found.append("a traceback is shown")
    return found


SCROLL_HEIGHT_JS = """() => {
    // Streamlit scrolls its main area inside a container, so the document is only a viewport tall
    const heights = [document.documentElement.scrollHeight];
    for (const el of document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"], section'))
        if (el.scrollHeight > el.clientHeight) heights.push(el.scrollHeight + el.getBoundingClientRect().top);
    return Math.ceil(Math.max(...heights));
}"""


def screenshot(page, path: Path, max_height: int = 6000, max_bytes: int = 1_500_000) -> None:
    """The whole page (the viewport stretched to the app's height), or the viewport at the first chart
    when that picture would be too heavy for the README."""
    height = min(max(page.evaluate(SCROLL_HEIGHT_JS), VIEWPORT["height"]), max_height)
    try:
        page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
        page.wait_for_timeout(1500)  # Plotly redraws on resize
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(VIEWPORT)
    if path.stat().st_size > max_bytes:
        page.wait_for_timeout(1000)
        page.locator(CHARTS).first.scroll_into_view_if_needed()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(path))


CLICK_POINT_JS = """([key, name, index]) => {
    // the pixel position of point `index` of trace `name` in the chart with Streamlit key `key`
    const gd = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    const trace = gd._fullData.findIndex(t => t.name === name);
    const data = gd._fullData[trace];
    const layout = gd._fullLayout, box = gd.getBoundingClientRect();
    const x = data.x[index], y = data.y[index];
    return {x: box.left + layout._size.l + layout.xaxis.l2p(x), y: box.top + layout._size.t + layout.yaxis.l2p(y),
            value_x: x, value_y: y};
}"""


def click_point(page, key: str, trace: str, index: int) -> dict:
    """Click point ``index`` of the trace named ``trace`` in chart ``key``; returns its data coordinates."""
    page.locator(f".st-key-{key}").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    where = page.evaluate(CLICK_POINT_JS, [key, trace, index])
    page.mouse.move(where["x"], where["y"])
    page.wait_for_timeout(300)
    page.mouse.click(where["x"], where["y"])
    return {"x": where["value_x"], "y": where["value_y"]}


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` (Streamlit's selectboxes filter as you type)."""
    box = page.locator('[data-testid="stSelectbox"]', has_text=label).first
    box.locator("input").first.click()
    page.keyboard.type(option)
    page.locator('[role="option"]', has_text=option).first.click()
