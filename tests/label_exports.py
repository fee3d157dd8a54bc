"""Writes a YOLO demo dataset out as labelling tools export it (CVAT, Label Studio, Roboflow, COCO, VOC).

Boxes are written in each tool's own convention, so a converter that gets a convention wrong
(corner versus centre, pixels versus fractions, class ids) does not round-trip.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import yaml
from PIL import Image


@dataclass
class Labelled:
    """One image of a YOLO dataset: its file, split, size and boxes as (class name, cx, cy, w, h)."""

    path: Path
    split: str
    size: tuple[int, int]
    boxes: list[tuple[str, float, float, float, float]]


def read_yolo(root: Path) -> tuple[list[str], list[Labelled]]:
    """Class names and every image of a dataset in the demo layout (split/images, split/labels)
    or the converted one (images/split, labels/split), with data.yaml at ``root``."""
    data = yaml.safe_load((root / "data.yaml").read_text())
    names = data["names"]
    names = [names[i] for i in range(len(names))] if isinstance(names, dict) else list(names)
    out = []
    for image in sorted(root.rglob("*.jpg")):
        parts = image.relative_to(root).parts
        split = parts[1] if parts[0] == "images" else parts[0]
        label = Path(str(image).replace("/images/", "/labels/")).with_suffix(".txt")
        boxes = []
        for line in (label.read_text().splitlines() if label.exists() else []):
            cls, *coords = line.split()
            boxes.append((names[int(cls)], *(float(c) for c in coords)))
        with Image.open(image) as img:
            out.append(Labelled(image, split, img.size, sorted(boxes)))
    return names, out


def _corners(box, size):
    _name, cx, cy, w, h = box
    width, height = size
    return (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height


def write_coco(source: Path, dest: Path, per_split: bool = False) -> Path:
    """COCO detection JSON: one file with every image under images/, or Roboflow's train/ and valid/
    folders with an _annotations.coco.json each.  Category ids start at 1, as COCO's do."""
    names, images = read_yolo(source)
    groups = {"valid" if s == "val" else s: [i for i in images if i.split == s] for s in ("train", "val")} \
        if per_split else {"": images}
    for folder, members in groups.items():
        image_dir = dest / folder if folder else dest / "images"
        image_dir.mkdir(parents=True, exist_ok=True)
        data = {"info": {}, "images": [], "annotations": [],
                "categories": [{"id": i + 1, "name": n, "supercategory": "joint"} for i, n in enumerate(names)]}
        for image_id, item in enumerate(members, start=1):
            shutil.copy(item.path, image_dir / item.path.name)
            data["images"].append({"id": image_id, "file_name": item.path.name,
                                   "width": item.size[0], "height": item.size[1]})
            for box in item.boxes:
                x1, y1, x2, y2 = _corners(box, item.size)
                data["annotations"].append({"id": len(data["annotations"]) + 1, "image_id": image_id,
                                            "category_id": names.index(box[0]) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                            "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
        target = dest / folder / "_annotations.coco.json" if folder else dest / "annotations" / "instances.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data))
    return dest


def write_voc(source: Path, dest: Path) -> Path:
    """Pascal VOC: Annotations/*.xml, JPEGImages/, ImageSets/Main/{train,val}.txt, CVAT's labelmap.txt."""
    names, images = read_yolo(source)
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (dest / folder).mkdir(parents=True, exist_ok=True)
    (dest / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                       + "".join(f"{n}:1,2,3::\n" for n in names))
    for split in ("train", "val"):
        (dest / "ImageSets" / "Main" / f"{split}.txt").write_text(
            "".join(f"{i.path.stem}\n" for i in images if i.split == split))
    for item in images:
        shutil.copy(item.path, dest / "JPEGImages" / item.path.name)
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = ""
        ET.SubElement(root, "filename").text = item.path.name
        size = ET.SubElement(root, "size")
        for key, value in (("width", item.size[0]), ("height", item.size[1]), ("depth", 3)):
            ET.SubElement(size, key).text = str(value)
        for box in item.boxes:
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = box[0]
            ET.SubElement(obj, "difficult").text = "0"
            bndbox = ET.SubElement(obj, "bndbox")
            for key, value in zip(("xmin", "ymin", "xmax", "ymax"), _corners(box, item.size), strict=True):
                ET.SubElement(bndbox, key).text = f"{value:.2f}"
        ET.ElementTree(root).write(dest / "Annotations" / f"{item.path.stem}.xml")
    return dest


def _yolo_lines(item: Labelled, names: list[str]) -> str:
    return "".join(f"{names.index(b[0])} {b[1]:.6f} {b[2]:.6f} {b[3]:.6f} {b[4]:.6f}\n" for b in item.boxes)


def write_cvat_yolo11(source: Path, dest: Path, subsets: bool = False) -> Path:
    """CVAT "YOLO 1.1": obj.names, obj.data, train.txt and obj_train_data/ with labels beside images;
    with ``subsets``, the val images as CVAT's "valid" subset (valid.txt, obj_valid_data/)."""
    names, images = read_yolo(source)
    dest.mkdir(parents=True)
    groups = {"train": [i for i in images if i.split == "train"], "valid": [i for i in images if i.split == "val"]} \
        if subsets else {"train": images}
    (dest / "obj.names").write_text("".join(f"{n}\n" for n in names))
    (dest / "obj.data").write_text(f"classes = {len(names)}\n" + "".join(f"{g} = data/{g}.txt\n" for g in groups)
                                   + "names = data/obj.names\nbackup = backup/\n")
    for group, members in groups.items():
        (dest / f"obj_{group}_data").mkdir()
        (dest / f"{group}.txt").write_text("".join(f"data/obj_{group}_data/{i.path.name}\n" for i in members))
        for item in members:
            shutil.copy(item.path, dest / f"obj_{group}_data" / item.path.name)
            (dest / f"obj_{group}_data" / f"{item.path.stem}.txt").write_text(_yolo_lines(item, names))
    return dest


def write_label_studio(source: Path, dest: Path) -> Path:
    """Label Studio's YOLO export: classes.txt, images/, labels/, notes.json."""
    names, images = read_yolo(source)
    (dest / "images").mkdir(parents=True)
    (dest / "labels").mkdir()
    (dest / "classes.txt").write_text("".join(f"{n}\n" for n in names))
    (dest / "notes.json").write_text(json.dumps({"categories": [{"id": i, "name": n} for i, n in enumerate(names)]}))
    for item in images:
        shutil.copy(item.path, dest / "images" / item.path.name)
        (dest / "labels" / f"{item.path.stem}.txt").write_text(_yolo_lines(item, names))
    return dest


def write_cvat_ultralytics(source: Path, dest: Path) -> Path:
    """CVAT's "Ultralytics YOLO Detection" export of one subset: a data.yaml with train only."""
    names, images = read_yolo(source)
    (dest / "images" / "train").mkdir(parents=True)
    (dest / "labels" / "train").mkdir(parents=True)
    (dest / "data.yaml").write_text(yaml.safe_dump({"path": ".", "train": "train.txt",
                                                    "names": dict(enumerate(names))}))
    (dest / "train.txt").write_text("".join(f"images/train/{i.path.name}\n" for i in images))
    for item in images:
        shutil.copy(item.path, dest / "images" / "train" / item.path.name)
        (dest / "labels" / "train" / f"{item.path.stem}.txt").write_text(_yolo_lines(item, names))
    return dest


def write_roboflow(source: Path, dest: Path) -> Path:
    """Roboflow's YOLOv5 export: train/ and valid/ folders, a data.yaml with ../ paths, README.roboflow.txt."""
    names, images = read_yolo(source)
    for item in images:
        split = "valid" if item.split == "val" else item.split
        (dest / split / "images").mkdir(parents=True, exist_ok=True)
        (dest / split / "labels").mkdir(parents=True, exist_ok=True)
        shutil.copy(item.path, dest / split / "images" / item.path.name)
        (dest / split / "labels" / f"{item.path.stem}.txt").write_text(_yolo_lines(item, names))
    (dest / "README.roboflow.txt").write_text("Exported via roboflow.com\n")
    (dest / "data.yaml").write_text(yaml.safe_dump({
        "train": "../train/images", "val": "../valid/images", "nc": len(names), "names": names,
        "roboflow": {"workspace": "factory", "project": "solder", "version": 3}}))
    return dest
