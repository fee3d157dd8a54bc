"""A synthetic solder-joint dataset in YOLO format, so demos and tests need no download.

Each image is a patch of green circuit board with copper pads; on each pad pair sits a solder
joint of one of three classes:

- ``good``: a full, shiny silver fillet covering both pads,
- ``insufficient``: copper still showing, only a small dull blob of solder,
- ``bridge``: solder running over the gap onto a neighbouring pad (a wide blob).

The result is deterministic for a given seed, and a YOLOv5n learns it measurably in a few CPU
minutes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw, ImageFilter

CLASS_NAMES = ("good", "insufficient", "bridge")
_BOARD = (28, 92, 48)
_COPPER = (190, 120, 60)


def _draw_board(rng: np.random.Generator, size: int) -> Image.Image:
    base = np.empty((size, size, 3), dtype=np.float32)
    base[:] = _BOARD
    base += rng.normal(0, 6, size=(size, size, 1))  # board texture
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(2, 5)):  # traces
        y = int(rng.integers(0, size))
        draw.line([(0, y), (size, y + int(rng.integers(-20, 20)))], fill=(45, 120, 62), width=int(rng.integers(2, 5)))
    return image


def _draw_joint(draw: ImageDraw.ImageDraw, rng: np.random.Generator, cls: int, x: int, y: int, w: int, h: int) -> None:
    """Draw one pad pair plus joint of class ``cls`` filling the box (x, y, w, h)."""
    pad_w = w * 0.38
    draw.rectangle([x, y, x + pad_w, y + h], fill=_COPPER)
    draw.rectangle([x + w - pad_w, y, x + w, y + h], fill=_COPPER)
    silver = tuple(int(c) for c in rng.integers(175, 215, size=3))
    if cls == 0:  # good: each pad covered by a bright dome with a highlight
        for px in (x, x + w - pad_w):
            draw.ellipse([px, y, px + pad_w, y + h], fill=silver)
            draw.ellipse([px + pad_w * 0.25, y + h * 0.2, px + pad_w * 0.55, y + h * 0.45], fill=(250, 250, 250))
    elif cls == 1:  # insufficient: small dull blobs, copper visible
        dull = tuple(int(c * 0.7) for c in silver)
        for px in (x, x + w - pad_w):
            draw.ellipse([px + pad_w * 0.3, y + h * 0.35, px + pad_w * 0.7, y + h * 0.65], fill=dull)
    else:  # bridge: one blob over both pads and the gap
        draw.rounded_rectangle([x, y + h * 0.15, x + w, y + h * 0.85], radius=max(2, h // 3), fill=silver)
        draw.ellipse([x + w * 0.4, y + h * 0.3, x + w * 0.6, y + h * 0.5], fill=(250, 250, 250))


def _place_boxes(rng: np.random.Generator, size: int, count: int) -> list[tuple[int, int, int, int]]:
    boxes: list[tuple[int, int, int, int]] = []
    for _ in range(count * 20):
        if len(boxes) == count:
            break
        w = int(rng.integers(size // 5, size // 3))
        h = int(w * rng.uniform(0.45, 0.7))
        x, y = int(rng.integers(2, size - w - 2)), int(rng.integers(2, size - h - 2))
        if all(x + w + 3 < bx or bx + bw + 3 < x or y + h + 3 < by or by + bh + 3 < y for bx, by, bw, bh in boxes):
            boxes.append((x, y, w, h))
    return boxes


def make_image(rng: np.random.Generator, size: int) -> tuple[Image.Image, list[str]]:
    """One board image and its YOLO label lines."""
    image = _draw_board(rng, size)
    draw = ImageDraw.Draw(image)
    lines = []
    for x, y, w, h in _place_boxes(rng, size, int(rng.integers(2, 6))):
        cls = int(rng.integers(0, len(CLASS_NAMES)))
        _draw_joint(draw, rng, cls, x, y, w, h)
        lines.append(f"{cls} {(x + w / 2) / size:.6f} {(y + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}")
    image = image.filter(ImageFilter.GaussianBlur(radius=0.6))
    noise = rng.normal(0, 4, size=(size, size, 3))
    pixels = np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels), lines


def make_demo_dataset(dest: Path, train: int = 240, val: int = 60, size: int = 160, seed: int = 0) -> Path:
    """Write ``train``/``val`` images+labels and data.yaml under ``dest``; return data.yaml's path.

    Refuses to write into a folder that already has files, so nothing is overwritten.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty; choose a new folder for the demo dataset")
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        (dest / split / "images").mkdir(parents=True, exist_ok=True)
        (dest / split / "labels").mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, lines = make_image(rng, size)
            stem = f"board_{split}_{index:04d}"
            image.save(dest / split / "images" / f"{stem}.jpg", quality=92)
            (dest / split / "labels" / f"{stem}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    data_yaml = dest / "data.yaml"
    data_yaml.write_text(
        yaml.safe_dump(
            {"train": "train/images", "val": "val/images", "nc": len(CLASS_NAMES), "names": list(CLASS_NAMES)},
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    return data_yaml
