"""Issue 17 in a real browser (Voila, chromium): charts as wide as their box in a narrow window and
following it when it widens, 80 classes as sorted horizontal bars with the empty ones apart, emoji in
the log as words, and the local time estimate. Screenshots: test-artifacts/17-*-after.png."""

from __future__ import annotations

import json

import pytest

from amc_widgets.core.demo_dataset import make_demo_dataset
from tests.conftest import wait_until
from tests.test_dashboard_browser import (
    ARTIFACTS,
    FAKE_CONTAINER,
    browser,  # noqa: F401 - the fixture
    card_by_name,
    fill,
    pages,  # noqa: F401 - the fixture
    set_up_job,
    shot,
    start_dashboard,
    start_job,
    tab,
)
from tests.test_dataset_model import many_classes

# [width of the chart's drawing, width inside the box it sits in] of the first chart in the element
CHART_AND_BOX = """el => {
    const plot = el.querySelector('.js-plotly-plot'), box = getComputedStyle(plot.parentElement);
    return [plot.querySelector('.main-svg').getBoundingClientRect().width,
            parseFloat(box.width) - parseFloat(box.paddingLeft) - parseFloat(box.paddingRight)];
}"""


def assert_fills_its_box(locator) -> float:
    chart, box = locator.evaluate(CHART_AND_BOX)
    assert box - 8 <= chart <= box + 1, (chart, box)  # widgets keep a few pixels of margin
    return chart


@pytest.fixture()
def edges_dashboard(tmp_path):
    dashboard = start_dashboard(tmp_path, {"AMC_CONTAINER_COMMAND": json.dumps(FAKE_CONTAINER),
                                           "FAKE_EPOCHS": "6", "FAKE_EPOCH_SECONDS": "0.3", "AMC_MAX_JOBS": "1"})
    try:
        yield dashboard
    finally:
        dashboard.stop()


@pytest.mark.slow
def test_narrow_window_many_classes_plain_log_and_time_estimate(pages, edges_dashboard, tmp_path):  # noqa: F811
    coco_like = tmp_path / "coco-like"
    make_demo_dataset(coco_like, train=24, val=8, size=96, seed=2)
    many_classes(coco_like)
    page = pages(edges_dashboard, timeout_ms=120_000)
    page.set_viewport_size({"width": 820, "height": 1000})  # a notebook column, not a wide screen

    tab(page, "Dataset")
    fill(page, "dataset-path", str(coco_like))
    page.locator("button.amc-check-dataset").click()
    page.wait_for_selector(".amc-histogram .js-plotly-plot .bars path")
    shot(page, "17-many-classes-after")
    assert page.locator(".amc-histogram .bars path").count() == 3  # the classes with objects, one bar each
    assert "77 classes without any object" in page.locator(".amc-empty-classes").inner_text()
    assert "class_42" not in page.locator(".amc-dataset-report").inner_text()
    assert_fills_its_box(page.locator(".amc-histogram"))
    assert page.locator(".amc-histogram").evaluate(  # the box is as tall as its three bars, no blank below
        "el => el.getBoundingClientRect().height - el.querySelector('.main-svg').getBoundingClientRect().height") < 4

    set_up_job(page, "6", imgsz="160")
    assert "estimated once a local job has finished" in page.locator(".amc-time-estimate").inner_text()
    name = start_job(page)
    card = card_by_name(page, name)
    wait_until(lambda: card.locator(".amc-status").inner_text() == "Completed", 90, "completion")
    log = card.locator(".amc-log").inner_text()
    assert "Fast image access OK (ping" in log and "\u2705" not in log and "\U0001f680" not in log
    narrow = assert_fills_its_box(card)
    log_box = card.locator(".amc-log-box")
    log_box.evaluate("box => { box.scrollTop = -box.scrollHeight; }")  # column-reverse: its top, the first lines
    log_box.screenshot(path=str(ARTIFACTS / "17-log-after.png"))
    legends = card.locator(".legend").count()
    assert legends == 1  # one legend for both plots
    shot(page, "17-job-card-narrow-after")

    page.set_viewport_size({"width": 1360, "height": 1000})
    wait_until(lambda: card.evaluate(CHART_AND_BOX)[0] > narrow + 300, 20, "the chart to follow the wider window")
    wide = assert_fills_its_box(card)
    shot(page, "17-job-card-wide-after")
    # the column narrows with no window resize (JupyterLab's sidebar opened, a cell narrowed): it follows too
    page.evaluate("document.querySelector('.amc-app').style.maxWidth = '700px'")
    wait_until(lambda: card.evaluate(CHART_AND_BOX)[0] < wide - 300, 20, "the chart to follow its narrower column")
    assert_fills_its_box(card)
    page.evaluate("document.querySelector('.amc-app').style.maxWidth = ''")

    tab(page, "Train")
    estimate = page.locator(".amc-time-estimate")
    wait_until(lambda: f"from job {name}" in estimate.inner_text(), 30, "the estimate from the finished job")
    assert "That is long" not in estimate.inner_text()
    fill(page, "imgsz", "640")
    fill(page, "epochs", "2000")
    wait_until(lambda: "That is long for this machine" in estimate.inner_text(), 10, "the suggestion")
    page.locator(".amc-time-estimate").scroll_into_view_if_needed()
    shot(page, "17-time-estimate-after")

    page.set_viewport_size({"width": 820, "height": 1000})
    tab(page, "Compare")
    page.locator(".amc-compare-jobs select").select_option([name])
    wait_until(lambda: page.locator(".amc-compare .scatterlayer .trace").count() == 1, 30, "the comparison")
    narrow = assert_fills_its_box(page.locator(".amc-compare"))
    shot(page, "17-compare-after")
    # the window widens while the chart is hidden (plotly skips hidden charts): it fits once shown again
    tab(page, "Help")
    page.set_viewport_size({"width": 1360, "height": 1000})
    tab(page, "Compare")
    wait_until(lambda: page.locator(".amc-compare").evaluate(CHART_AND_BOX)[0] > narrow + 300, 20,
               "the chart to fit its box once shown")
    assert_fills_its_box(page.locator(".amc-compare"))
