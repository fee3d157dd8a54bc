"""Labelled images drawn with their boxes and class names: people find labelling mistakes by looking.

:class:`DatasetPictures` reads a YOLO dataset (folder or zip) once, picks a few images per class,
rarest class first, finds any image by name, and draws one as a PNG.
"""

from __future__ import annotations

import io
import posixpath
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from amc_widgets.core.archive import BadArchiveError
from amc_widgets.core.dataset_check import DatasetError, label_rel, open_tree, read_text, resolve_layout
from amc_widgets.core.errors import AmcError

COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4",
           "#469990")
PER_CLASS = 3


class ImageNotFoundError(AmcError, LookupError):
    """No image of the dataset has the name asked for."""


@dataclass
class LabelledImage:
    """One image of the dataset and its boxes (class id, x_center, y_center, width, height)."""

    image: str  # its path inside the dataset
    split: str
    boxes: list[tuple[int, float, float, float, float]]

    @property
    def name(self) -> str:
        return posixpath.basename(self.image)


def _boxes(text: str, nc: int) -> list[tuple[int, float, float, float, float]]:
    """The label lines the check accepts; the check itself reports the others."""
    boxes = []
    for line in text.splitlines():
        fields = line.split()
        try:
            cls, x, y, w, h = int(fields[0]), *(float(v) for v in fields[1:5])
        except (ValueError, IndexError):
            continue
        if 0 <= cls < nc:
            boxes.append((cls, x, y, w, h))
    return boxes


class DatasetPictures:
    """The labelled images of the YOLO dataset at ``path``; use in ``with`` (a zip stays open)."""

    def __init__(self, path: Path):
        self.tree = open_tree(Path(path))
        try:
            layout = resolve_layout(self.tree)
            self.names = layout.names
            self.images: list[LabelledImage] = []
            for split, images in layout.images.items():
                for image in images:
                    label = label_rel(image)
                    text = read_text(self.tree, label) if self.tree.is_file(label) else ""
                    self.images.append(LabelledImage(image, split, _boxes(text, len(self.names))))
        except BaseException:
            self.tree.close()
            raise

    def gallery(self, per_class: int = PER_CLASS) -> list[tuple[str, LabelledImage]]:
        """(class name, image) pairs: up to ``per_class`` images showing each class, rarest class first;
        an image is shown once."""
        objects = Counter(box[0] for item in self.images for box in item.boxes)
        shown: set[str] = set()
        picks = []
        for cls in sorted(objects, key=lambda c: (objects[c], c)):
            having = [item for item in self.images if item.image not in shown and any(b[0] == cls for b in item.boxes)]
            for item in having[:per_class]:
                shown.add(item.image)
                picks.append((self.names[cls], item))
        return picks

    def find(self, name: str) -> LabelledImage:
        """The image whose path, file name or stem is ``name``."""
        wanted = name.strip().replace("\\", "/")
        if not wanted:
            raise ImageNotFoundError("Enter the file name of an image in the dataset")
        for match in (lambda i: i.image == wanted, lambda i: i.name == wanted,
                      lambda i: posixpath.splitext(i.name)[0] == wanted, lambda i: i.image.endswith("/" + wanted)):
            found = [item for item in self.images if match(item)]
            if found:
                return found[0]
        raise ImageNotFoundError(f"No image named '{name.strip()}' in the dataset")

    def render(self, item: LabelledImage, max_side: int = 320) -> bytes:
        """The image scaled to ``max_side`` with its boxes and class names drawn on, as PNG bytes."""
        try:
            with self.tree.open(item.image) as stream, Image.open(stream) as source:
                picture = source.convert("RGB")
        except (OSError, BadArchiveError, Image.DecompressionBombError) as exc:
            raise DatasetError(f"{item.image} cannot be shown: {exc.__class__.__name__}") from None
        scale = max_side / max(picture.size)
        picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))))
        draw = ImageDraw.Draw(picture)
        font = ImageFont.load_default(size=max(10, max_side // 26))
        width, height = picture.size
        for cls, x, y, w, h in item.boxes:
            colour = COLOURS[cls % len(COLOURS)]
            x1, y1, x2, y2 = (x - w / 2) * width, (y - h / 2) * height, (x + w / 2) * width, (y + h / 2) * height
            draw.rectangle([x1, y1, x2, y2], outline=colour, width=2)
            text_box = draw.textbbox((x1, y1), self.names[cls], font=font)
            top = y1 - (text_box[3] - text_box[1]) - 2 if y1 > text_box[3] - text_box[1] + 2 else y1
            draw.rectangle([x1, top, x1 + text_box[2] - text_box[0] + 4, top + text_box[3] - text_box[1] + 2],
                           fill=colour)
            draw.text((x1 + 2, top - (text_box[1] - y1)), self.names[cls], fill="white", font=font)
        out = io.BytesIO()
        picture.save(out, format="PNG")
        return out.getvalue()

    def write_gallery(self, dest: Path, per_class: int = PER_CLASS) -> list[Path]:
        """Draw :meth:`gallery` into the new or empty folder ``dest`` as ``01-bridge-board_0003.png`` ...;
        returns the files."""
        dest = Path(dest)
        if dest.exists() and any(dest.iterdir()):
            raise FileExistsError(f"{dest} is not empty; choose a new folder for the previews")
        dest.mkdir(parents=True, exist_ok=True)
        written = []
        for rank, (class_name, item) in enumerate(self.gallery(per_class), start=1):
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{class_name}-{posixpath.splitext(item.name)[0]}")
            path = dest / f"{rank:02d}-{safe}.png"
            path.write_bytes(self.render(item))
            written.append(path)
        return written

    def close(self) -> None:
        self.tree.close()

    def __enter__(self) -> DatasetPictures:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
