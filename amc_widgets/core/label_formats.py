"""Recognises what a labelling tool exported and reads it as images with YOLO labels.

Formats: YOLO / Ultralytics / Roboflow YOLOv5 ``data.yaml`` (with or without a val split, as CVAT's
"Ultralytics YOLO" export writes it), CVAT "YOLO 1.1" (``obj.names``, ``obj.data``, labels beside the
images), Label Studio YOLO (``classes.txt`` beside ``images/`` and ``labels/``), COCO detection JSON
and Pascal VOC XML.  YOLO label files are kept byte for byte; COCO and VOC pixel boxes become
normalised centre boxes, clipped to the image (clipped boxes are counted).  Broken input raises
:class:`~amc_widgets.core.dataset_check.DatasetError` naming the file and the entry.
"""

from __future__ import annotations

import json
import posixpath
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field

import yaml
from PIL import Image, UnidentifiedImageError

from amc_widgets.core.archive import BadArchiveError
from amc_widgets.core.dataset_check import (
    DATA_YAML_NAMES,
    IMAGE_SUFFIXES,
    DatasetError,
    Problems,
    Tree,
    label_rel,
    locate,
    read_text,
    resolve_layout,
)

YOLO = "YOLO (data.yaml)"
ROBOFLOW = "Roboflow YOLOv5"
ULTRALYTICS_TRAIN_ONLY = "Ultralytics YOLO without a val split (as CVAT exports it)"
CVAT_YOLO = "CVAT YOLO 1.1"
LABEL_STUDIO = "Label Studio YOLO"
COCO = "COCO JSON"
VOC = "Pascal VOC XML"
_SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                "test": "test", "testing": "test"}


@dataclass
class Sample:
    """One image of the export: where it is, the split its export put it in, its YOLO label text."""

    image: str  # relative path in the export
    split: str | None  # "train" / "val" / "test" where the export says, else None
    label: str  # YOLO label lines ("" for an image without objects)
    label_file: str | None = None  # the export's own label file, where it has one

    def classes(self) -> set[int]:
        """The class ids its label lines use (lines the check will refuse are left out)."""
        ids = set()
        for line in self.label.splitlines():
            first = line.split()[:1]
            if first and first[0].isdigit():
                ids.add(int(first[0]))
        return ids


@dataclass
class Export:
    """What :func:`read_export` found: the format, class names, images and conversion notes."""

    format: str
    names: list[str]
    samples: list[Sample]
    native: bool = False  # a YOLO data.yaml with train and val: stored as it is, nothing converted
    notes: list[str] = field(default_factory=list)


def split_named_by(rel: str) -> str | None:
    """The split a path's words name: 'valid/_annotations.coco.json' -> 'val', 'instances_train2017.json'
    -> 'train'; None when it names none or several."""
    words = {_SPLIT_WORDS[w] for w in re.split(r"[^a-z]+", rel.lower()) if w in _SPLIT_WORDS}
    return words.pop() if len(words) == 1 else None


def pixel_box_to_yolo(x1: float, y1: float, x2: float, y2: float, width: float,
                      height: float) -> tuple[tuple[float, float, float, float] | None, bool]:
    """((x_center, y_center, w, h) as fractions of the image, clipped to it; None when nothing is left
    inside the image), whether the box was clipped."""
    cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
    cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
    clipped = (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2)
    if cx2 <= cx1 or cy2 <= cy1:
        return None, clipped
    return ((cx1 + cx2) / 2 / width, (cy1 + cy2) / 2 / height, (cx2 - cx1) / width, (cy2 - cy1) / height), clipped


def yolo_line(cls: int, box: tuple[float, float, float, float]) -> str:
    return f"{cls} " + " ".join(f"{v:.6f}" for v in box)


class _Images:
    """Finds an image an annotation names: as written (relative to a few bases), else by file name."""

    def __init__(self, tree: Tree):
        self.tree = tree
        self.by_name: dict[str, list[str]] = {}
        for rel in tree.files:
            if posixpath.splitext(rel)[1].lower() in IMAGE_SUFFIXES:
                self.by_name.setdefault(posixpath.basename(rel), []).append(rel)

    def find(self, written: str, bases: list[str]) -> str | None:
        found = locate(written, bases, self.tree) if written.strip() else None
        if found is not None and self.tree.is_file(found):
            return found
        same_name = self.by_name.get(posixpath.basename(written.replace("\\", "/")), [])
        return same_name[0] if len(same_name) == 1 else None

    def size(self, rel: str) -> tuple[int, int]:
        try:
            with self.tree.open(rel) as stream, Image.open(stream) as image:
                return image.size
        except (UnidentifiedImageError, OSError, BadArchiveError) as exc:
            raise DatasetError(f"{rel} cannot be read as an image ({exc.__class__.__name__})") from None


def _raise_problems(problems: Problems) -> None:
    messages = problems.messages()
    if messages:
        raise DatasetError("\n".join(messages))


def _names_file(tree: Tree, rel: str) -> list[str]:
    names = [line.strip() for line in read_text(tree, rel).splitlines() if line.strip()]
    if not names:
        raise DatasetError(f"{rel} lists no class names")
    return names


def _first(tree: Tree, basenames: tuple[str, ...]) -> str | None:
    found = sorted((rel for rel in tree.files if posixpath.basename(rel).lower() in basenames),
                   key=lambda rel: (rel.count("/"), rel))
    return found[0] if found else None


def _yolo_sample(tree: Tree, image: str, split: str | None, label: str) -> Sample:
    """An image of a YOLO-style export with its label file (none: no objects), kept as it is."""
    if tree.is_file(label):
        return Sample(image, split, read_text(tree, label), label)
    return Sample(image, split, "")


# --- YOLO families ----------------------------------------------------------------------------

def _read_data_yaml(tree: Tree, data_yaml: str) -> Export:
    layout = resolve_layout(tree, required=("train",))
    roboflow = any(posixpath.basename(rel).lower().startswith("readme.roboflow") for rel in tree.files) or \
        "roboflow" in (yaml.safe_load(read_text(tree, data_yaml)) or {})
    if layout.images.get("val"):
        return Export(ROBOFLOW if roboflow else YOLO, layout.names, [], native=True)
    samples = [_yolo_sample(tree, image, split, label_rel(image))
               for split, images in layout.images.items() for image in images]
    return Export(ROBOFLOW if roboflow else ULTRALYTICS_TRAIN_ONLY, layout.names, samples)


def _read_cvat_yolo(tree: Tree, names_rel: str | None, obj_data: str | None) -> Export:
    if names_rel is None:
        raise DatasetError(f"{obj_data} is a CVAT YOLO 1.1 export without its obj.names (the class names)")
    names = _names_file(tree, names_rel)
    top = posixpath.dirname(obj_data or names_rel)
    lists: dict[str, str] = {}  # subset list file -> split
    if obj_data:
        for line in read_text(tree, obj_data).splitlines():
            key, _, value = (part.strip() for part in line.partition("="))
            if key in ("train", "valid", "val", "test") and value:
                listed = locate(value, [top, ""], tree)
                if listed is None or not tree.is_file(listed):
                    raise DatasetError(f"{obj_data}: {key} = {value} names a list that is not in the dataset")
                lists[listed] = "val" if key == "valid" else key
    samples: list[Sample] = []
    if lists:
        for listed, split in lists.items():
            for number, line in enumerate(read_text(tree, listed).splitlines(), start=1):
                if not line.strip():
                    continue
                image = locate(line, [top, ""], tree)
                if image is None or not tree.is_file(image):
                    raise DatasetError(f"{listed} line {number}: image '{line.strip()}' is not in the dataset")
                samples.append(_yolo_sample(tree, image, split, posixpath.splitext(image)[0] + ".txt"))
    else:  # no lists: every obj_<subset>_data folder
        for image in tree.images_under(top):
            folder = image[len(top) + 1 if top else 0:].split("/")[0]
            match = re.fullmatch(r"obj_(.+)_data", folder)
            if match:
                samples.append(_yolo_sample(tree, image, _SPLIT_WORDS.get(match.group(1).lower()),
                                            posixpath.splitext(image)[0] + ".txt"))
    if not samples:
        raise DatasetError(f"{names_rel}: the CVAT YOLO 1.1 export has no images (obj_train_data/ is empty)")
    return Export(CVAT_YOLO, names, samples)


def _read_label_studio(tree: Tree, classes_rel: str) -> Export:
    names = _names_file(tree, classes_rel)
    top = posixpath.dirname(classes_rel)
    images = tree.images_under(posixpath.join(top, "images") if top else "images")
    if not images:
        raise DatasetError(f"{classes_rel}: the Label Studio export has no images/ folder beside it (export "
                           "with images, or copy them into images/)")
    return Export(LABEL_STUDIO, names, [_yolo_sample(tree, image, None, label_rel(image))
                                        for image in images])


# --- COCO -------------------------------------------------------------------------------------

def _coco_files(tree: Tree) -> dict[str, dict]:
    found = {}
    for rel in tree.files:
        if not rel.lower().endswith(".json"):
            continue
        try:
            data = json.loads(read_text(tree, rel))
        except (ValueError, UnicodeDecodeError) as exc:
            if "annotations" in rel.lower() or "coco" in rel.lower():
                raise DatasetError(f"{rel} is not valid JSON: {exc}") from None
            continue
        if isinstance(data, dict) and {"images", "annotations", "categories"} <= data.keys():
            found[rel] = data
    return found


def _read_coco(tree: Tree, files: dict[str, dict]) -> Export:
    images, problems, notes = _Images(tree), Problems(), Counter()
    names: list[str] = []
    samples: list[Sample] = []
    for rel, data in files.items():
        folder = posixpath.dirname(rel)
        category_ids: dict = {}
        for index, category in enumerate(data["categories"]):
            if not isinstance(category, dict) or "id" not in category or not str(category.get("name", "")).strip():
                problems.add("COCO categories without an id or a name", f"{rel} categories[{index}]")
                continue
            name = str(category["name"]).strip()
            if name not in names:
                names.append(name)
            category_ids[category["id"]] = names.index(name)
        entries: dict = {}
        for index, entry in enumerate(data["images"]):
            written = str(entry.get("file_name", "")) if isinstance(entry, dict) else ""
            where = f"{rel} images[{index}] (id {entry.get('id') if isinstance(entry, dict) else '?'})"
            if not written:
                problems.add("COCO image entries without a file_name", where)
                continue
            image = images.find(written, [folder, posixpath.join(folder, "images"), "", "images"])
            if image is None:
                problems.add("COCO images whose file is not in the dataset", f"{where}: '{written}'")
                continue
            width, height = entry.get("width"), entry.get("height")
            if not (isinstance(width, (int, float)) and isinstance(height, (int, float)) and width > 0 and height > 0):
                width, height = images.size(image)
            entries[entry.get("id")] = (image, float(width), float(height), [])
        for index, ann in enumerate(data["annotations"]):
            where = f"{rel} annotations[{index}] (id {ann.get('id') if isinstance(ann, dict) else '?'})"
            if not isinstance(ann, dict):
                problems.add("COCO annotations that are not objects", where)
                continue
            if ann.get("image_id") not in entries:
                if not any(isinstance(e, dict) and e.get("id") == ann.get("image_id") for e in data["images"]):
                    problems.add("COCO annotations for an image id not in 'images'",
                                 f"{where}: image_id {ann.get('image_id')}")
                continue  # its image is missing: already reported
            if ann.get("category_id") not in category_ids:
                problems.add("COCO annotations with a category id not in 'categories'",
                             f"{where}: category_id {ann.get('category_id')}")
                continue
            if ann.get("iscrowd"):
                notes["crowd annotations (iscrowd) left out, as YOLO has no crowd boxes"] += 1
                continue
            bbox = ann.get("bbox")
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
                problems.add("COCO annotations without a bbox [x, y, width, height]", where)
                continue
            image, width, height, lines = entries[ann["image_id"]]
            x, y, w, h = (float(v) for v in bbox)
            if w <= 0 or h <= 0:
                problems.add("COCO boxes with zero width or height", f"{where}: bbox {bbox}")
                continue
            box, clipped = pixel_box_to_yolo(x, y, x + w, y + h, width, height)
            if box is None:
                problems.add("COCO boxes entirely outside their image",
                             f"{where}: bbox {bbox} in a {width:g}x{height:g} image")
                continue
            notes["boxes clipped to the image edges"] += clipped
            lines.append(yolo_line(category_ids[ann["category_id"]], box))
        split = split_named_by(rel)
        samples += [Sample(image, split, "".join(f"{line}\n" for line in lines))
                    for image, _w, _h, lines in entries.values()]
    _raise_problems(problems)
    if not names:
        raise DatasetError(f"{', '.join(files)}: no categories (class names) listed")
    return Export(COCO, names, _unique(samples), notes=_note_lines(notes))


# --- Pascal VOC -------------------------------------------------------------------------------

def _voc_files(tree: Tree) -> dict[str, ET.Element]:
    found = {}
    for rel in tree.files:
        if not rel.lower().endswith(".xml"):
            continue
        try:
            root = ET.fromstring(read_text(tree, rel))
        except (ET.ParseError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{rel} is not valid XML: {exc}") from None
        if root.tag == "annotation":
            found[rel] = root
    return found


def _voc_splits(tree: Tree) -> dict[str, str]:
    """Image stem -> split from ImageSets/Main/{train,val,test}.txt, where the export has them."""
    splits = {}
    for rel in tree.files:
        parts = rel.split("/")
        if len(parts) >= 3 and parts[-3:-1] == ["ImageSets", "Main"] and parts[-1] in ("train.txt", "val.txt",
                                                                                        "test.txt"):
            for line in read_text(tree, rel).splitlines():
                if line.strip():
                    splits[line.split()[0]] = parts[-1][:-4]
    return splits


def _voc_names(tree: Tree, found: set[str]) -> list[str]:
    """CVAT's labelmap.txt order where it is given, else the names in alphabetical order."""
    labelmap = _first(tree, ("labelmap.txt",))
    if labelmap:
        listed = [line.split(":")[0].strip() for line in read_text(tree, labelmap).splitlines()
                  if line.strip() and not line.startswith("#")]
        listed = [name for name in listed if name and name != "background"]
        return listed + sorted(found.difference(listed))
    return sorted(found)


def _read_voc(tree: Tree, files: dict[str, ET.Element]) -> Export:
    images, problems, clipped_count = _Images(tree), Problems(), 0
    splits = _voc_splits(tree)
    objects: dict[str, list] = {}
    found_names: set[str] = set()
    samples: dict[str, tuple[str, str | None]] = {}
    for rel, root in files.items():
        folder = posixpath.dirname(rel)
        written = (root.findtext("filename") or "").strip()
        bases = [folder, posixpath.join(posixpath.dirname(folder), "JPEGImages"), "", "JPEGImages", "images"]
        image = images.find(written, bases) if written else None
        if image is None:
            problems.add("VOC annotations whose image is not in the dataset", f"{rel}: filename '{written}'")
            continue
        try:
            width = float(root.findtext("size/width") or 0)
            height = float(root.findtext("size/height") or 0)
        except ValueError:
            width = height = 0
        if width <= 0 or height <= 0:
            width, height = (float(v) for v in images.size(image))
        boxes = []
        for index, obj in enumerate(root.iter("object"), start=1):
            name = (obj.findtext("name") or "").strip()
            where = f"{rel} object {index} ('{name}')"
            try:
                x1, y1, x2, y2 = (float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
            except (TypeError, ValueError):
                problems.add("VOC objects without a numeric bndbox (xmin, ymin, xmax, ymax)", where)
                continue
            if not name:
                problems.add("VOC objects without a class name", where)
                continue
            if x2 <= x1 or y2 <= y1:
                problems.add("VOC boxes with zero width or height (xmax <= xmin or ymax <= ymin)",
                             f"{where}: {x1:g},{y1:g} {x2:g},{y2:g}")
                continue
            box, clipped = pixel_box_to_yolo(x1, y1, x2, y2, width, height)
            if box is None:
                problems.add("VOC boxes outside their image",
                             f"{where}: {x1:g},{y1:g} {x2:g},{y2:g} in a {width:g}x{height:g} image")
                continue
            clipped_count += clipped
            found_names.add(name)
            boxes.append((name, box))
        stem = posixpath.splitext(posixpath.basename(image))[0]
        objects[image] = boxes
        samples[image] = (rel, splits.get(stem) or split_named_by(image))
    _raise_problems(problems)
    names = _voc_names(tree, found_names)
    out = [Sample(image, split, "".join(f"{yolo_line(names.index(name), box)}\n" for name, box in objects[image]))
           for image, (_rel, split) in samples.items()]
    notes = {"boxes clipped to the image edges": clipped_count}
    return Export(VOC, names, out, notes=_note_lines(notes))


def _unique(samples: list[Sample]) -> list[Sample]:
    """One sample per image; an image two files annotate keeps both label texts."""
    merged: dict[str, Sample] = {}
    for sample in samples:
        if sample.image in merged:
            merged[sample.image].label += sample.label
        else:
            merged[sample.image] = sample
    return list(merged.values())


def _note_lines(counts: dict[str, int]) -> list[str]:
    return [f"{count} {what}" for what, count in counts.items() if count]


def read_export(tree: Tree) -> Export:
    """Recognise the format of the export in ``tree`` and read it; raise DatasetError if none fits."""
    data_yaml = _first(tree, DATA_YAML_NAMES)
    if data_yaml:
        return _read_data_yaml(tree, data_yaml)
    obj_names, obj_data = _first(tree, ("obj.names",)), _first(tree, ("obj.data",))
    if obj_names or obj_data:
        return _read_cvat_yolo(tree, obj_names, obj_data)
    classes = _first(tree, ("classes.txt",))
    if classes:
        return _read_label_studio(tree, classes)
    coco = _coco_files(tree)
    if coco:
        return _read_coco(tree, coco)
    voc = _voc_files(tree)
    if voc:
        return _read_voc(tree, voc)
    raise DatasetError(
        f"No data.yaml found in {tree.path_of('')}, and no other labelling export recognised. A dataset needs "
        "a YOLO data.yaml (class names, train and val images), or a CVAT YOLO 1.1 (obj.names), Label Studio "
        "YOLO (classes.txt), COCO JSON or Pascal VOC XML export."
    )

