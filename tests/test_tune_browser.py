"""The Tune tab in a real browser (Voila + Playwright + Debian's chromium, as test_dashboard_browser.py):
a tuning job on the local backend with the stand-in container, driven from the form to a finished
tuning card, a child's card and Train again. Screenshots: test-artifacts/13-tune-*.png."""

from __future__ import annotations

import json

import pytest

from amc_widgets.backends.base import TunesHyperparameters
from amc_widgets.backends.local import LocalBackend
from tests.conftest import wait_until
from tests.test_dashboard_browser import (
    FAKE_CONTAINER,
    browser,  # noqa: F401 - the fixture
    card_by_name,
    expect,
    fill,
    job_names,
    pages,  # noqa: F401 - the fixture
    shot,
    start_dashboard,
    tab,
)

if not issubclass(LocalBackend, TunesHyperparameters):  # the local tuner is built on its own branch
    pytest.skip("the local backend runs no tuning jobs in this checkout", allow_module_level=True)


@pytest.fixture()
def tuning_dashboard(tmp_path):
    # every score is a tenth for lr0 below 0.01: the best child is one with a larger learning rate
    dashboard = start_dashboard(tmp_path, {"AMC_CONTAINER_COMMAND": json.dumps(FAKE_CONTAINER), "FAKE_EPOCHS": "3",
                                           "FAKE_EPOCH_SECONDS": "0.3", "FAKE_WORSE_BELOW": "lr0:0.01",
                                           "AMC_MAX_JOBS": "2"})
    try:
        yield dashboard
    finally:
        dashboard.stop()


def range_input(page, name: str, key: str):
    return page.locator(f".amc-range-{name} .amc-range-{key} input, .amc-range-{name} .amc-range-{key} select").first


def test_tune_tab_runs_a_tuning_job_to_a_finished_card(pages, tuning_dashboard):  # noqa: F811
    page = pages(tuning_dashboard, timeout_ms=120_000)
    tab(page, "Train")
    fill(page, "epochs", "3")
    fill(page, "imgsz", "160")
    page.locator(".amc-start-from select").select_option(label="From scratch")

    tab(page, "Tune")
    expect(page.locator(".amc-tune-form")).to_be_visible()
    page.locator(".amc-field-tune-dataset select").select_option("demo-solder")
    expect(page.locator(".amc-tune-static")).to_contain_text("epochs: 3")
    for key, value in (("low", "0.001"), ("high", "0.1")):
        box = range_input(page, "lr0", key)
        box.fill(value)
        box.press("Tab")
    page.locator(".amc-tune-add-choice select").select_option("optimizer")
    page.locator("button.amc-tune-add").click()
    values = range_input(page, "optimizer", "values")
    values.fill("SGD, AdamW")
    values.press("Tab")
    for field, value in (("tune-max-jobs", "4"), ("tune-parallel", "5")):
        fill(page, field, value)

    # a problem is shown at its field, and nothing starts
    page.locator("button.amc-start-tuning").click()
    expect(page.locator(".amc-field-tune-parallel .amc-field-error")).to_contain_text("cannot be more than max jobs")
    expect(page.locator(".amc-tune-status")).to_contain_text("Fix the marked fields")
    expect(page.locator(".amc-tune-cost")).to_contain_text("4 training jobs, 4 at a time")
    shot(page, "13-tune-invalid")

    fill(page, "tune-parallel", "2")
    expect(page.locator(".amc-tune-cost")).to_contain_text("no cost. 4 training jobs, 2 at a time")
    page.locator("button.amc-start-tuning").click()
    expect(page.locator(".amc-tune-status")).to_contain_text("Started the tuning job", timeout=60_000)
    card = page.locator(".amc-tuning-card")
    expect(card).to_have_count(1)
    status = card.locator(".amc-tuning-status")
    wait_until(lambda: status.inner_text() == "Completed", 240, "the tuning job to complete")

    rows = card.locator(".amc-tc-row")
    expect(rows).to_have_count(4)
    expect(card.locator(".amc-tc-row.amc-tc-best")).to_have_count(1)
    expect(card.locator(".amc-counters")).to_contain_text("Completed 4")
    expect(card.locator(".amc-counters")).to_contain_text("Succeeded 4")
    # the charts are made anew when the last objective arrives (plotly draws them in a few seconds)
    expect(card.locator(".scatterlayer .trace")).to_have_count(2, timeout=60_000)  # each job, the best so far
    assert card.locator(".scatterlayer .point").count() >= 2  # jobs ending together may share a point
    expect(card.locator(".parcoords .axis-title")).to_have_text(["lr0 (log)", "optimizer", "mAP50-95"],
                                                                timeout=60_000)
    objectives = [float(v) for v in card.locator(".amc-tc-row td.amc-tc-objective").all_inner_texts()]
    assert objectives == sorted(objectives, reverse=True)  # best first
    best = rows.first.get_attribute("data-job")
    best_lr0 = float(rows.first.locator("td.amc-tc-p_lr0").inner_text())
    card.scroll_into_view_if_needed()
    shot(page, "13-tune-finished")

    # the children are not on the Jobs tab; a row opens one's card there
    tab(page, "Jobs")
    assert job_names(page) == []
    tab(page, "Tune")
    child = rows.nth(1).get_attribute("data-job")
    rows.nth(1).click()
    expect(card_by_name(page, child)).to_be_visible(timeout=60_000)  # its log and chart are read first
    expect(page.get_by_text("No training jobs yet")).to_have_count(0)
    assert job_names(page) == [child]
    expect(card_by_name(page, child).locator(".amc-status")).to_have_text("Completed")

    # train again with the best child's hyperparameters
    tab(page, "Tune")
    card.locator("button.amc-train-again").click()
    expect(page.locator(".amc-start-status")).to_contain_text(f"The hyperparameters of {best}")
    page.get_by_text("Learning rate and optimizer").click()
    assert float(page.locator(".amc-field-lr0 input").input_value()) == pytest.approx(best_lr0, rel=1e-3)
    shot(page, "13-tune-train-again")

    # a reload finds the tuning card again
    page.reload()
    page.wait_for_selector(".amc-app")
    tab(page, "Tune")
    expect(page.locator(".amc-tuning-card .amc-tuning-status")).to_have_text("Completed")
    expect(page.locator(".amc-tuning-card .amc-tc-row")).to_have_count(4)
    expect(page.locator(".amc-tuning-card .parcoords .axis-title")).to_have_count(3, timeout=60_000)  # plotly loads
