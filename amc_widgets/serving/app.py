"""The Starlette app that serves one detector by SageMaker's hosting contract: ``GET /ping`` answers
200 once the model is loaded, ``POST /invocations`` takes an image and answers JSON detections (or
the image with its boxes drawn, for ``Accept: image/png``)."""

from __future__ import annotations

import io
import json
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from amc_widgets.core.container_contract import CUSTOM_ATTRIBUTES_HEADER, INVOCATIONS_PATH, PING_PATH
from amc_widgets.core.onnx_model import OnnxDetector, best_providers, draw_detections
from amc_widgets.serving.invocation import (
    JSON,
    PNG,
    BadRequest,
    answer_type,
    check_content_type,
    check_length,
    decode_image,
    parse_thresholds,
)

MODEL_FILE_ENV = "AMC_SERVING_MODEL"  # the best.onnx each worker loads (set by the server)
THREADS_ENV = "AMC_SERVING_THREADS"  # onnxruntime threads per worker


@dataclass
class LoadedModel:
    detector: OnnxDetector
    names: list[str]


def load_model(onnx: Path, threads: int | None = None) -> LoadedModel:
    """The detector and its class names: the model card's (``model_card.json`` beside it), else the ONNX metadata."""
    detector = OnnxDetector(onnx, providers=best_providers(), threads=threads)
    detector.check()
    card = onnx.with_name("model_card.json")
    names = json.loads(card.read_text(encoding="utf-8")).get("classes") if card.is_file() else None
    return LoadedModel(detector, [str(n) for n in names] if names else detector.class_names())


def create_app(onnx: Path, threads: int | None = None) -> Starlette:
    """The app for one model file, loaded at startup."""
    loaded: list[LoadedModel] = []

    @asynccontextmanager
    async def lifespan(_app):
        loaded.append(await run_in_threadpool(load_model, onnx, threads))
        yield

    async def ping(_request: Request) -> Response:
        if not loaded:
            return PlainTextResponse("model not loaded\n", status_code=503)
        return JSONResponse({"status": "healthy", "model": onnx.name})

    async def invocations(request: Request) -> Response:
        try:
            check_content_type(request.headers.get("content-type"))
            accept = answer_type(request.headers.get("accept"))
            thresholds = parse_thresholds(request.headers.get(CUSTOM_ATTRIBUTES_HEADER))
            check_length(int(request.headers.get("content-length") or 0))
            body = await _read_body(request)
            return await run_in_threadpool(_answer, loaded[0], body, thresholds, accept)
        except BadRequest as exc:
            return PlainTextResponse(f"{exc}\n", status_code=exc.status)

    return Starlette(routes=[Route(PING_PATH, ping, methods=["GET"]),
                             Route(INVOCATIONS_PATH, invocations, methods=["POST"])], lifespan=lifespan)


async def _read_body(request: Request) -> bytes:
    """The body, refused as soon as it grows past the limit (a missing or false Content-Length too)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        check_length(size)
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(model: LoadedModel, body: bytes, thresholds, accept: str) -> Response:
    image = decode_image(body)
    started = time.perf_counter()
    detections = model.detector.predict(image, thresholds.conf, thresholds.iou, thresholds.max_det)
    took = f"{(time.perf_counter() - started) * 1000:.1f}"
    if accept == PNG:
        buffer = io.BytesIO()
        draw_detections(image, detections, model.names).save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type=PNG, headers={"X-Amc-Inference-Ms": took})
    return JSONResponse({"width": image.width, "height": image.height,
                         "detections": [d.as_json(model.names) for d in detections]},
                        media_type=JSON, headers={"X-Amc-Inference-Ms": took})


def app_from_env() -> Starlette:
    """uvicorn's factory in each worker process: the model and thread count come from the environment."""
    threads = int(os.environ.get(THREADS_ENV) or 0) or None
    return create_app(Path(os.environ[MODEL_FILE_ENV]), threads)
