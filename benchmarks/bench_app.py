"""Page speed of the web app in a real browser: seconds until each page's charts are drawn.

Starts the app (`streamlit run app/streamlit_app.py`, one torch thread) on the shipped demo, drives
it with headless Chromium and prints, per page, the first visit (nothing of that page cached yet)
and a cached interaction (coming back to the page: same inputs, every result from the caches).
The clock runs from the click on the sidebar link until the page's charts are on screen and the
script has finished. The server's first page load also imports torch and the workbench; that start
is measured on the Data page and reported on its own row. While pages load, a thread polls the
server's health endpoint (`/_stcore/health`) every 0.2 s and the table reports its slowest answer.

Targets (issue 9): first visit <= 3 s, cached interaction <= 1 s on 2 cores; health < 1 s.

``--sessions N`` measures the server under load instead (issue 10): N browser sessions at once (pages of
one headless Chromium, each its own Streamlit session), each loading every page in turn by its URL
(session k starts at page k mod 5, so all pages run at once), until its heading is shown and its script
has finished. The health endpoint is polled throughout; the table gives its latency percentiles, the
page-load times and the server's peak memory.

    python benchmarks/bench_app.py
    python benchmarks/bench_app.py --pages Uncertainty
    python benchmarks/bench_app.py --sessions 20
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))
import browser  # noqa: E402  (the app folder is not a package)
import numpy as np  # noqa: E402

# page -> charts its first view draws
PAGES = {
    "Compare": ["compare_timeseries", "compare_phase2d", "field_true", "field_learned", "field_error", "ic_phase"],
    "Uncertainty": ["fan_chart", "coverage", "marginals"],
    "Systems": ["systems_timeseries", "systems_phase"],
    "Train": [],
    "Data": ["data_series"],
}
# page -> (label of the trajectory number a user steps, chart that changes with it)
INTERACTIONS = {
    "Compare": ("test trajectory", "compare_timeseries"),
    "Uncertainty": ("test trajectory", "fan_chart"),
    "Systems": ("time series of trajectory", "systems_timeseries"),
    "Data": ("series (trajectory)", "data_series"),
}
CHART_DATA_JS = """key => { const gd = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    return gd && gd._fullData ? JSON.stringify(gd._fullData.map(t => [t.name, t.y && t.y.length, t.y && t.y[1]])) : null; }"""


def proc_files(marker: str, name: str) -> list[str]:
    """The text of ``/proc/PID/<name>`` for every process whose command line contains ``marker``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/{name}") as f:
                text = f.read()
        except OSError:  # the process ended meanwhile
            continue
        if marker in command:
            found.append(text)
    return found


def cpu_seconds(marker: str) -> float:
    """CPU seconds (user + system) used so far by the processes whose command line contains ``marker``."""
    ticks = os.sysconf("SC_CLK_TCK")
    return sum((int(f[11]) + int(f[12])) / ticks
               for f in (stat.rsplit(")", 1)[1].split() for stat in proc_files(marker, "stat")))


class Meter:
    """Wall seconds of a step, and the CPU seconds the app server and the browser spent on it."""

    def __init__(self, port: str):
        self.server, self.browser = f"--server.port {port}", "/usr/lib/chromium/chromium"  # the wrapper execs this

    def __call__(self, step, *args) -> tuple[float, float, float]:
        server, chrome = cpu_seconds(self.server), cpu_seconds(self.browser)
        seconds = step(*args)
        return seconds, cpu_seconds(self.server) - server, cpu_seconds(self.browser) - chrome


def peak_rss_mb(marker: str) -> float:
    """Peak resident memory (VmHWM, MB) of the processes whose command line contains ``marker``, summed."""
    return sum(next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM")), 0.0)
               for status in proc_files(marker, "status"))


PROBE_CODE = """
import sys, time, urllib.request
url = sys.argv[1]
while True:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=5.0) as response:
            seconds = time.perf_counter() - start if response.status == 200 else 5.0
    except OSError:
        seconds = 5.0
    print(f"{seconds:.4f}", flush=True)
    time.sleep(0.2)
"""


class HealthProbe(threading.Thread):
    """Polls the health endpoint every 0.2 s from a separate process (so the benchmark's own work, e.g.
    driving twenty pages, cannot delay the probe) and keeps every answer's seconds (a missing answer
    counts as 5 s)."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.seconds, self.done = url, [], threading.Event()

    @property
    def worst(self) -> float:
        return max(self.seconds, default=0.0)

    @property
    def count(self) -> int:
        return len(self.seconds)

    def run(self) -> None:
        probe = subprocess.Popen([sys.executable, "-c", PROBE_CODE, self.url], stdout=subprocess.PIPE, text=True)
        reader = threading.Thread(target=lambda: [self.seconds.append(float(line)) for line in probe.stdout],
                                  daemon=True)
        reader.start()
        self.done.wait()
        probe.terminate()
        probe.wait(timeout=10)
        reader.join(timeout=10)


def visit(page, title: str) -> float:
    """Click the page's link and return the seconds until its charts are drawn and the script stopped."""
    start = time.monotonic()
    browser.go_to(page, title)
    if title == "Systems":  # its charts appear after Generate: count the click and the integration too
        page.get_by_role("button", name="Generate").click()
    if PAGES[title]:
        browser.wait_charts(page, PAGES[title], 120)
    else:
        while browser.running(page):
            page.wait_for_timeout(50)
    seconds = time.monotonic() - start
    found = browser.problems(page)
    if found:
        raise RuntimeError(f"{title}: {found}")
    browser.wait_idle(page, 60)
    return seconds


def step(page, title: str, direction: str) -> float:
    """Click the step button (``"Up"``/``"Down"``) of the page's number input; return the seconds until
    the changed chart is redrawn and the script has finished."""
    label, key = INTERACTIONS[title]
    button = page.locator('[data-testid="stNumberInput"]', has_text=label).locator(
        f'[data-testid="stNumberInputStep{direction}"]').first
    before = page.evaluate(CHART_DATA_JS, key)
    start = time.monotonic()
    button.click()
    page.wait_for_function(f"before => ({CHART_DATA_JS})({key!r}) !== before", arg=before, timeout=120_000,
                           polling=30)
    while browser.running(page):
        page.wait_for_timeout(30)
    seconds = time.monotonic() - start
    browser.wait_idle(page, 60)
    return seconds


def interact(meter: "Meter", page, title: str) -> tuple[float, float, float]:
    """Show the next trajectory, then measure going back to the first one: everything it needs is cached."""
    step(page, title, "Up")
    return meter(step, page, title, "Down")


# page -> its URL path (the default page, Compare, is the root)
URL_PATHS = {"Compare": "", "Uncertainty": "uncertainty", "Systems": "systems", "Train": "train", "Data": "data"}


async def load_page(page, url: str, title: str, timeout_s: float) -> float:
    """Open the page by its URL in a fresh Streamlit session; seconds until its heading is shown and
    its script has finished (no status widget or spinner for 1 s)."""
    start = time.monotonic()
    await page.goto(f"{url}/{URL_PATHS[title]}", wait_until="domcontentloaded", timeout=timeout_s * 1000)
    await page.locator("h1", has_text=browser.HEADINGS[title]).first.wait_for(timeout=timeout_s * 1000)
    busy = '[data-testid="stStatusWidget"], [data-testid="stSpinner"]'
    quiet_since = None
    while time.monotonic() - start < timeout_s:
        if await page.locator(busy).count():
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 1.0:
            return quiet_since - start
        await page.wait_for_timeout(100)
    raise TimeoutError(f"{title} still running after {timeout_s} s")


async def concurrent_sessions(url: str, sessions: int, timeout_s: float) -> list[tuple[str, float]]:
    """``sessions`` pages of one headless Chromium, each loading all five pages in turn (session k from
    page k mod 5); returns (page, seconds) of every load."""
    from playwright.async_api import async_playwright

    titles = list(URL_PATHS)
    loads: list[tuple[str, float]] = []
    async with async_playwright() as pw:
        chrome = await pw.chromium.launch(executable_path=str(browser.CHROMIUM), headless=True,
                                          args=browser.CHROMIUM_ARGS, timeout=120_000)

        async def one(k: int) -> None:
            context = await chrome.new_context(viewport=browser.VIEWPORT)
            page = await context.new_page()
            for title in titles[k % 5:] + titles[:k % 5]:
                loads.append((title, await load_page(page, url, title, timeout_s)))
            await context.close()

        try:
            await asyncio.gather(*(one(k) for k in range(sessions)))
        finally:
            await chrome.close()
    return loads


def load_test(sessions: int, timeout_s: float) -> None:
    """Print health latency, page-load times and peak server memory under ``sessions`` concurrent sessions."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, browser.server(Path(tmp) / "server.log") as url:
        idle = [browser.health_seconds(url) for _ in range(10)]
        probe = HealthProbe(url)
        probe.start()
        start = time.monotonic()
        loads = asyncio.run(concurrent_sessions(url, sessions, timeout_s))
        wall = time.monotonic() - start
        probe.done.set()
        probe.join()
        memory = peak_rss_mb(f"--server.port {url.rsplit(':', 1)[1]}")
    load_after = os.getloadavg()
    health = np.array(probe.seconds)
    print(f"App under load: {sessions} concurrent sessions x 5 pages (headless Chromium, WORKBENCH_THREADS=1, "
          f"{os.cpu_count()} cores; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after)\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| health check, idle server: median / max (s) | {np.median(idle):.3f} / {max(idle):.3f} |")
    print(f"| health check under load: median / p95 / max (s) | {np.median(health):.3f} / "
          f"{np.quantile(health, 0.95):.3f} / {health.max():.3f} |")
    print(f"| health checks over 1 s | {int((health > 1).sum())} of {len(health)} |")
    for title in URL_PATHS:
        seconds = np.array([s for t, s in loads if t == title])
        print(f"| {title}: page load median / max (s) | {np.median(seconds):.2f} / {seconds.max():.2f} |")
    print(f"| all {len(loads)} page loads, wall (s) | {wall:.1f} |")
    print(f"| server peak memory (MB) | {memory:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=0,
                        help="measure health and page loads under this many concurrent sessions instead")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per page load (with --sessions)")
    parser.add_argument("--pages", nargs="+", choices=[t for t in PAGES if t != "Data"],
                        default=["Compare", "Uncertainty", "Systems", "Train"],
                        help="pages to time after the server start (default: all)")
    args = parser.parse_args()
    if args.sessions:
        load_test(args.sessions, args.timeout)
        return
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, browser.server(Path(tmp) / "server.log") as url:
        with browser.chromium() as page:
            start = time.monotonic()
            page.goto(f"{url}/data", wait_until="domcontentloaded")
            browser.wait_charts(page, PAGES["Data"], 180)
            startup = time.monotonic() - start
            probe = HealthProbe(url)  # from here on: the server is up and the workbench imported
            probe.start()
            meter = Meter(url.rsplit(":", 1)[1])
            for title in args.pages:
                first = meter(visit, page, title)
                interaction = interact(meter, page, title) if title in INTERACTIONS else None
                browser.go_to(page, "Data")  # away and back: the page's results are now all cached
                browser.wait_idle(page, 60)
                rows.append((title, first, interaction, meter(visit, page, title)))
                browser.go_to(page, "Data")
                browser.wait_idle(page, 60)
            interaction = interact(meter, page, "Data")  # the Data page is open (the server start drew it first)
            browser.go_to(page, "Train")
            browser.wait_idle(page, 60)
            rows.append(("Data", None, interaction, meter(visit, page, "Data")))
            probe.done.set()
            probe.join()
    load_after = os.getloadavg()
    print(f"App page speed (headless Chromium, WORKBENCH_THREADS=1, {os.cpu_count()} cores; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after)\n")
    print("| page | first visit (s) | cached interaction: step a number (s) | cached revisit (s) |")
    print("|---|---|---|---|")
    print(f"| server start + first page (Data; imports torch) | {startup:.2f} | | |")

    def cell(measured) -> str:  # wall seconds, then CPU seconds of the server / the browser
        return "" if measured is None else f"{measured[0]:.2f} (cpu {measured[1]:.2f} / {measured[2]:.2f})"

    for title, first, interaction, revisit in rows:
        print(f"| {title} | {cell(first) or '(server start above)'} | {cell(interaction)} | {cell(revisit)} |")
    print(f"\nslowest health check while pages loaded: {probe.worst:.3f} s over {probe.count} probes "
          "(target < 1 s)")
    print("first visit: click on the page link until its charts are drawn (Systems: including Generate); "
          "cached interaction: the page's trajectory number stepped back to one already shown, until the changed chart is redrawn; revisit: the page "
          "again with the same inputs (every chart redrawn). In brackets: CPU seconds the app server / the "
          "browser spent on the step; on a busy machine they bound what an idle 2-core machine would take.")


if __name__ == "__main__":
    main()
