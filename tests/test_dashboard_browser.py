"""The dashboard in a real browser: Voila serving dashboard.ipynb, driven by Playwright + chromium.

The fast test runs jobs with the stand-in container (tests/fake_container.py, through
$AMC_CONTAINER_COMMAND); the slow one trains a real tiny model end to end and downloads its ONNX.
Screenshots of the main states land in test-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from amc_widgets.core.demo_dataset import make_demo_dataset
from tests.conftest import free_port, stop_process_group, wait_until, zip_folder
from tests.label_exports import write_cvat_yolo11

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FAKE_CONTAINER = [sys.executable, str(REPO / "tests" / "fake_container.py")]
USER = "tester"

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
if not Path(CHROMIUM).exists():  # `make test` installs it; say so plainly elsewhere
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (make test does)", allow_module_level=True)


class Dashboard:
    """A Voila server started by `amc serve` on a temporary workspace; ``env`` adds to (None: removes
    from) this process's environment, ``args`` to `amc serve`'s."""

    def __init__(self, home: Path, env: dict[str, str | None], args: tuple[str, ...] = ()):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = open(home.parent / "voila.log", "w")
        environment = {**os.environ, "AMC_HOME": str(home), "AMC_USER": USER, "PYTHONPATH": str(REPO), **env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "amc_widgets.cli", "serve", "--port", str(self.port), *args],
            env={key: value for key, value in environment.items() if value is not None},
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=2)
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("Voila did not start:\n" + (home.parent / "voila.log").read_text()) from None
                time.sleep(0.3)

    def dataset_path(self, name: str) -> Path:
        return self.home / "users" / USER / "custom-uploads" / name

    def kernels(self) -> list:
        """The kernel processes Voila runs now (one per page view), oldest first."""
        import psutil

        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        found = []
        for child in children:
            try:
                if "ipykernel_launcher" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                    found.append(child)
            except psutil.NoSuchProcess:
                continue
        return sorted(found, key=lambda process: process.create_time())

    def log_text(self) -> str:
        return (self.home.parent / "voila.log").read_text()

    def stop(self) -> None:
        stop_process_group(self.process)  # voila, which shuts its kernels down on SIGTERM
        self.log.close()


def start_dashboard(tmp_path: Path, env: dict[str, str | None], args: tuple[str, ...] = ()) -> Dashboard:
    """A workspace with a small demo dataset stored as demo-solder, and Voila serving it."""
    home = tmp_path / "home"
    from amc_widgets.backends.local import LocalBackend

    source = tmp_path / "demo"
    make_demo_dataset(source, train=32, val=16, size=128, seed=1)
    LocalBackend(home=home, user=USER).store_dataset(source, name="demo-solder")
    shutil.rmtree(source)
    return Dashboard(home, env, args)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def pages(browser, request):
    """Opens pages on a dashboard; when the test fails, screenshots each as it was (failed-<test>-N.png)."""
    opened = []

    def open_page(dashboard: Dashboard, timeout_ms: int = 60_000):
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        page.set_default_timeout(timeout_ms)
        page.goto(dashboard.url)
        page.wait_for_selector(".amc-app")
        opened.append(page)
        return page

    failures_before = request.session.testsfailed
    yield open_page
    for number, page in enumerate(opened):
        if request.session.testsfailed > failures_before and not page.is_closed():
            shot(page, f"failed-{request.node.name}-{number}")
        if not page.is_closed():
            page.close()


def shot(page, name: str) -> None:
    """The whole dashboard as a PNG in test-artifacts/ (Voila scrolls inside the page, so the viewport
    is stretched to the app's height for the picture)."""
    ARTIFACTS.mkdir(exist_ok=True)
    viewport = page.viewport_size
    height = page.evaluate("() => Math.ceil(document.querySelector('.amc-app').getBoundingClientRect().bottom)")
    page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], height + 40)})
    try:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    finally:
        page.set_viewport_size(viewport)


def tab(page, title: str) -> None:
    page.get_by_role("tab", name=title).click()


def fill(page, field: str, value: str) -> None:
    """Type into a form field and leave it, as a user does (fields sync when left)."""
    box = page.locator(f".amc-field-{field} input").first
    box.fill(value)
    box.press("Tab")


def card_by_name(page, name: str):
    return page.locator(f".amc-job-{name}")


def job_names(page) -> list[str]:
    classes = page.locator(".amc-card").evaluate_all("els => els.map(e => e.className)")
    return [c.split("amc-job-")[1].split()[0] for c in classes]


def table_names(page) -> list[str]:
    """The jobs on the finished jobs' table's page, top to bottom."""
    return page.locator(".amc-jt-row").evaluate_all("rows => rows.map(r => r.dataset.job)")


def chart_points(card) -> int:
    """Points drawn on the card's first chart line (one per epoch reached)."""
    return card.locator(".js-plotly-plot .scatterlayer .trace").first.locator("path.point").count()


def set_up_job(page, epochs: str, **fields: str) -> None:
    tab(page, "Train")
    page.locator(".amc-train-dataset select").select_option("demo-solder")
    fill(page, "epochs", epochs)
    for key, value in fields.items():
        fill(page, key, value)


def start_job(page) -> str:
    before = set(job_names(page))
    page.locator("button.amc-start-training").click()
    page.wait_for_selector(".amc-card")
    return wait_until(lambda: (set(job_names(page)) - before) and (set(job_names(page)) - before).pop(),
                      30, "a new job card")


@pytest.fixture()
def fake_dashboard(tmp_path):
    # 30 s a job: long enough that a busy machine's browser still sees both running before the stop
    dashboard = start_dashboard(tmp_path, {"AMC_CONTAINER_COMMAND": json.dumps(FAKE_CONTAINER),
                                           "FAKE_EPOCHS": "30", "FAKE_EPOCH_SECONDS": "1.0", "AMC_MAX_JOBS": "2"})
    try:
        yield dashboard
    finally:
        dashboard.stop()


def test_check_train_stop_reload_in_browser(pages, fake_dashboard):
    page = pages(fake_dashboard)
    shot(page, "01-connection")
    assert "Workspace" in page.locator(".amc-connection-details").inner_text()

    # check the demo dataset: report and class histogram
    tab(page, "Dataset")
    fill(page, "dataset-path", str(fake_dashboard.dataset_path("demo-solder")))
    page.locator("button.amc-check-dataset").click()
    page.wait_for_selector(".amc-dataset-report :text('Ready for training')")
    report = page.locator(".amc-dataset-report").inner_text()
    assert "good, insufficient, bridge" in report and "32" in report
    page.wait_for_selector(".amc-histogram .js-plotly-plot .bars path")
    assert page.locator(".amc-histogram .bars path").count() == 3
    assert "demo-solder" in page.locator(".amc-stored-datasets select").inner_text()
    shot(page, "02-dataset-report")

    # bad values are marked at the field, and nothing starts
    set_up_job(page, "0")
    page.get_by_text("Learning rate and optimizer").click()  # the editor's groups start collapsed
    fill(page, "lr0", "fast")
    expect(page.locator(".amc-field-epochs .amc-field-error")).to_contain_text("must be >= 1")
    expect(page.locator(".amc-field-lr0 .amc-field-error")).to_contain_text("must be a number")
    page.locator("button.amc-start-training").click()
    page.wait_for_selector(".amc-start-status :text('Fix the marked fields')")
    expect(page.locator(".amc-field-epochs.amc-invalid")).to_have_count(1)
    shot(page, "03-invalid-fields")

    # two jobs at once
    fill(page, "epochs", "30")
    fill(page, "lr0", "0.01")
    expect(page.locator(".amc-invalid")).to_have_count(0)
    first = start_job(page)
    tab(page, "Train")
    second = start_job(page)
    cards = {name: card_by_name(page, name) for name in (first, second)}
    for name, card in cards.items():
        wait_until(lambda card=card: "epoch=3 " in card.locator(".amc-log").inner_text(), 60, f"{name}'s log")
        points = wait_until(lambda card=card: chart_points(card) >= 3, 30, f"{name}'s chart")
        wait_until(lambda card=card, points=points: chart_points(card) > points, 30, f"{name}'s chart to grow")
    shot(page, "04-two-jobs-running")
    expect(page.locator(".modebar-btn[data-title='Share chart...']")).to_have_count(0)  # nothing to Plotly Cloud

    # stop the second; the first completes
    cards[second].locator("button.amc-stop-job").click()
    wait_until(lambda: cards[second].locator(".amc-status").inner_text() == "Stopped", 60, "the stop")
    wait_until(lambda: cards[first].locator(".amc-status").inner_text() == "Completed", 90, "completion")
    wait_until(lambda: chart_points(cards[first]) == 30, 30, "every epoch on the chart")  # kept live all along
    # the log overflows its box, and the box shows its newest line
    wait_until(lambda: cards[first].locator(".amc-log-box").evaluate("""box => {
        const outer = box.getBoundingClientRect(), text = box.querySelector('pre').getBoundingClientRect();
        return box.scrollHeight > box.clientHeight && text.bottom <= outer.bottom && text.bottom > outer.bottom - 20;
    }"""), 10, "the log box to scroll to its newest line")  # the scroll follows the last update by a frame
    assert "last line without newline" in cards[first].locator(".amc-log").inner_text()
    cards[first].locator("button.amc-download-job").click()
    page.wait_for_selector(f".amc-job-{first} .amc-download-info :text('no ONNX model')")
    shot(page, "05-stopped-and-completed")

    # a reload lists both in the finished jobs' table; a row opens the card, with its log and chart
    page.reload()
    page.wait_for_selector(".amc-app")
    tab(page, "Jobs")
    page.wait_for_selector(".amc-jt-row")
    assert set(table_names(page)) == {first, second} and job_names(page) == []
    assert page.locator(f".amc-jt-row[data-job='{second}'] .amc-jt-status").inner_text() == "Stopped"
    page.locator(f".amc-jt-row[data-job='{first}']").click()
    page.wait_for_selector(f".amc-job-{first}")
    wait_until(lambda: "epoch=30 " in card_by_name(page, first).locator(".amc-log").inner_text(), 30, "the log")
    wait_until(lambda: chart_points(card_by_name(page, first)) >= 30, 30, "the restored chart")
    shot(page, "06-after-reload")

    tab(page, "Compare")
    page.locator(".amc-compare-jobs select").select_option([first, second])
    page.locator(".amc-compare-metric select").select_option("mAP50")
    wait_until(lambda: page.locator(".amc-compare .scatterlayer .trace").count() == 2, 30, "the comparison")
    shot(page, "07-compare")
    tab(page, "Help")
    page.wait_for_selector(".amc-help h2")
    page.close()


def test_results_view_of_a_finished_job(pages, tmp_path):
    dashboard = start_dashboard(tmp_path, {"AMC_CONTAINER_COMMAND": json.dumps(FAKE_CONTAINER), "FAKE_EPOCHS": "3",
                                           "FAKE_EPOCH_SECONDS": "0.3", "FAKE_RESULTS": "1"})
    try:
        page = pages(dashboard)
        set_up_job(page, "3")
        name = start_job(page)
        card = card_by_name(page, name)
        wait_until(lambda: card.locator(".amc-status").inner_text() == "Completed", 90, "completion")
        assert card.locator(".amc-results").count() == 0  # built only when asked for
        card.locator("button.amc-results-job").click()
        table = card.locator(".amc-per-class")
        expect(table).to_contain_text("bridge", timeout=90_000)
        assert [row.split("\t")[:3] for row in table.inner_text().splitlines()[1:]] == [
            ["all", "3", "4"], ["good", "2", "2"], ["bridge", "2", "2"]]
        expect(card.locator(".amc-results .js-plotly-plot")).to_have_count(2)
        expect(card.locator(".amc-results .gtitle").first).to_contain_text("Confusion matrix")
        table.scroll_into_view_if_needed()
        shot(page, "09-results-table-and-figures")
        gallery = card.locator(".amc-gallery")
        expect(gallery.locator("img")).to_have_count(3)
        expect(gallery.locator(".amc-msg").first).to_contain_text("b.jpg: 0 of 1 found, 1 missed, 3 false")

        handle = card.locator(".amc-results-conf .noUi-handle")
        handle.focus()
        for _ in range(5):  # 0.25 -> 0.50: the 0.3 'bridge' box drops out
            handle.press("ArrowRight")
        expect(gallery.locator(".amc-msg").first).to_contain_text("b.jpg: 0 of 1 found, 1 missed, 2 false")
        expect(card.locator(".amc-results")).to_contain_text("2 of 4 objects found at confidence >= 0.50")

        image = dashboard.home / "downloads" / name / "output" / "gallery" / "a.jpg"
        card.locator(".amc-results-path input").fill(str(image))
        card.locator("button.amc-results-run").click()
        expect(card.locator("img.amc-results-user-image")).to_be_visible()
        expect(card.locator(".amc-results")).to_contain_text("2 object(s) found on a.jpg (confidence >= 0.50)")
        shot(page, "10-results-gallery-and-your-image")
    finally:
        dashboard.stop()


def test_zipped_cvat_export_shows_format_split_and_labelled_images(pages, fake_dashboard, small_dataset, tmp_path):
    archive = tmp_path / "line3-cvat.zip"
    zip_folder(write_cvat_yolo11(small_dataset, tmp_path / "cvat"), archive).close()
    page = pages(fake_dashboard, timeout_ms=180_000)  # Voila runs the notebook before the page loads: slow when busy
    tab(page, "Dataset")
    with page.expect_file_chooser() as chooser:  # the widget's file input is never in the page: its button opens it
        page.locator(".amc-dataset-check .widget-upload").click()
    chooser.value.set_files(str(archive))
    page.wait_for_selector(".amc-dataset-report :text('Ready for training')")
    report = page.locator(".amc-dataset-report").inner_text()
    assert "Format: CVAT YOLO 1.1, converted to YOLO" in report
    assert "Split: 80/20 automatic split (seed 0, stratified by class): 38 train, 10 val images" in report
    gallery = page.locator(".amc-gallery img")
    expect(gallery).to_have_count(9, timeout=120_000)
    assert page.locator(".amc-gallery").inner_text().split()[0] in {"good", "insufficient", "bridge"}
    page.evaluate("document.querySelector('.amc-app').scrollIntoView()")
    shot(page, "12-dataset-cvat-preview")
    page.locator(".amc-dataset-preview input[type=text]").fill("board_val_0004.jpg")
    page.locator("button.amc-show-image").click()
    expect(page.locator(".amc-dataset-preview")).to_contain_text(re.compile(r"images/(train|val)/board_val_0004\.jpg"),
                                                                 timeout=120_000)
    shot(page, "13-dataset-image-by-name")
    fill(page, "store-name", "line3")
    page.locator("button.amc-store-dataset").click()
    expect(page.locator(".amc-dataset-check")).to_contain_text("Stored 'line3'", timeout=60_000)
    assert (fake_dashboard.dataset_path("line3") / "labels" / "val").is_dir()


def test_start_from_a_previous_jobs_weights_in_browser(pages, tmp_path, stand_in_asset):
    """The stand-in container leaves a real (untrained, 80-class) checkpoint as each job's best.pt."""
    dashboard = start_dashboard(tmp_path, {"AMC_CONTAINER_COMMAND": json.dumps(FAKE_CONTAINER), "FAKE_EPOCHS": "3",
                                           "FAKE_EPOCH_SECONDS": "0.2", "FAKE_BEST_PT": str(stand_in_asset)})
    try:
        page = pages(dashboard)
        set_up_job(page, "3")
        page.locator(".amc-field-model select").select_option("yolov5n")  # the size the checkpoint has
        expect(page.locator(".amc-start-from select")).to_have_value(re.compile(".+"))
        page.locator(".amc-start-from select").select_option(label="From scratch")  # no COCO file here
        first = start_job(page)
        wait_until(lambda: card_by_name(page, first).locator(".amc-status").inner_text() == "Completed", 60, "job 1")
        expect(card_by_name(page, first).locator(".amc-facts")).to_contain_text("Weights from scratch")

        tab(page, "Train")
        page.locator(".amc-start-from select").select_option(label="A previous job")
        expect(page.locator(".amc-weights-job select")).to_contain_text(f"{first} (mAP50-95 ")
        shot(page, "14-start-from-previous-job")
        second = start_job(page)
        card = card_by_name(page, second)
        wait_until(lambda: card.locator(".amc-status").inner_text() == "Completed", 60, "job 2")
        lineage = re.compile(rf"Weights job {first} \(sha256 [0-9a-f]{{12}}\)")
        expect(card.locator(".amc-facts")).to_contain_text(lineage)
        assert re.search(r"fake container, weights: \['.+\.pt'\]", card.locator(".amc-log").inner_text())
        shot(page, "15-job-started-from-weights")
        tab(page, "Train")
        expect(page.locator(".amc-weights-note")).to_contain_text("fine-tuning with a new detection head")
        page.close()
    finally:
        dashboard.stop()


@pytest.fixture()
def real_dashboard(tmp_path):
    dashboard = start_dashboard(tmp_path, {"AMC_MAX_JOBS": "1"})
    try:
        yield dashboard
    finally:
        dashboard.stop()


@pytest.mark.slow
def test_real_training_downloads_a_working_onnx_model_with_a_preview(pages, real_dashboard):
    import onnxruntime as ort

    page = pages(real_dashboard)
    set_up_job(page, "2", imgsz="96", workers="0")
    page.locator(".amc-field-model select").select_option("yolov5n")
    fill(page, "batch", "8")
    name = start_job(page)
    card = card_by_name(page, name)
    wait_until(lambda: card.locator(".amc-status").inner_text() in ("Completed", "Failed"), 400, "training")
    assert card.locator(".amc-status").inner_text() == "Completed", card.locator(".amc-log").inner_text()[-2000:]
    wait_until(lambda: chart_points(card) == 2, 30, "both epochs on the chart")

    card.locator("button.amc-download-job").click()
    onnx = Path(card.locator(".amc-onnx-path").inner_text(timeout=120_000))
    assert onnx.name == "best.onnx" and onnx.is_file()
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[2:] == [96, 96]
    preview = card.locator("img.amc-preview")
    expect(preview).to_be_visible()
    assert preview.evaluate("img => img.naturalWidth") == 128  # the validation image, boxes drawn on it
    expect(card.locator(".amc-download-info")).to_contain_text("object(s) found on")
    shot(page, "08-real-training-downloaded")

    card.locator("button.amc-results-job").click()  # the real card's numbers and gallery
    table = card.locator(".amc-per-class")
    expect(table).to_contain_text("insufficient", timeout=120_000)
    assert [row.split("\t")[0] for row in table.inner_text().splitlines()[1:]] == [
        "all", "good", "insufficient", "bridge"]
    expect(card.locator(".amc-results .js-plotly-plot")).to_have_count(2)
    expect(card.locator(".amc-gallery img")).to_have_count(12)  # the 12 worst of the 16 validation images
    table.scroll_into_view_if_needed()
    shot(page, "08b-real-training-results")


SECRET = "wJalrXUtnFEMI-never-on-the-page"


def choose_instance(page, instance_type: str) -> None:
    """Pick an instance by type; the picker's labels read 'ml.g4dn.xlarge - 4 vCPU, 1 x T4 ...' (with
    non-breaking spaces in the page)."""
    picker = page.locator(".amc-instance select")
    label = wait_until(lambda: next((text for text in picker.locator("option").all_inner_texts()
                                     if text.replace("\xa0", " ").startswith(instance_type + " ")), None),
                       30, instance_type)
    picker.select_option(label=label)


@pytest.fixture()
def aws_dashboard(tmp_path):
    """The dashboard with every AWS call going to moto on 127.0.0.1 (boto3 honours AWS_ENDPOINT_URL)."""
    from tests.sagemaker_harness import MotoServer, moto_client_factory

    with MotoServer() as moto:
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                         "Principal": {"Service": "sagemaker.amazonaws.com"}}]}
        clients = moto_client_factory(moto.endpoint)
        role = clients("iam").create_role(RoleName="AmcExecution", AssumeRolePolicyDocument=json.dumps(trust))
        clean_env = {key: None for key in os.environ if key.startswith("AWS_")}
        dashboard = start_dashboard(tmp_path, {**clean_env, "AWS_ENDPOINT_URL": moto.endpoint,
                                               "AWS_CONFIG_FILE": str(tmp_path / "none"),
                                               "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")})
        try:
            yield dashboard, clients, role["Role"]["Arn"]
        finally:
            dashboard.stop()


def test_aws_connection_upload_and_instance_form_in_browser(pages, aws_dashboard, small_dataset):
    dashboard, clients, role_arn = aws_dashboard
    page = pages(dashboard)
    page.get_by_role("button", name="AWS SageMaker").click()
    fill(page, "access-key", "AKIAEXAMPLEKEY")
    fill(page, "secret", SECRET)
    fill(page, "region", "us-east-1")
    page.locator("button.amc-test-connection").click()
    details = page.locator(".amc-connection-details")
    expect(details).to_contain_text("sagemaker-us-east-1-123456789012 (will be created)")
    expect(page.locator(".amc-field-role input")).to_have_value(role_arn)  # the role SageMaker may assume
    page.locator("button.amc-connect").click()
    expect(page.locator(".amc-connection-status")).to_contain_text("Connected to AWS")
    expect(page.locator(".amc-header")).to_contain_text("Bucket: sagemaker-us-east-1-123456789012")
    expect(page.locator(".amc-field-secret input")).to_have_value("")  # used once, then forgotten
    assert clients("s3").head_bucket(Bucket="sagemaker-us-east-1-123456789012")  # created when connecting
    shot(page, "09-aws-connected")

    # a dataset goes to the user's own prefix in S3
    tab(page, "Dataset")
    fill(page, "dataset-path", str(small_dataset))
    page.locator("button.amc-check-dataset").click()
    page.wait_for_selector(".amc-dataset-report :text('Ready for training')")
    fill(page, "store-name", "solder")
    page.locator("button.amc-store-dataset").click()
    expect(page.locator(".amc-dataset-check")).to_contain_text("Stored 'solder'", timeout=60_000)
    expect(page.locator(".amc-stored-datasets select")).to_contain_text("solder")
    space = f"users/{clients('sts').get_caller_identity()['UserId']}/"  # the caller's aws:userid, as AWS gives it
    keys = [o["Key"] for o in clients("s3").list_objects_v2(
        Bucket="sagemaker-us-east-1-123456789012", Prefix=f"{space}custom-uploads/solder/")["Contents"]]
    assert f"{space}custom-uploads/solder/data.yaml" in keys

    # SageMaker instances with prices; several instances only on GPU types
    tab(page, "Train")
    expect(page.locator(".amc-train-dataset select")).to_have_value("solder")  # the stored one, chosen
    choose_instance(page, "ml.m5.xlarge")
    count = page.locator(".amc-train input[type=number]").first
    expect(count).to_be_disabled()
    choose_instance(page, "ml.g4dn.12xlarge")
    count.fill("2")
    count.press("Tab")
    expect(page.locator(".amc-field-batch input[type=text]")).to_have_value("128")  # 16 x 4 GPUs x 2 instances
    expect(page.locator(".amc-cost")).to_contain_text("$")
    expect(page.locator(".amc-cost")).to_contain_text("900 GB NVMe instance storage for the 0.0 GB dataset")
    # moto has no Price List: the built-in table's price, labelled as such
    expect(page.locator(".amc-cost")).to_contain_text("built-in us-east-1 list price of 2024, an estimate")
    max_wait = page.locator(".amc-max-wait input")
    expect(max_wait).to_be_disabled()  # only spot jobs wait
    page.get_by_text("spot (cheaper").click()
    max_wait.fill("1")
    max_wait.press("Tab")
    expect(page.locator(".amc-train")).to_contain_text("max wait hours: must be at least max hours (2)")
    shot(page, "11-aws-spot-max-wait")
    max_wait.fill("")
    max_wait.press("Tab")
    expect(page.locator(".amc-train")).not_to_contain_text("max wait hours")
    shot(page, "10-aws-train-form")
    assert SECRET not in page.content()
    assert SECRET not in (dashboard.home.parent / "voila.log").read_text()


# --- kernels of gone pages (issue 21) ---------------------------------------------------------------

CULL_AFTER = 6  # seconds (`amc serve` then checks every second); a loaded browser may take 2 s from
# the end of the page to its kernel connection, while the kernel counts as unwatched


def fake_job_dashboard(tmp_path: Path, epochs: int, epoch_seconds: float) -> Dashboard:
    return start_dashboard(tmp_path, {"AMC_CONTAINER_COMMAND": json.dumps(FAKE_CONTAINER), "FAKE_EPOCHS": str(epochs),
                                      "FAKE_EPOCH_SECONDS": str(epoch_seconds), "AMC_MAX_JOBS": "1"},
                           args=("--cull-after", str(CULL_AFTER)))


def latest_epoch(card) -> int:
    """The last epoch the card's log shows (0: none yet)."""
    epochs = re.findall(r"\bepoch=(\d+) ", card.locator(".amc-log").inner_text())
    return int(epochs[-1]) if epochs else 0


def stop_job_and_wait(dashboard: Dashboard, name: str) -> None:
    """Jobs outlive the server (their runner is detached): stop this one before the test ends."""
    from amc_widgets.backends.local import LocalBackend
    from amc_widgets.core.jobs import TERMINAL_STATUSES

    backend = LocalBackend(home=dashboard.home, user=USER)
    if backend.describe_job(name).status not in TERMINAL_STATUSES:
        backend.stop_job(name)
    wait_until(lambda: backend.describe_job(name).status in TERMINAL_STATUSES, 60, f"{name} to stop")


@pytest.mark.slow
def test_closed_pages_leave_no_kernel_behind(pages, tmp_path):
    """Five visits, ended the ways a user ends them, while a job runs (so every page's job card keeps
    sending updates, which jupyter_server's own culler counts as activity): reloads and navigating
    away end the kernel at once through the page's unload beacon; a tab that goes without unloading
    (crashed, killed) is culled after --cull-after seconds, as is a closed tab whose beacon did not go
    out (headless Chromium sends none). Nothing is left, and no poller thread dies noisily."""
    dashboard = fake_job_dashboard(tmp_path, epochs=2000, epoch_seconds=0.5)
    name = None
    try:
        def visit_has_live_card(page) -> None:
            tab(page, "Jobs")
            card = card_by_name(page, name)
            wait_until(lambda: latest_epoch(card), 60, "the job's card")

        first = pages(dashboard)  # visit 1 starts the job
        set_up_job(first, "30")
        name = start_job(first)
        visit_has_live_card(first)
        # the server's own first request (Dashboard's start-up check) left a kernel no page ever connected to
        wait_until(lambda: len(dashboard.kernels()) == 1, CULL_AFTER + 2 + 15, "the start-up check's kernel to end")
        culled = dashboard.log_text().count("Culling kernel")
        for _ in range(2):  # visits 2 and 3: reloads
            first.reload()
            first.wait_for_selector(".amc-app")
            visit_has_live_card(first)
        first.goto("about:blank")  # visit 3 ends: navigated away
        wait_until(lambda: not dashboard.kernels(), 15, "visit 3's kernel to end")
        assert dashboard.log_text().count("Culling kernel") == culled  # ended by the pages' beacons, not culled

        closed = pages(dashboard)  # visit 4: the tab goes without unloading (crashed, killed, asleep)
        visit_has_live_card(closed)
        closed.close(run_before_unload=False)
        last = pages(dashboard)  # visit 5: the tab is closed as a user does (unload handlers run)
        visit_has_live_card(last)
        last.close(run_before_unload=True)
        assert len(dashboard.kernels()) >= 1  # visit 4's at least: its card still updates, nobody sees it

        wait_until(lambda: not dashboard.kernels(), CULL_AFTER + 2 + 15, "every kernel to end")
        time.sleep(2)
        assert dashboard.kernels() == []
        log = dashboard.log_text()
        assert "Culling kernel" in log and "no page connected" in log  # visit 4's, at least
        assert "'_xsrf' argument missing" not in log  # the unload beacons were accepted
        assert "amc-dashboard-poller" not in log  # no thread died with a traceback
    finally:
        if name:
            stop_job_and_wait(dashboard, name)
        dashboard.stop()


@pytest.mark.slow
def test_open_page_keeps_working_past_the_cull_timeout(pages, tmp_path):
    """A page left open, idle and then watching a job, outlives --cull-after many times over: its
    kernel stays, and the job's card keeps updating to the end."""
    epochs = 40  # 20 s of training: epochs still to come once the page has watched past the timeout
    dashboard = fake_job_dashboard(tmp_path, epochs=epochs, epoch_seconds=0.5)
    name = None
    try:
        page = pages(dashboard)
        kernel = dashboard.kernels()[-1]  # this page's: the newest
        time.sleep(CULL_AFTER + 2)  # idle: nothing runs, nothing is sent; the culler looks every second
        assert kernel.is_running()

        set_up_job(page, str(epochs))
        name = start_job(page)
        card = card_by_name(page, name)
        wait_until(lambda: chart_points(card) >= 2, 60, "the first epochs")
        time.sleep(CULL_AFTER + 2)  # the user only watches
        assert kernel.is_running()
        points = chart_points(card)
        status = card.locator(".amc-status").inner_text()
        assert points < epochs and status != "Completed", f"the job ended before the timeout ({points} epochs drawn)"
        try:
            wait_until(lambda: chart_points(card) > points, 30, "the chart to grow after the timeout")
        except AssertionError:
            shot(page, "11-open-past-cull-timeout-stalled")
            raise AssertionError(f"the chart stayed at {points} of {epochs} epochs past the timeout; the card says "
                                 f"{card.locator('.amc-status').inner_text()!r}") from None
        wait_until(lambda: card.locator(".amc-status").inner_text() == "Completed", 60, "completion")
        wait_until(lambda: chart_points(card) == epochs, 30, "every epoch on the chart")
        assert latest_epoch(card) == epochs
        assert kernel.is_running() and kernel in dashboard.kernels()
        shot(page, "11-open-past-cull-timeout")
    finally:
        if name:
            stop_job_and_wait(dashboard, name)
        dashboard.stop()


@pytest.fixture()
def history_dashboard(tmp_path):
    """50 finished jobs in the workspace, made without training."""
    from tests.job_history import make_finished_jobs

    home = tmp_path / "home"
    names = make_finished_jobs(home, USER, 50)
    dashboard = Dashboard(home, {})
    try:
        yield dashboard, names
    finally:
        dashboard.stop()


def test_fifty_finished_jobs_are_a_table_whose_rows_open_cards(pages, history_dashboard):
    from amc_widgets.backends.local import LocalBackend

    dashboard, names = history_dashboard
    page = pages(dashboard)
    tab(page, "Jobs")
    page.wait_for_selector(".amc-jt-row")
    assert page.locator(".amc-jt-count").inner_text() == "50 finished jobs"
    assert table_names(page) == names[::-1][:15] and job_names(page) == []  # newest first, no card at load
    assert page.locator(".js-plotly-plot").count() == 0
    page.locator(".amc-jt-next").click()
    wait_until(lambda: table_names(page) == names[::-1][15:30], 10, "the second page")
    page.locator(".amc-jt th", has_text="mAP50-95").click()  # sorted by quality, best first, from the top

    def shown() -> list[float]:
        return [float(v) if v != "-" else -1 for v in page.locator(".amc-jt-row .amc-jt-map").all_inner_texts()]

    best = max(job.final_metric("mAP50-95") or -1 for job in LocalBackend(home=dashboard.home, user=USER).list_jobs())
    wait_until(lambda: shown() == sorted(shown(), reverse=True) and shown()[0] == round(best, 3), 10, "the sort")
    assert len(shown()) == 15 and page.locator(".amc-jt-page").inner_text() == "page 1 of 4"
    page.locator(".amc-jt-filter").fill("yolov5s")
    wait_until(lambda: all("yolov5s" in n for n in table_names(page)) and table_names(page), 10, "the filter")

    name = table_names(page)[0]
    page.locator(f".amc-jt-row[data-job='{name}']").click()
    card = card_by_name(page, name)
    card.wait_for()
    wait_until(lambda: chart_points(card) > 0, 30, "the opened card's chart")
    expect(page.locator(f".amc-jt-row[data-job='{name}']")).to_have_class(re.compile("amc-jt-open"))
    shot(page, "19-finished-jobs-table")
    card.locator("button.amc-close-job").click()
    expect(card).to_have_count(0)
    assert page.locator(".js-plotly-plot").count() == 0  # its chart went with it
    shot(page, "19-card-closed")


@pytest.fixture()
def deployable_dashboard(tmp_path, monkeypatch):
    """A workspace with one completed job (the stand-in container) whose model.tar.gz holds a tiny
    ONNX detector, and Voila serving it."""
    from amc_widgets.backends.local import LocalBackend
    from amc_widgets.core.jobs import JobSpec
    from amc_widgets.core.storage import pack_tar_gz
    from tests.onnx_fakes import tiny_detector

    home = tmp_path / "home"
    source = tmp_path / "demo"
    make_demo_dataset(source, train=8, val=4, size=128, seed=1)
    monkeypatch.setenv("FAKE_EPOCHS", "2")
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "0.1")
    backend = LocalBackend(home=home, user=USER, container_command=FAKE_CONTAINER)
    backend.store_dataset(source, name="demo-solder")
    job = backend.start_job(JobSpec(dataset="demo-solder", hyperparameters={"epochs": "2"}, name="amc-solder-done"))
    wait_until(lambda: backend.describe_job(job.name).status == "Completed", 60, "the stand-in job")
    packed = tmp_path / "packed"
    packed.mkdir()
    tiny_detector(packed / "best.onnx", [[32, 32, 20, 10, 0.1, 0.9]])
    (packed / "model_card.json").write_text(json.dumps({"classes": ["good", "bridge"]}))
    pack_tar_gz(packed, backend.training_jobs / job.name / "output" / "model.tar.gz")
    dashboard = Dashboard(home, {})
    try:
        yield dashboard, backend
    finally:
        dashboard.stop()
        for endpoint in backend.list_endpoints():
            backend.delete_endpoint(endpoint.name)


@pytest.mark.slow
def test_deploy_a_jobs_model_try_an_image_and_delete_in_browser(pages, deployable_dashboard, tmp_path):
    dashboard, backend = deployable_dashboard
    image = tmp_path / "board.png"
    from PIL import Image

    Image.new("RGB", (256, 128), (40, 90, 40)).save(image)
    page = pages(dashboard)
    tab(page, "Jobs")
    page.locator(".amc-jt-row[data-job='amc-solder-done']").click()  # a finished job: its row opens its card
    card = card_by_name(page, "amc-solder-done")
    card.wait_for()  # the first card of a page also loads plotly's figure classes: seconds on a busy machine
    expect(card.locator(".amc-status")).to_have_text("Completed")
    card.locator("button.amc-deploy-job").click()

    endpoint_card = page.locator(".amc-endpoints .amc-card").first  # the tab opens by itself
    expect(endpoint_card.locator(".amc-endpoint-status")).to_have_text("InService", timeout=90_000)
    (endpoint,) = backend.list_endpoints()
    expect(endpoint_card).to_contain_text(endpoint.name)
    expect(endpoint_card.locator(".amc-endpoint-snippet textarea")).to_have_value(re.compile("/invocations"))
    endpoint_card.locator(".amc-try-path input").fill(str(image))
    endpoint_card.locator("button.amc-try-endpoint").click()
    expect(endpoint_card.locator(".amc-try-answer")).to_contain_text('"class_name": "bridge"')
    expect(endpoint_card).to_contain_text("1 object(s),")
    drawn = endpoint_card.locator("img.amc-try-image")
    expect(drawn).to_be_visible()
    assert drawn.evaluate("img => img.naturalWidth") == 256  # the image sent, boxes drawn on it
    shot(page, "16-endpoint-tried")

    endpoint_card.locator("button.amc-delete-endpoint").click()
    confirm = endpoint_card.locator("button.amc-confirm-delete")
    expect(confirm).to_have_text(f"Yes, delete {endpoint.name}")
    confirm.click()
    expect(page.locator(".amc-endpoints .amc-card")).to_have_count(0, timeout=30_000)
    assert backend.list_endpoints() == []
    shot(page, "17-endpoint-deleted")
