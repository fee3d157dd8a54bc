"""Checks a YOLO-format dataset before anything is stored or trained, and resolves its layout.

A dataset is a folder with a ``data.yaml`` somewhere in it.  ``train`` / ``val`` / ``test`` in
data.yaml may name image folders or ``.txt`` lists of images, as one entry or a list, relative to
``path:``, to data.yaml itself, written on another machine (``C:\\data\\train\\images``,
``/home/me/data/train``) or in Roboflow's ``../train/images`` style.  :func:`resolve_dataset`
finds each of them inside the folder it was given; :func:`check_dataset` then reads every image
and label line and reports problems in words a factory engineer understands.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp"}
SPLITS = ("train", "val", "test")
MAX_EXAMPLES = 5  # problems of one kind listed by name; the rest are counted


class DatasetError(ValueError):
    """The dataset cannot be used; the message says why and where."""


@dataclass
class SplitReport:
    """Counts for one split (train / val / test)."""

    images: int = 0
    labelled: int = 0
    background: int = 0  # images with no label file or an empty one: allowed, counted
    instances: int = 0


@dataclass
class ResolvedDataset:
    """Where data.yaml and each split's images really are."""

    root: Path
    data_yaml: Path
    names: list[str]
    images: dict[str, list[Path]]  # split -> absolute image paths


@dataclass
class DatasetReport:
    """What :func:`check_dataset` found: counts, class histogram, errors and warnings."""

    root: Path
    data_yaml: Path | None = None
    names: list[str] = field(default_factory=list)
    splits: dict[str, SplitReport] = field(default_factory=dict)
    class_counts: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """A few readable lines: counts per split, classes, then every problem."""
        lines = []
        if self.data_yaml is not None:
            lines.append(f"data.yaml: {self.data_yaml}")
        if self.names:
            lines.append(f"classes ({len(self.names)}): " + ", ".join(
                f"{name} ({self.class_counts.get(i, 0)})" for i, name in enumerate(self.names)))
        for split, counts in self.splits.items():
            lines.append(
                f"{split}: {counts.images} images, {counts.labelled} labelled, "
                f"{counts.background} without objects, {counts.instances} objects"
            )
        lines += [f"ERROR: {e}" for e in self.errors]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


class _Problems:
    """Collects problems of one kind, keeping the first few examples and a count."""

    def __init__(self):
        self.examples: dict[str, list[str]] = {}
        self.counts: Counter = Counter()

    def add(self, kind: str, example: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= MAX_EXAMPLES:
            self.examples.setdefault(kind, []).append(example)

    def messages(self) -> list[str]:
        out = []
        for kind, count in self.counts.items():
            shown = "; ".join(self.examples[kind])
            more = f" (and {count - MAX_EXAMPLES} more)" if count > MAX_EXAMPLES else ""
            out.append(f"{kind} [{count}]: {shown}{more}")
        return out


def find_data_yaml(root: Path) -> Path:
    """The dataset's data.yaml (or data.yml): the shallowest one under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    found = sorted(
        (p for p in root.rglob("*") if p.name.lower() in ("data.yaml", "data.yml") and p.is_file()),
        key=lambda p: (len(p.relative_to(root).parts), str(p)),
    )
    if not found:
        raise DatasetError(
            f"No data.yaml found in {root}. A YOLO dataset needs a data.yaml that lists the class "
            "names and where the train and val images are."
        )
    return found[0]


def label_path_for(image: Path) -> Path:
    """YOLO's convention (as ultralytics applies it): .../images/x.jpg -> .../labels/x.txt."""
    text = str(image)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return Path(sb.join(text.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt")


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path.name} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path.name} must be a mapping with 'names', 'train' and 'val'")
    return data


def _class_names(data: dict, yaml_name: str) -> list[str]:
    names = data.get("names")
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise DatasetError(f"{yaml_name}: the keys of 'names' must be class ids 0, 1, 2, ...") from None
        if keys != list(range(len(keys))):
            raise DatasetError(f"{yaml_name}: class ids in 'names' must be 0..{len(keys) - 1} without gaps")
        names = [str(names.get(k, names.get(str(k)))) for k in keys]
    elif isinstance(names, list):
        names = [str(n) for n in names]
    elif names is None and isinstance(data.get("nc"), int):
        names = [f"class{i}" for i in range(data["nc"])]
    else:
        raise DatasetError(f"{yaml_name} has no 'names' list of classes")
    if not names:
        raise DatasetError(f"{yaml_name}: 'names' is empty; list at least one class")
    nc = data.get("nc")
    if nc is not None and nc != len(names):
        raise DatasetError(f"{yaml_name}: nc is {nc} but 'names' lists {len(names)} classes")
    return names


def _path_parts(entry: str) -> list[str]:
    """Components of a path written on any OS, without drive, root, '.' or '..'."""
    text = entry.strip().replace("\\", "/")
    text = re.sub(r"^[A-Za-z]:", "", text)
    return [part for part in text.split("/") if part not in ("", ".", "..")]


def _locate(entry: str, bases: list[Path], root: Path) -> Path | None:
    """Find ``entry`` inside ``root``: as written relative to each base, then by its longest
    trailing part that exists (paths written on another machine)."""
    candidates = []
    raw = entry.strip().replace("\\", "/")
    if raw and not raw.startswith("/") and not re.match(r"^[A-Za-z]:", raw):
        candidates += [base / raw for base in bases]
    parts = _path_parts(entry)
    for start in range(len(parts)):
        candidates += [base / Path(*parts[start:]) for base in bases]
    for candidate in candidates:
        resolved = candidate.resolve()
        if resolved.exists() and resolved.is_relative_to(root):
            return resolved
    return None


def _images_of(entry: str, bases: list[Path], root: Path, yaml_name: str, split: str) -> list[Path]:
    location = _locate(entry, bases, root)
    if location is None:
        raise DatasetError(
            f"{yaml_name}: {split} path '{entry}' was not found in the dataset folder. "
            "Check that the folder (or .txt list) it names was included."
        )
    if location.is_dir():
        return sorted(p for p in location.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if location.suffix.lower() == ".txt":
        images, missing = [], []
        list_bases = [location.parent, *bases]
        for line in location.read_text(encoding="utf-8-sig").splitlines():
            if not line.strip():
                continue
            image = _locate(line, list_bases, root)
            if image is None or not image.is_file():
                missing.append(line.strip())
            else:
                images.append(image)
        if missing:
            shown = ", ".join(missing[:MAX_EXAMPLES]) + (f" (and {len(missing) - MAX_EXAMPLES} more)"
                                                         if len(missing) > MAX_EXAMPLES else "")
            raise DatasetError(
                f"{location.name} ({split}) lists {len(missing)} image(s) that are not in the dataset: {shown}"
            )
        return images
    if location.suffix.lower() in IMAGE_SUFFIXES:
        return [location]
    raise DatasetError(f"{yaml_name}: {split} path '{entry}' is neither a folder, a .txt list nor an image")


def resolve_dataset(root: Path) -> ResolvedDataset:
    """Find data.yaml under ``root`` and every split's images; raise :class:`DatasetError`."""
    root = Path(root).resolve()
    data_yaml = find_data_yaml(root)
    data = _read_yaml(data_yaml)
    yaml_name = str(data_yaml.relative_to(root))
    names = _class_names(data, yaml_name)
    bases = []
    if data.get("path"):
        base = _locate(str(data["path"]), [data_yaml.parent, root], root)
        if base is not None and base.is_dir():
            bases.append(base)
    bases += [data_yaml.parent, root]
    images: dict[str, list[Path]] = {}
    for split in SPLITS:
        entries = data.get(split)
        if entries in (None, "", []):
            continue
        entries = entries if isinstance(entries, list) else [entries]
        found: list[Path] = []
        for entry in entries:
            found += _images_of(str(entry), bases, root, yaml_name, split)
        images[split] = list(dict.fromkeys(found))
    for split in ("train", "val"):
        if split not in images:
            raise DatasetError(f"{yaml_name} has no '{split}:' entry; YOLOv5 needs {split} images")
        if not images[split]:
            raise DatasetError(f"The {split} images folder named in {yaml_name} contains no images")
    return ResolvedDataset(root=root, data_yaml=data_yaml, names=names, images=images)


def _check_labels(label: Path, nc: int, rel: str, problems: _Problems, counts: Counter) -> int:
    """Validate one label file; return its number of objects."""
    objects = 0
    try:
        text = label.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        problems.add("Unreadable label files", f"{rel} ({exc.__class__.__name__})")
        return 0
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{rel} line {number}"
        if len(fields) < 5 or (len(fields) > 5 and len(fields) % 2 == 0):
            problems.add(
                "Malformed label lines (need 'class x_center y_center width height')",
                f"{where}: '{line.strip()[:60]}'",
            )
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            problems.add("Label lines with text where numbers belong", f"{where}: '{line.strip()[:60]}'")
            continue
        cls = values[0]
        if not cls.is_integer() or cls < 0:
            problems.add("Label lines whose class id is not a whole number >= 0", f"{where}: class {fields[0]}")
            continue
        if cls >= nc:
            problems.add(
                f"Class ids too large (data.yaml lists {nc} classes, ids 0-{nc - 1})",
                f"{where}: class {int(cls)}",
            )
            continue
        coords = values[1:]
        if any(c < 0 or c > 1.0001 for c in coords):
            problems.add("Coordinates outside 0..1 (YOLO labels are fractions of the image size)", where)
            continue
        if len(fields) == 5 and (coords[2] <= 0 or coords[3] <= 0):
            problems.add("Boxes with zero width or height", where)
            continue
        counts[int(cls)] += 1
        objects += 1
    return objects


def check_dataset(root: Path) -> DatasetReport:
    """Read every image and label of the dataset under ``root``; never raises for bad data."""
    report = DatasetReport(root=Path(root))
    try:
        resolved = resolve_dataset(root)
    except DatasetError as exc:
        report.errors.append(str(exc))
        return report
    report.data_yaml, report.names = resolved.data_yaml, resolved.names
    nc = len(resolved.names)
    problems, warnings = _Problems(), _Problems()
    for split, images in resolved.images.items():
        counts = report.splits.setdefault(split, SplitReport())
        for image in images:
            rel = str(image.relative_to(resolved.root))
            counts.images += 1
            try:
                with Image.open(image) as im:
                    im.verify()
                    if min(im.size) < 10:
                        problems.add("Images smaller than 10 pixels", rel)
            except (UnidentifiedImageError, OSError, SyntaxError) as exc:
                problems.add("Images that cannot be read (corrupt or not an image)", f"{rel} ({exc.__class__.__name__})")
                continue
            label = label_path_for(image)
            objects = 0
            if label.is_file():
                objects = _check_labels(label, nc, str(label.relative_to(resolved.root)), problems,
                                        report.class_counts)
            if objects:
                counts.labelled += 1
                counts.instances += objects
            else:
                counts.background += 1
    for split in ("train", "val"):
        counts = report.splits.get(split)
        if counts and counts.images and not counts.labelled:
            problems.add("Splits without a single labelled object", f"{split} ({counts.images} images)")
    overlap = set(resolved.images["train"]) & set(resolved.images["val"])
    if overlap:
        warnings.add("Images in both train and val (validation scores will look better than they are)",
                     str(next(iter(overlap)).relative_to(resolved.root)))
    unused = [i for i in range(nc) if not report.class_counts.get(i)]
    if unused:
        warnings.add("Classes without a single labelled object", ", ".join(resolved.names[i] for i in unused))
    report.errors += problems.messages()
    report.warnings += warnings.messages()
    return report


def write_resolved_data_yaml(resolved: ResolvedDataset, dest_dir: Path) -> Path:
    """Write a data.yaml that ultralytics reads from anywhere: each split an absolute image list."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    data: dict = {"path": str(resolved.data_yaml.parent), "nc": len(resolved.names),
                  "names": dict(enumerate(resolved.names))}
    for split, images in resolved.images.items():
        listing = dest_dir / f"{split}.txt"
        listing.write_text("".join(f"{image}\n" for image in images), encoding="utf-8")
        data[split] = str(listing)
    out = dest_dir / "data.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out
