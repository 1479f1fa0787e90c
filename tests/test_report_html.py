"""report.html is the whole report: every section, table and figure of report.md, the trade-off
figures as plotly charts, self-contained (no network). In headless Chromium it loads with no
console error, and every method and every claim is visible.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` (``make browser``) and the
``selenium`` package; it is skipped without them."""

import json
import re
import shutil

import pandas as pd
import pytest
from test_report_helpers import frames, make_experiment, relevance

from harness.report.build import build_report, report_dir

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    out = report_dir(tmp / "results", ["quick"])
    build_report(make_experiment(tmp), ["quick"], out, get_frames=frames, relevance=relevance())
    claims = pd.read_csv(out / "tables" / "claims.csv")
    methods = pd.read_csv(out / "tables" / "methods_top1_pct.csv")
    return out, sorted(methods["method"].unique()), list(claims["id"])


def test_page_holds_the_whole_report(report):
    out, labels, claim_ids = report
    page, markdown = (out / "report.html").read_text(), (out / "report.md").read_text()
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|<img[^>]+src='(?!data:)", page), "all inline"
    assert page.count("Plotly.newPlot") == 2  # accuracy against GFLOPs and against latency
    assert "runs: " in page  # hover carries run ids
    for heading in re.findall(r"^#+ (.*)$", markdown, flags=re.M):  # every section of report.md
        assert f">{heading.replace('&', '&amp;')}</h" in page, heading
    images = re.findall(r"^!\[[^\]]*\]\(figures/([^)]+)\)$", markdown, flags=re.M)
    assert page.count("<img alt=") == len(images) - 2  # the other figures, inlined
    assert page.count("<table>") == markdown.count("\n|---")  # every table
    for claim in claim_ids:
        assert f"<td>{claim}</td>" in page


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian chromium and chromium-driver (make browser)")
def test_page_in_headless_chromium(report, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    out, labels, claim_ids = report
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get((out / "report.html").as_uri())
        WebDriverWait(driver, 60).until(
            lambda d: (
                len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) == 2
                and d.find_elements(By.CSS_SELECTOR, ".legendtext")
            )
        )
        legend = {e.text for e in driver.find_elements(By.CSS_SELECTOR, ".legendtext")}
        claims_table = driver.find_element(By.ID, "claims-check").find_element(By.XPATH, "following::table[1]")
        claims_text = claims_table.text  # selenium returns only text a user can see
        tables_text = driver.find_element(By.ID, "tables").find_element(By.XPATH, "following::table[1]").text
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        traces = json.loads(
            driver.execute_script(
                "return JSON.stringify(document.querySelector('.js-plotly-plot').data.map("
                "t => ({name: t.name, hover: t.hovertext || []})))"
            )
        )
        driver.save_screenshot(str(out / "report_screenshot.png"))
    finally:
        driver.quit()
    assert errors == []
    for label in labels:
        assert any(text.startswith(label) for text in legend), f"{label} missing from legend {legend}"
        assert label in tables_text, f"{label} missing from the methods table"
    for claim in claim_ids:
        assert claim in claims_text, f"claim {claim} not visible"
    assert "oracle (non-deployable upper bound)" in legend and "Pareto front (deployable)" in legend
    hover = " ".join(h for t in traces for h in t["hover"])
    assert "objective" in hover and "per-video std" in hover and "runs: " in hover
