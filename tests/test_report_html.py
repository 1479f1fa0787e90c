"""The interactive page: self-contained (no network), and in headless Chromium it loads with no
console errors, shows every method in the legend and carries run ids and params in its hover text.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; skipped without them."""
import json
import re
import shutil

import pandas as pd
import pytest

from harness.report.collect import label_series
from harness.report.html import write_html
from harness.report.pareto import seed_summary

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def trial(method, budget, seed, top1, gflops, **params):
    return {"experiment": "e", "run_id": f"run-{method}-{budget}-{seed}", "status": "FINISHED", "method": method,
            "dataset": "synthetic", "backbone": "bb", "seed": seed, "budget_param": "k", "budget": budget,
            "deployable": method != "oracle", "dynamic": method == "liteeval", "params": dict(params, k=budget),
            "top1": top1, "gflops_per_video_mean": gflops, "gflops_per_video_std": 0.1 * gflops,
            "gflops_per_video_min": 0.8 * gflops, "gflops_per_video_max": 1.3 * gflops,
            "latency_ms_per_video": 2 * gflops}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    rows = [trial(m, k, s, 40 + 3 * k + off + s, k * mult, **extra)
            for m, off, mult, extra in [("uniform", 0, 1.0, {}), ("oracle", 20, 1.0, {}), ("liteeval", 4, 1.2, {}),
                                        ("scsampler", 5, 1.3, {"objective": "ac"}),
                                        ("scsampler", 2, 1.3, {"objective": "sal_rank"})]
            for k in (1, 2, 4) for s in (0, 1)]
    points = seed_summary(label_series(pd.DataFrame(rows)))
    path = write_html(points, ["top1"], tmp_path_factory.mktemp("html") / "report.html", "test report", "FLOPs note")
    return path, sorted(points["label"].unique())


def test_page_is_self_contained(page):
    text = page[0].read_text()
    assert not re.search(r"<script[^>]+src=", text), "all JavaScript must be inline"
    assert "Plotly.newPlot" in text or "newPlot" in text
    assert "run-uniform-1-0" in text  # hover carries run ids


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian chromium and chromium-driver")
def test_page_in_headless_chromium(page, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    path, labels = page
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get(path.as_uri())
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".legendtext"))
        legend = {e.text for e in driver.find_elements(By.CSS_SELECTOR, ".legendtext")}
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        traces = json.loads(driver.execute_script(
            "return JSON.stringify(document.querySelector('.js-plotly-plot').data.map("
            "t => ({name: t.name, hover: t.hovertext || []})))"))
    finally:
        driver.quit()
    assert errors == []
    for label in labels:
        assert any(text.startswith(label) for text in legend), f"{label} missing from legend {legend}"
    assert "oracle (non-deployable)" in legend and "Pareto front (deployable)" in legend
    hover = " ".join(h for t in traces for h in t["hover"])
    assert "run-liteeval-2-1" in hover and "objective" in hover and "per-video std" in hover
