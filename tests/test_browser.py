"""The Streamlit app in a real browser: a server subprocess driven by headless Chromium (Playwright).

Run with ``pytest -m browser tests/test_browser.py``. Screenshots go to a pytest tmp dir, or to the
folder named by ``WORKBENCH_SCREENSHOTS`` (the README's pictures live in ``app/screenshots``).
"""
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))
import browser  # noqa: E402  (the app folder is not a package)

# Seconds each step may take on an idle machine; every wait stretches them by the slowdown measured at
# that moment (browser.scaled: wall over CPU time of a fixed probe), so a loaded machine gets
# proportionally longer instead of failing at a fixed clock (90 s ran out under load).
FIRST_CHARTS_TIMEOUT_S = 60  # a cold server imports torch and the workbench first
CHARTS_TIMEOUT_S = 30
TRAIN_TIMEOUT_S = 40  # an 8 s training budget, then the model is kept and the page redrawn
# keys of charts the default page draws for the shipped lorenz63 demo (st.plotly_chart key -> .st-key-<key>)
COMPARE_CHARTS = ["compare_timeseries", "compare_phase2d", "field_true", "field_learned", "field_error", "ic_phase"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not browser.CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]

FIRST_POINT_JS = """([key, name]) => {
    const gd = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    const trace = gd._fullData.find(t => t.name === name);
    return [trace.x[0], trace.y[0]];
}"""


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    try:
        with browser.server(log) as address:
            yield address
    finally:
        print(f"streamlit server log:\n{log.read_text(errors='replace')[-5000:]}")  # shown on failure


@pytest.fixture()
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("WORKBENCH_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def assert_clean(page, where: str) -> None:
    found = browser.problems(page)
    assert not found, f"{where}: {found}"


def test_pages_render_and_the_phase_portrait_sets_the_initial_condition(url, shots):
    console_errors = []
    start = time.monotonic()

    def mark(step: str) -> None:  # shown with -s, or on failure
        print(f"[browser] {time.monotonic() - start:6.1f} s  {step}")

    with browser.chromium() as page:
        page.on("pageerror", lambda exc: console_errors.append(str(exc)))
        page.goto(url, wait_until="domcontentloaded", timeout=browser.scaled(CHARTS_TIMEOUT_S) * 1000)

        # default page: Compare (time series, phase portraits, vector fields, own initial condition)
        page.locator("h1", has_text="Learned vs true flow").first.wait_for(
            timeout=browser.scaled(FIRST_CHARTS_TIMEOUT_S) * 1000)
        browser.wait_charts(page, COMPARE_CHARTS, FIRST_CHARTS_TIMEOUT_S)
        assert_clean(page, "Compare")
        mark("Compare rendered")
        browser.screenshot(page, shots / "compare.png")

        # a click on the phase portrait starts both flows at the clicked point
        clicked = browser.click_point(page, "ic_phase", "click to start here", 21 * 5 + 3)
        page.wait_for_function(
            "([key, x, y]) => { const gd = document.querySelector(`.st-key-${key} .js-plotly-plot`);"
            " const t = gd && gd._fullData.find(t => t.name === 'true');"
            " return t && Math.abs(t.x[0] - x) < 1e-9 && Math.abs(t.y[0] - y) < 1e-9; }",
            arg=["ic_phase", clicked["x"], clicked["y"]], timeout=browser.scaled(CHARTS_TIMEOUT_S) * 1000)
        browser.wait_idle(page, CHARTS_TIMEOUT_S)
        assert page.evaluate(FIRST_POINT_JS, ["ic_phase", "learned"]) == pytest.approx([clicked["x"], clicked["y"]])
        assert_clean(page, "Compare after a click on the phase portrait")
        mark("initial condition set by a click")

        # Systems: generate trajectories, then look at them
        browser.go_to(page, "Systems")
        browser.wait_idle(page, CHARTS_TIMEOUT_S)
        assert_clean(page, "Systems")
        page.get_by_role("button", name="Generate").click()
        page.locator('[data-testid="stAlertContentSuccess"]').first.wait_for(
            timeout=browser.scaled(CHARTS_TIMEOUT_S) * 1000)
        browser.wait_charts(page, ["systems_timeseries", "systems_phase"], CHARTS_TIMEOUT_S)
        assert_clean(page, "Systems after Generate")
        mark("Systems generated")
        browser.screenshot(page, shots / "systems.png")

        # Uncertainty: fan chart, calibration, marginals
        browser.go_to(page, "Uncertainty")
        browser.wait_charts(page, ["fan_chart", "coverage", "marginals"], CHARTS_TIMEOUT_S)
        assert_clean(page, "Uncertainty")
        mark("Uncertainty rendered")
        browser.screenshot(page, shots / "uncertainty.png")

        # Data shows a shipped real series on a date axis
        browser.go_to(page, "Data")
        browser.wait_charts(page, ["data_series"], CHARTS_TIMEOUT_S)
        assert_clean(page, "Data")
        browser.choose(page, "dataset", "real: co2 (time split)")
        page.wait_for_function("() => document.querySelector('.st-key-data_series .xtitle') && "
                               "document.querySelector('.st-key-data_series .xtitle').textContent === 'date'",
                               timeout=browser.scaled(CHARTS_TIMEOUT_S) * 1000)
        browser.wait_idle(page, CHARTS_TIMEOUT_S)
        assert_clean(page, "Data (a real series with dates)")
        browser.screenshot(page, shots / "data.png")
        mark("Data rendered")

        # a measured series: train briefly, then the forecast of its held-out tail beside the baselines
        browser.go_to(page, "Train")
        browser.wait_idle(page, CHARTS_TIMEOUT_S)
        browser.choose(page, "Dataset", "real: co2 (time split)")
        browser.wait_idle(page, CHARTS_TIMEOUT_S)
        page.locator('[data-testid="stNumberInput"]', has_text="time budget").locator("input").fill("8")
        page.get_by_role("button", name="Train").click()
        page.locator('[data-testid="stAlertContentSuccess"]', has_text="Trained").first.wait_for(
            timeout=browser.scaled(TRAIN_TIMEOUT_S) * 1000)
        browser.wait_idle(page, CHARTS_TIMEOUT_S)
        assert_clean(page, "Train on a real series")
        browser.screenshot(page, shots / "train.png")
        browser.go_to(page, "Compare")
        browser.wait_idle(page, CHARTS_TIMEOUT_S)
        browser.choose(page, "Model", "on real: co2")
        browser.wait_charts(page, ["holdout", "skill_by_horizon"], CHARTS_TIMEOUT_S)
        assert_clean(page, "Compare on a real series")
        browser.screenshot(page, shots / "forecast.png")
        mark("done")
    assert not console_errors, f"JavaScript errors in the page: {console_errors}"
