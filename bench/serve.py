"""The serving program against onnxruntime in-process, on the same model and images.

The server (`container/train serve` on 127.0.0.1, its default workers) answers POST /invocations
from N client threads with keep-alive connections; the peer runs the same decode + predict in N
threads of this process (one onnxruntime session, its default threads).  Each side runs
--seconds at concurrency 1 and 8; printed: images/s, p50 and p95 latency, and the server's
throughput as a fraction of the peer's.  Target: >= 0.8 at concurrency 8.

The model is --model (a best.onnx), or an untrained yolov5n exported at --imgsz (no download:
ultralytics builds it from its yaml); the images are demo solder-joint JPEGs of --image-size pixels.

    .venv/bin/python bench/serve.py [--model best.onnx] [--imgsz 320] [--seconds 10]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from amc_widgets.core.container_contract import INVOCATIONS_PATH, PING_PATH  # noqa: E402
from amc_widgets.core.demo_dataset import make_demo_dataset  # noqa: E402
from amc_widgets.core.onnx_model import OnnxDetector  # noqa: E402
from amc_widgets.serving.invocation import decode_image  # noqa: E402


def untrained_yolov5n(folder: Path, imgsz: int) -> Path:
    """An untrained yolov5n exported to ONNX: the real network's shape and cost."""
    from amc_widgets.training.ultralytics_env import prepare_offline_ultralytics

    prepare_offline_ultralytics(folder / "ultralytics-config")
    from ultralytics import YOLO

    model = YOLO("yolov5n.yaml")  # COCO's 80 classes
    exported = Path(model.export(format="onnx", imgsz=imgsz, simplify=True, device="cpu", verbose=False))
    return exported.rename(folder / "best.onnx")


def demo_jpegs(folder: Path, count: int, size: int) -> list[bytes]:
    make_demo_dataset(folder / "demo", train=count, val=1, size=size, seed=3)
    files = sorted((folder / "demo").rglob("*.jpg"))[:count]
    return [path.read_bytes() for path in files]


def measure(work: Callable[[bytes], None], bodies: list[bytes], concurrency: int, seconds: float):
    """(images per second, p50 ms, p95 ms) of ``work`` called from ``concurrency`` threads for ``seconds``."""
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()

    def loop(index: int) -> None:
        i = index
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            work(bodies[i % len(bodies)])
            with lock:
                latencies.append(time.perf_counter() - started)
            i += concurrency

    started = time.monotonic()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    cuts = statistics.quantiles(latencies, n=20)
    return len(latencies) / elapsed, statistics.median(latencies) * 1000, cuts[18] * 1000


def start_server(model_dir: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, str(REPO / "container" / "train"), "serve", "--host", "127.0.0.1",
                                "--port", str(port), "--model", str(model_dir)], start_new_session=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)})  # this checkout's amc_widgets
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", PING_PATH)
            if conn.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not answer /ping within 60 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a best.onnx (default: an untrained yolov5n)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--image-size", type=int, default=640)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--port", type=int, default=18765)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="amc-bench-serve-") as tmp:
        folder = Path(tmp)
        model_dir = folder / "model"
        model_dir.mkdir()
        onnx = untrained_yolov5n(folder, args.imgsz) if args.model is None else args.model
        if onnx != model_dir / "best.onnx":
            (model_dir / "best.onnx").write_bytes(onnx.read_bytes())
        bodies = demo_jpegs(folder, args.images, args.image_size)
        print(f"model {onnx.name} ({onnx.stat().st_size / 2**20:.1f} MiB, input {args.imgsz}), "
              f"{len(bodies)} JPEGs of {args.image_size} px, {args.seconds:g} s per run, {os.cpu_count()} CPUs")

        detector = OnnxDetector(model_dir / "best.onnx")
        peer = {c: measure(lambda body: detector.predict(decode_image(body)), bodies, c, args.seconds) for c in (1, 8)}

        server = start_server(model_dir, args.port)
        local = threading.local()

        def invoke(body: bytes) -> None:
            if not hasattr(local, "conn"):
                local.conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
            local.conn.request("POST", INVOCATIONS_PATH, body=body, headers={"Content-Type": "image/jpeg"})
            response = local.conn.getresponse()
            payload = response.read()
            if response.status != 200:
                raise SystemExit(f"server answered {response.status}: {payload[:200]!r}")

        try:
            ours = {c: measure(invoke, bodies, c, args.seconds) for c in (1, 8)}
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(f"{'concurrency':>11} | {'server img/s':>12} {'p50 ms':>7} {'p95 ms':>7} | "
          f"{'in-process img/s':>16} {'p50 ms':>7} {'p95 ms':>7} | ratio")
    for c in (1, 8):
        (s_rate, s50, s95), (p_rate, p50, p95) = ours[c], peer[c]
        print(f"{c:>11} | {s_rate:12.1f} {s50:7.1f} {s95:7.1f} | {p_rate:16.1f} {p50:7.1f} {p95:7.1f} | "
              f"{s_rate / p_rate:.2f}")
    print(f"target: server >= 0.8 of in-process throughput at concurrency 8: "
          f"{'met' if ours[8][0] >= 0.8 * peer[8][0] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
