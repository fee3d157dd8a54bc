"""The serving program as SageMaker runs it: `container/train serve` on 127.0.0.1 with two uvicorn
workers, the hosting contract's paths, every bad input, and a bounded load test."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time

import psutil
import pytest
from PIL import Image

from amc_widgets.core.container_contract import CUSTOM_ATTRIBUTES_HEADER, INVOCATIONS_PATH, PING_PATH
from amc_widgets.core.storage import pack_tar_gz
from amc_widgets.entry import main as entry_main
from tests.conftest import CONTAINER_TRAIN, free_port, stop_process_group, wait_until
from tests.onnx_fakes import tiny_detector
from tests.test_serving_invocation import image_bytes

PREDICTIONS = [[32, 32, 20, 10, 0.1, 0.9], [16, 24, 8, 8, 0.6, 0.2]]


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            connection: http.client.HTTPConnection | None = None) -> tuple[int, dict, bytes]:
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    answer = (response.status, dict(response.getheaders()), response.read())
    if connection is None:
        conn.close()
    return answer


def invoke(port: int, body: bytes, content_type: str = "image/png", **headers) -> tuple[int, dict, bytes]:
    return request(port, "POST", INVOCATIONS_PATH, body, {"Content-Type": content_type, **headers})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The serving program on a model.tar.gz under an emulated /opt/ml/model, as SageMaker starts it."""
    root = tmp_path_factory.mktemp("ml")
    packed = tmp_path_factory.mktemp("packed")
    tiny_detector(packed / "best.onnx", PREDICTIONS)
    (packed / "model_card.json").write_text(json.dumps({"classes": ["good joint", "solder bridge"]}))
    pack_tar_gz(packed, root / "model" / "model.tar.gz")
    port = free_port()
    process = subprocess.Popen([sys.executable, str(CONTAINER_TRAIN), "serve", "--host", "127.0.0.1",
                                "--port", str(port), "--workers", "2"],
                               env={**os.environ, "AMC_ML_ROOT": str(root)}, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def healthy():
        assert process.poll() is None, process.stdout.read().decode()
        try:
            return request(port, "GET", PING_PATH)[0] == 200
        except OSError:
            return False

    wait_until(healthy, timeout=60, what="the server to answer /ping")
    yield port, process
    stop_process_group(process)


def test_ping_and_an_invocation_answer_boxes_in_original_pixels_with_the_model_cards_names(server):
    port, _ = server
    status, _, body = request(port, "GET", PING_PATH)
    assert status == 200 and json.loads(body)["status"] == "healthy"
    # 128 x 64 is letterboxed into 64 x 64 at scale 0.5 with 16 px of grey above and below
    status, headers, body = invoke(port, image_bytes("JPEG", size=(128, 64)), "image/jpeg")
    answer = json.loads(body)
    assert status == 200 and headers["content-type"] == "application/json"
    assert answer["width"] == 128 and answer["height"] == 64
    assert answer["detections"] == [
        {"box": [44.0, 22.0, 84.0, 42.0], "score": 0.9, "class_id": 1, "class_name": "solder bridge"},
        {"box": [24.0, 8.0, 40.0, 24.0], "score": 0.6, "class_id": 0, "class_name": "good joint"}]
    assert float(headers["x-amc-inference-ms"]) >= 0


def test_thresholds_travel_in_the_custom_attributes_header(server):
    port, _ = server
    png = image_bytes("PNG", size=(128, 64))
    strict = json.loads(invoke(port, png, **{CUSTOM_ATTRIBUTES_HEADER: "conf=0.7"})[2])["detections"]
    assert [d["class_name"] for d in strict] == ["solder bridge"]
    one = json.loads(invoke(port, png, "application/x-image", **{CUSTOM_ATTRIBUTES_HEADER: "max_det=1"})[2])
    assert len(one["detections"]) == 1


def test_accept_image_png_answers_the_image_with_boxes_drawn(server):
    port, _ = server
    status, headers, body = invoke(port, image_bytes("PNG", size=(128, 64), noise=False), Accept="image/png")
    assert status == 200 and headers["content-type"] == "image/png"
    import io

    drawn = Image.open(io.BytesIO(body))
    assert drawn.size == (128, 64) and drawn.convert("RGB").getpixel((44, 30)) != (0, 0, 0)


def test_every_bad_input_gets_a_4xx_with_one_line_and_the_server_carries_on(server):
    port, process = server
    png = image_bytes("PNG")
    cases = {
        "empty": (invoke(port, b""), 400, "Empty body"),
        "not an image": (invoke(port, b"%PDF-1.4 not an image"), 400, "not a JPEG or PNG"),
        "truncated": (invoke(port, png[: len(png) // 2]), 400, "could not be decoded"),
        "huge file": (invoke(port, b"\x89PNG" + b"\0" * (7 * 1024 * 1024)), 413, "over the limit"),
        "huge image": (invoke(port, image_bytes("PNG", size=(10_000, 5_000), noise=False)), 413, "pixels"),
        "wrong type": (invoke(port, png, "application/json"), 415, "not supported"),
        "bad accept": (invoke(port, png, Accept="text/html"), 406, "Cannot answer"),
        "bad attributes": (invoke(port, png, **{CUSTOM_ATTRIBUTES_HEADER: "conf=2"}), 400, "between"),
        "wrong method": (request(port, "GET", INVOCATIONS_PATH), 405, ""),
    }
    for case, ((status, _, body), expected, words) in cases.items():
        text = body.decode()
        assert status == expected, (case, status, text)
        assert words in text and text.count("\n") <= 1, (case, text)
    assert process.poll() is None
    assert invoke(port, png)[0] == 200


@pytest.mark.slow
def test_load_several_clients_for_seconds_no_errors_no_memory_growth(server):
    port, process = server
    bodies = [image_bytes("JPEG", size=(64 * (i + 1), 48 * (i + 1))) for i in range(4)]
    tree = psutil.Process(process.pid)

    def rss() -> int:
        return sum(p.memory_info().rss for p in [tree, *tree.children(recursive=True)])

    def run_clients(seconds: float, clients: int = 6) -> tuple[int, list[str]]:
        counts, errors = [0] * clients, []
        stop_at = time.monotonic() + seconds

        def client(index: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # keep-alive, as SageMaker's
            while time.monotonic() < stop_at:
                status, _, body = request(port, "POST", INVOCATIONS_PATH, bodies[counts[index] % len(bodies)],
                                          {"Content-Type": "image/jpeg"}, connection=conn)
                if status != 200 or "detections" not in json.loads(body):
                    errors.append(f"{status}: {body[:100]!r}")
                counts[index] += 1
            conn.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(counts), errors

    run_clients(1.5)  # warm up: allocators and threads settle
    before = rss()
    done, errors = run_clients(4.0)
    after = rss()
    assert errors == [] and done > 50
    assert after - before < 30 * 1024 * 1024, f"memory grew {(after - before) / 2**20:.1f} MiB over {done} requests"


def test_a_missing_model_ends_the_server_with_one_line(tmp_path, capsys):
    assert entry_main(["serve", "--model", str(tmp_path), "--port", "0"]) == 1
    assert capsys.readouterr().err.strip() == (f"ERROR: cannot serve the model: No best.onnx in {tmp_path} "
                                               "(nor a model.tar.gz holding one)")


def test_an_unknown_container_command_is_refused(capsys):
    assert entry_main(["predict"]) == 2
    assert "unknown command 'predict': use train or serve" in capsys.readouterr().err
