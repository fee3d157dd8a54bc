"""Checks a YOLO-format dataset before anything is stored or trained, and resolves its layout.

A dataset is a folder, or a .zip archive, with a ``data.yaml`` somewhere in it.  ``train`` /
``val`` / ``test`` in data.yaml may name image folders or ``.txt`` lists of images, as one entry or
a list, relative to ``path:``, to data.yaml itself, written on another machine
(``C:\\data\\train\\images``, ``/home/me/data/train``) or in Roboflow's ``../train/images`` style.
Each is looked up in a listing of the dataset's files taken once, so folders and zips share the
same code; :func:`check_dataset` then checks every image (as ultralytics does, without decoding
pixels) and every label line, and reports problems in words a factory engineer understands.  A zip
is read member by member through :mod:`amc_widgets.core.archive` and never unpacked.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import yaml
from PIL import Image, UnidentifiedImageError

from amc_widgets.core.archive import BadArchiveError, SafeZip, UnsafeArchiveError, open_safe_zip
from amc_widgets.core.errors import AmcError

IMAGE_SUFFIXES = {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp"}
# PIL's names of the formats ultralytics accepts (its IMG_FORMATS); it drops images in any other
YOLO_IMAGE_FORMATS = {"avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpeg2000", "jpg", "mpo", "png", "tif",
                      "tiff", "webp"}
DATA_YAML_NAMES = ("data.yaml", "data.yml")
SPLITS = ("train", "val", "test")
MAX_EXAMPLES = 5  # problems of one kind listed by name; the rest are counted
_DRIVE = re.compile(r"^[A-Za-z]:")


class DatasetError(AmcError, ValueError):
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
    source_format: str = ""  # the labelling tool's format recognised, e.g. "COCO JSON"
    split_note: str = ""  # how train / val were made, when AMC split the dataset
    notes: list[str] = field(default_factory=list)  # what the conversion changed (clipped boxes ...)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """A few readable lines: counts per split, classes, then every problem."""
        lines = []
        if self.source_format:
            lines.append(f"format: {self.source_format}")
        if self.split_note:
            lines.append(f"split: {self.split_note}")
        lines += [f"note: {note}" for note in self.notes]
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


class Problems:
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


class Tree(ABC):
    """A dataset's files as relative POSIX paths, listed once; "" is the top folder."""

    def __init__(self, files: Iterable[str], folders: Iterable[str] = ()):
        self.files = sorted(set(files), key=_path_key)
        self._file_set = set(self.files)
        self._folders = {"", *folders}
        for name in self.files:
            folder = posixpath.dirname(name)
            while folder not in self._folders:
                self._folders.add(folder)
                folder = posixpath.dirname(folder)

    def is_file(self, rel: str) -> bool:
        return rel in self._file_set

    def is_dir(self, rel: str) -> bool:
        return rel in self._folders

    def images_under(self, folder: str) -> list[str]:
        prefix = f"{folder}/" if folder else ""
        return [name for name in self.files
                if name.startswith(prefix) and posixpath.splitext(name)[1].lower() in IMAGE_SUFFIXES]

    @abstractmethod
    def open(self, rel: str) -> BinaryIO:
        """The bytes of the file ``rel``."""

    @abstractmethod
    def path_of(self, rel: str) -> Path:
        """How reports and callers name ``rel``."""

    def close(self) -> None:  # noqa: B027 - a no-op unless the listing holds something open
        """Release what the listing holds open."""

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _FolderTree(Tree):
    """A dataset folder.  Links to folders are not followed; links to files are kept when they
    point inside the folder."""

    def __init__(self, root: Path):
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root} is not a folder")
        self.root = root.resolve()
        files, folders = [], []
        for folder, _subfolders, names in os.walk(self.root):
            rel_folder = os.path.relpath(folder, self.root).replace(os.sep, "/")
            prefix = "" if rel_folder == "." else f"{rel_folder}/"
            folders.append(prefix.rstrip("/"))
            for name in names:
                path = os.path.join(folder, name)
                if os.path.isfile(path) and (not os.path.islink(path)
                                             or Path(path).resolve().is_relative_to(self.root)):
                    files.append(prefix + name)
        super().__init__(files, folders)

    def open(self, rel: str) -> BinaryIO:
        return open(self.root / rel, "rb")

    def path_of(self, rel: str) -> Path:
        """The absolute path."""
        return self.root / rel


class _ZipTree(Tree):
    """A checked zip archive; members are read into memory one at a time."""

    def __init__(self, archive: SafeZip):
        self.archive = archive
        super().__init__(archive.members)

    def open(self, rel: str) -> BinaryIO:
        return io.BytesIO(self.archive.read_bytes(rel))

    def path_of(self, rel: str) -> Path:
        """``solder.zip/solder-v3/data.yaml``, as :class:`zipfile.Path` names members."""
        return self.archive.path / rel

    def close(self) -> None:
        self.archive.close()


def _path_key(rel: str) -> list[str]:
    """Sort like :class:`pathlib.Path`: component by component."""
    return rel.split("/")


def open_tree(path: Path) -> Tree:
    if path.is_dir():
        return _FolderTree(path)
    if path.is_file() and path.suffix.lower() == ".zip":
        try:
            return _ZipTree(open_safe_zip(path))
        except (BadArchiveError, OSError) as exc:
            raise DatasetError(str(exc)) from None
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    raise DatasetError(f"{path} is neither a folder nor a .zip file")


@dataclass
class Layout:
    """:class:`ResolvedDataset` as paths inside a :class:`Tree`."""

    data_yaml: str
    names: list[str]
    images: dict[str, list[str]]


def _find_data_yaml(tree: Tree) -> str:
    found = sorted((name for name in tree.files if posixpath.basename(name).lower() in DATA_YAML_NAMES),
                   key=lambda name: (name.count("/"), name))
    if not found:
        raise DatasetError(
            f"No data.yaml found in {tree.path_of('')}. A YOLO dataset needs a data.yaml that lists the "
            "class names and where the train and val images are."
        )
    return found[0]


def label_path_for(image: Path) -> Path:
    """YOLO's convention (as ultralytics applies it): .../images/x.jpg -> .../labels/x.txt."""
    return Path(_label_name(str(image), os.sep))


def _label_name(image: str, sep: str) -> str:
    sa, sb = f"{sep}images{sep}", f"{sep}labels{sep}"
    return sb.join(image.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


def label_rel(image: str) -> str:
    """:func:`label_path_for` for a relative POSIX path (a top ``images/`` folder counts too)."""
    return _label_name(f"/{image}", "/")[1:]


def read_text(tree: Tree, rel: str) -> str:
    with tree.open(rel) as stream:
        return stream.read().decode("utf-8-sig")


def _read_yaml(tree: Tree, rel: str) -> dict:
    name = posixpath.basename(rel)
    try:
        data = yaml.safe_load(read_text(tree, rel))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{name} is not valid YAML: {exc}") from None
    except (BadArchiveError, OSError) as exc:
        raise DatasetError(f"{rel} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{name} must be a mapping with 'names', 'train' and 'val'")
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
    text = _DRIVE.sub("", text)
    return [part for part in text.split("/") if part not in ("", ".", "..")]


def _inside(base: str, rel: str) -> str | None:
    """``base/rel`` normalized, or None where it climbs out of the dataset."""
    joined = posixpath.normpath(posixpath.join(base, rel))
    if joined == ".." or joined.startswith("../"):
        return None
    return "" if joined == "." else joined


def locate(entry: str, bases: list[str], tree: Tree) -> str | None:
    """Find ``entry`` in ``tree``: as written relative to each base, then by its longest trailing
    part that exists (paths written on another machine)."""
    raw = entry.strip().replace("\\", "/")
    written = [raw] if raw and not raw.startswith("/") and not _DRIVE.match(raw) else []
    parts = _path_parts(entry)
    tails = written + ["/".join(parts[start:]) for start in range(len(parts))]
    for tail in tails:
        for base in bases:
            candidate = _inside(base, tail)
            if candidate is not None and (tree.is_file(candidate) or tree.is_dir(candidate)):
                return candidate
    return None


def _images_of(entry: str, bases: list[str], tree: Tree, yaml_name: str, split: str) -> list[str]:
    location = locate(entry, bases, tree)
    if location is None:
        raise DatasetError(
            f"{yaml_name}: {split} path '{entry}' was not found in the dataset. "
            "Check that the folder (or .txt list) it names was included."
        )
    if tree.is_dir(location):
        return tree.images_under(location)
    suffix = posixpath.splitext(location)[1].lower()
    if suffix == ".txt":
        images, missing = [], []
        list_bases = list(dict.fromkeys([posixpath.dirname(location), *bases]))
        try:
            lines = read_text(tree, location).splitlines()
        except (UnicodeDecodeError, BadArchiveError, OSError) as exc:
            raise DatasetError(f"{location} ({split}) cannot be read: {exc}") from None
        for line in lines:
            if not line.strip():
                continue
            image = locate(line, list_bases, tree)
            if image is None or not tree.is_file(image):
                missing.append(line.strip())
            else:
                images.append(image)
        if missing:
            shown = ", ".join(missing[:MAX_EXAMPLES]) + (f" (and {len(missing) - MAX_EXAMPLES} more)"
                                                         if len(missing) > MAX_EXAMPLES else "")
            raise DatasetError(
                f"{posixpath.basename(location)} ({split}) lists {len(missing)} image(s) that are not in "
                f"the dataset: {shown}"
            )
        return images
    if suffix in IMAGE_SUFFIXES:
        return [location]
    raise DatasetError(f"{yaml_name}: {split} path '{entry}' is neither a folder, a .txt list nor an image")


def resolve_layout(tree: Tree, required: tuple[str, ...] = ("train", "val")) -> Layout:
    """Where data.yaml's splits are in ``tree``; each split in ``required`` must have images."""
    data_yaml = _find_data_yaml(tree)
    data = _read_yaml(tree, data_yaml)
    names = _class_names(data, data_yaml)
    yaml_folder = posixpath.dirname(data_yaml)
    bases = []
    if data.get("path"):
        base = locate(str(data["path"]), [yaml_folder, ""], tree)
        if base is not None and tree.is_dir(base):
            bases.append(base)
    bases = list(dict.fromkeys([*bases, yaml_folder, ""]))
    images: dict[str, list[str]] = {}
    for split in SPLITS:
        entries = data.get(split)
        if entries in (None, "", []):
            continue
        entries = entries if isinstance(entries, list) else [entries]
        found: list[str] = []
        for entry in entries:
            found += _images_of(str(entry), bases, tree, data_yaml, split)
        images[split] = list(dict.fromkeys(found))
    for split in required:
        if split not in images:
            raise DatasetError(f"{data_yaml} has no '{split}:' entry; YOLOv5 needs {split} images")
        if not images[split]:
            raise DatasetError(f"The {split} images folder named in {data_yaml} contains no images")
    return Layout(data_yaml=data_yaml, names=names, images=images)


def resolve_dataset(root: Path) -> ResolvedDataset:
    """Find data.yaml under the folder ``root`` and every split's images; raise :class:`DatasetError`.

    Folders only: training reads files from disk.  :func:`check_dataset` also reads .zip archives.
    """
    tree = _FolderTree(root)
    layout = resolve_layout(tree)
    return ResolvedDataset(
        root=tree.root,
        data_yaml=tree.path_of(layout.data_yaml),
        names=layout.names,
        images={split: [tree.path_of(rel) for rel in rels] for split, rels in layout.images.items()},
    )


def _check_labels(tree: Tree, rel: str, nc: int, problems: Problems, counts: Counter) -> int:
    """Validate one label file; return its number of objects."""
    objects = 0
    try:
        text = read_text(tree, rel)
    except (OSError, UnicodeDecodeError, BadArchiveError) as exc:
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


def _image_is_readable(tree: Tree, rel: str, problems: Problems) -> bool:
    """Ultralytics' own check, without decoding pixels: the header, PIL's structural verify (chunk
    checksums for PNG), the format, and a JPEG's end marker; a JPEG without one is decoded in
    full, because ultralytics drops it when it cannot restore it."""
    try:
        with tree.open(rel) as stream:
            with Image.open(stream) as image:
                image.verify()
                size, image_format = image.size, (image.format or "").lower()
            if image_format == "jpeg":
                stream.seek(-2, os.SEEK_END)
                if stream.read(2) != b"\xff\xd9":
                    stream.seek(0)
                    with Image.open(stream) as image:
                        image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError,
            BadArchiveError) as exc:
        problems.add("Images that cannot be read (corrupt, truncated or not an image)",
                     f"{rel} ({exc.__class__.__name__})")
        return False
    if image_format not in YOLO_IMAGE_FORMATS:
        problems.add("Images in a format YOLO does not read (use JPEG or PNG)", f"{rel} ({image_format.upper()})")
        return False
    if min(size) < 10:
        problems.add("Images smaller than 10 pixels", rel)
    return True


def check_dataset(root: Path) -> DatasetReport:
    """Read every image and label of the dataset in the folder or .zip ``root``; never raises for
    bad data.  Problems name files by their path inside the folder or archive."""
    report = DatasetReport(root=Path(root))
    try:
        with open_tree(report.root) as tree:
            _check_tree(tree, report)
    except (DatasetError, UnsafeArchiveError) as exc:
        report.errors.append(str(exc))
    return report


def _check_tree(tree: Tree, report: DatasetReport) -> None:
    layout = resolve_layout(tree)
    report.data_yaml, report.names = tree.path_of(layout.data_yaml), layout.names
    nc = len(layout.names)
    problems, warnings = Problems(), Problems()
    for split, images in layout.images.items():
        counts = report.splits.setdefault(split, SplitReport())
        for image in images:
            counts.images += 1
            if not _image_is_readable(tree, image, problems):
                continue
            label = label_rel(image)
            objects = _check_labels(tree, label, nc, problems, report.class_counts) if tree.is_file(label) else 0
            if objects:
                counts.labelled += 1
                counts.instances += objects
            else:
                counts.background += 1
    for split in ("train", "val"):
        counts = report.splits.get(split)
        if counts and counts.images and not counts.labelled:
            problems.add("Splits without a single labelled object", f"{split} ({counts.images} images)")
    overlap = set(layout.images["train"]).intersection(layout.images["val"])
    if overlap:
        warnings.add("Images in both train and val (validation scores will look better than they are)",
                     min(overlap, key=_path_key))
    unused = [i for i in range(nc) if not report.class_counts.get(i)]
    for i in unused:  # one example each: 77 of COCO's 80 classes are counted, not listed
        warnings.add("Classes without a single labelled object", layout.names[i])
    report.errors += problems.messages()
    report.warnings += warnings.messages()


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
