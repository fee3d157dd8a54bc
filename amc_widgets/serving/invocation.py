"""What an invocation asks for, checked before the model runs: the image (type, size, pixels), the
thresholds in SageMaker's custom-attributes header, and the answer's type.  Every refusal is a
:class:`BadRequest` with the HTTP status and a one-line reason."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from amc_widgets.core.container_contract import MAX_PAYLOAD_BYTES
from amc_widgets.core.errors import AmcError

IMAGE_TYPES = ("image/jpeg", "image/png", "application/x-image")
JSON = "application/json"
PNG = "image/png"
MAX_PIXELS = 40_000_000  # 8000 x 5000; bigger images are refused before they are decoded
MAX_DETECTIONS_LIMIT = 1000


class BadRequest(AmcError):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Thresholds:
    conf: float = 0.25
    iou: float = 0.45
    max_det: int = 100


def parse_thresholds(header: str | None) -> Thresholds:
    """``conf=0.4,iou=0.5,max_det=20`` (commas or semicolons; any subset) -> Thresholds."""
    values: dict[str, float | int] = {}
    for item in (header or "").replace(";", ",").split(","):
        if not item.strip():
            continue
        key, sep, raw = (part.strip() for part in item.partition("="))
        if not sep or key not in ("conf", "iou", "max_det"):
            raise BadRequest(400, f"Custom attribute '{item.strip()}' not understood: use conf=, iou=, max_det=")
        try:
            value = int(raw) if key == "max_det" else float(raw)
        except ValueError:
            raise BadRequest(400, f"Custom attribute {key} must be a number (got '{raw}')") from None
        low, high = (1, MAX_DETECTIONS_LIMIT) if key == "max_det" else (0.0, 1.0)
        if not low <= value <= high:
            raise BadRequest(400, f"Custom attribute {key} must be between {low} and {high} (got {raw})")
        values[key] = value
    return Thresholds(**values)


def answer_type(accept: str | None) -> str:
    """The answer's content type from the Accept header: JSON unless image/png is asked for."""
    wanted = [part.split(";")[0].strip().lower() for part in (accept or "").split(",") if part.strip()]
    if not wanted or any(t in (JSON, "*/*", "application/*") for t in wanted):
        return JSON
    if any(t in (PNG, "image/*") for t in wanted):
        return PNG
    raise BadRequest(406, f"Cannot answer {accept!r}: ask for {JSON} or {PNG}")


def check_content_type(content_type: str | None) -> None:
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind not in IMAGE_TYPES:
        raise BadRequest(415, f"Content type {kind or '(none)'!r} not supported: send {', '.join(IMAGE_TYPES)}")


def check_length(length: int) -> None:
    if length > MAX_PAYLOAD_BYTES:
        raise BadRequest(413, f"Body of {length} bytes is over the limit of {MAX_PAYLOAD_BYTES} bytes")


def decode_image(body: bytes) -> Image.Image:
    """The request body as an RGB image; refuses empty, non-image, too many pixels and truncated data."""
    if not body:
        raise BadRequest(400, "Empty body: send the image's bytes")
    check_length(len(body))
    try:
        image = Image.open(io.BytesIO(body))
    except Image.DecompressionBombError:
        raise BadRequest(413, f"Image is over the limit of {MAX_PIXELS:,} pixels") from None
    except (UnidentifiedImageError, OSError):
        raise BadRequest(400, "Body is not a JPEG or PNG image") from None
    if image.width * image.height > MAX_PIXELS:
        raise BadRequest(413, f"Image of {image.width}x{image.height} pixels is over the limit of "
                              f"{MAX_PIXELS:,} pixels")
    if image.format not in ("JPEG", "PNG"):
        raise BadRequest(400, f"Body is a {image.format} image: send a JPEG or PNG")
    try:
        return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt pixel data
        raise BadRequest(400, f"Image could not be decoded ({exc})") from None
