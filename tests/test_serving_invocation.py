"""What an invocation asks for, checked headless: thresholds, answer type, content type, the image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from amc_widgets.core.container_contract import MAX_PAYLOAD_BYTES
from amc_widgets.serving.invocation import (
    BadRequest,
    Thresholds,
    answer_type,
    check_content_type,
    decode_image,
    parse_thresholds,
)


def image_bytes(fmt: str = "PNG", size=(96, 64), noise: bool = True) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8) if noise else None
    image = Image.fromarray(pixels) if noise else Image.new("RGB", size)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def refusal(call, *args) -> tuple[int, str]:
    with pytest.raises(BadRequest) as info:
        call(*args)
    return info.value.status, str(info.value)


def test_thresholds_come_from_the_custom_attributes_header():
    assert parse_thresholds(None) == Thresholds()
    assert parse_thresholds("conf=0.4, iou=0.6;max_det=7") == Thresholds(0.4, 0.6, 7)
    assert refusal(parse_thresholds, "conf=high") == (400, "Custom attribute conf must be a number (got 'high')")
    assert refusal(parse_thresholds, "iou=1.5")[1] == "Custom attribute iou must be between 0.0 and 1.0 (got 1.5)"
    assert refusal(parse_thresholds, "max_det=0")[0] == 400
    assert "not understood" in refusal(parse_thresholds, "temperature=2")[1]


def test_json_unless_a_png_is_asked_for():
    assert answer_type(None) == answer_type("*/*") == answer_type("application/json") == "application/json"
    assert answer_type("image/png") == answer_type("image/*;q=0.9") == "image/png"
    assert refusal(answer_type, "text/html") == (406, "Cannot answer 'text/html': ask for application/json or "
                                                      "image/png")


def test_only_image_content_types_are_taken():
    for kind in ("image/jpeg", "image/png", "application/x-image", "image/PNG; charset=binary"):
        check_content_type(kind)
    assert refusal(check_content_type, "application/json")[0] == 415
    assert refusal(check_content_type, None)[1].startswith("Content type '(none)' not supported")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_good_image_decodes_to_rgb(fmt):
    image = decode_image(image_bytes(fmt))
    assert image.mode == "RGB" and image.size == (96, 64)


def test_every_bad_body_is_refused_with_a_reason():
    png = image_bytes("PNG")
    assert refusal(decode_image, b"") == (400, "Empty body: send the image's bytes")
    assert refusal(decode_image, b"hello, not an image") == (400, "Body is not a JPEG or PNG image")
    status, reason = refusal(decode_image, png[: len(png) // 2])
    assert status == 400 and reason.startswith("Image could not be decoded")
    assert refusal(decode_image, image_bytes("GIF"))[1] == "Body is a GIF image: send a JPEG or PNG"
    assert refusal(decode_image, b"x" * (MAX_PAYLOAD_BYTES + 1))[0] == 413


def test_an_image_with_too_many_pixels_is_refused_before_decoding():
    huge = image_bytes("PNG", size=(10_000, 5_000), noise=False)  # small file, 50 megapixels
    assert refusal(decode_image, huge) == (413, "Image of 10000x5000 pixels is over the limit of 40,000,000 pixels")
