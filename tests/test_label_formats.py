"""Labelling-tool exports made from the demo dataset come back as the same boxes and class names."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from amc_widgets.backends.local import LocalBackend
from amc_widgets.core.dataset_check import DatasetError
from amc_widgets.core.dataset_import import IMPORT_KEY, check_export, prepare_dataset
from amc_widgets.core.dataset_split import SplitSettings
from amc_widgets.core.label_formats import pixel_box_to_yolo
from tests.conftest import FAST_TRAINING, make_ml_root, run_container
from tests.label_exports import (
    read_yolo,
    write_coco,
    write_cvat_ultralytics,
    write_cvat_yolo11,
    write_label_studio,
    write_roboflow,
    write_voc,
)

WRITERS = {
    "COCO JSON": write_coco,
    "Pascal VOC XML": write_voc,
    "CVAT YOLO 1.1": write_cvat_yolo11,
    "Label Studio YOLO": write_label_studio,
    "Ultralytics YOLO without a val split (as CVAT exports it)": write_cvat_ultralytics,
}


def _boxes_by_image(root: Path) -> tuple[list[str], dict[str, list]]:
    names, images = read_yolo(root)
    return names, {item.path.name: item.boxes for item in images}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_export_round_trips_to_the_same_boxes_and_names(fmt, small_dataset, tmp_path):
    source = WRITERS[fmt](small_dataset, tmp_path / "export")
    before = _snapshot(source)
    names, expected = _boxes_by_image(small_dataset)
    with prepare_dataset(source) as prepared:
        assert prepared.converted and prepared.source_format == fmt
        got_names, got = _boxes_by_image(prepared.path)
        data = yaml.safe_load((prepared.path / "data.yaml").read_text())
        report = check_export(source)
    assert not prepared.path.exists(), "the converted copy is removed"
    assert _snapshot(source) == before, "the export itself is never changed"
    assert sorted(got_names) == sorted(names)
    assert got.keys() == expected.keys()
    for image, boxes in expected.items():
        assert len(got[image]) == len(boxes)
        for (name, *coords), (got_name, *got_coords) in zip(boxes, got[image], strict=True):
            assert got_name == name
            assert got_coords == pytest.approx(coords, abs=2e-5), image
    assert data[IMPORT_KEY]["format"] == fmt
    assert report.ok, report.summary()
    assert report.source_format == f"{fmt}, converted to YOLO"
    assert sum(s.images for s in report.splits.values()) == len(expected)


def test_coco_voc_and_cvat_keep_the_exports_own_split(small_dataset, tmp_path):
    _names, originals = read_yolo(small_dataset)
    split_of = {item.path.name: item.split for item in originals}
    exports = (write_coco(small_dataset, tmp_path / "coco", per_split=True), write_voc(small_dataset, tmp_path / "voc"),
               write_cvat_yolo11(small_dataset, tmp_path / "cvat", subsets=True))
    for source in exports:
        with prepare_dataset(source) as prepared:
            _n, converted = read_yolo(prepared.path)
            assert {item.path.name: item.split for item in converted} == split_of
            assert prepared.split_note == ""
            record = yaml.safe_load((prepared.path / "data.yaml").read_text())[IMPORT_KEY]
            assert record["split"] == {"automatic": False}


def test_automatic_split_is_recorded_in_data_yaml_and_report(small_dataset, tmp_path):
    source = write_label_studio(small_dataset, tmp_path / "ls")
    report = check_export(source, SplitSettings(val_fraction=0.25, seed=7))
    assert report.ok
    assert report.splits["train"].images == 36 and report.splits["val"].images == 12
    assert "75/25 automatic split (seed 7" in report.split_note and "split: 75/25" in report.summary()
    with prepare_dataset(source, SplitSettings(val_fraction=0.25, seed=7)) as prepared:
        record = yaml.safe_load((prepared.path / "data.yaml").read_text())[IMPORT_KEY]["split"]
    assert record == {"automatic": True, "val_fraction": 0.25, "seed": 7, "train": 36, "val": 12}


def test_roboflow_and_yolo_with_val_are_used_as_they_are(small_dataset, tmp_path):
    source = write_roboflow(small_dataset, tmp_path / "rf")
    with prepare_dataset(source) as prepared:
        assert prepared.path == source and not prepared.converted
    report = check_export(source)
    assert report.ok and report.source_format == "Roboflow YOLOv5" and report.splits["val"].images == 16
    assert check_export(small_dataset).source_format == "YOLO (data.yaml)"


def test_zipped_export_is_converted_without_touching_the_zip(small_dataset, tmp_path):
    folder = write_coco(small_dataset, tmp_path / "coco")
    archive = tmp_path / "coco.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, "export/" + path.relative_to(folder).as_posix())
    before = archive.read_bytes()
    report = check_export(archive)
    assert report.ok, report.summary()
    assert report.source_format == "COCO JSON, converted to YOLO" and report.splits["val"].images == 10
    assert archive.read_bytes() == before


def test_pixel_boxes_are_clipped_exactly_and_counted():
    assert pixel_box_to_yolo(10, 20, 50, 60, 100, 200) == ((0.3, 0.2, 0.4, 0.2), False)
    assert pixel_box_to_yolo(-10, 150, 50, 260, 100, 200) == ((0.25, 0.875, 0.5, 0.25), True)
    assert pixel_box_to_yolo(120, 10, 130, 20, 100, 200) == (None, True)


def _coco_dataset(small_dataset, tmp_path, change) -> Path:
    source = write_coco(small_dataset, tmp_path / "coco")
    ann = source / "annotations" / "instances.json"
    data = json.loads(ann.read_text())
    change(data)
    ann.write_text(json.dumps(data))
    return source


def test_coco_clipped_boxes_are_reported(small_dataset, tmp_path):
    def overhang(data):
        data["annotations"][0]["bbox"][0] = -5.0
        data["annotations"][3]["bbox"][2] = 500.0
    report = check_export(_coco_dataset(small_dataset, tmp_path, overhang))
    assert report.ok and "2 boxes clipped to the image edges" in report.notes


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["images"][2].update(file_name="missing.jpg"),
     "COCO images whose file is not in the dataset [1]: annotations/instances.json images[2] (id 3): 'missing.jpg'"),
    (lambda d: d["annotations"][4].update(category_id=99),
     "annotations/instances.json annotations[4] (id 5): category_id 99"),
    (lambda d: d["annotations"][1].update(image_id=999), "annotations[1] (id 2): image_id 999"),
    (lambda d: d["annotations"][0].update(bbox=[300, 300, 10, 10]), "COCO boxes entirely outside their image"),
])
def test_broken_coco_names_the_file_and_entry(small_dataset, tmp_path, change, expected):
    report = check_export(_coco_dataset(small_dataset, tmp_path, change))
    assert not report.ok
    assert any(expected in error for error in report.errors), report.errors


def test_voc_box_outside_the_image_names_file_and_object(small_dataset, tmp_path):
    source = write_voc(small_dataset, tmp_path / "voc")
    xml = sorted((source / "Annotations").glob("*.xml"))[0]
    text = re.sub(r"<xmin>[^<]*</xmin>", "<xmin>900</xmin>", xml.read_text(), count=1)
    xml.write_text(re.sub(r"<xmax>[^<]*</xmax>", "<xmax>950</xmax>", text, count=1))
    with pytest.raises(DatasetError, match=rf"VOC box.*{xml.name} object 1"):
        with prepare_dataset(source):
            pass


def test_problems_in_converted_yolo_labels_name_the_exports_own_files(small_dataset, tmp_path):
    source = write_cvat_yolo11(small_dataset, tmp_path / "cvat")
    (source / "obj_train_data" / "board_val_0003.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    report = check_export(source)
    assert not report.ok
    assert any("obj_train_data/board_val_0003.txt line 1: class 7" in error for error in report.errors), report.errors


def test_an_export_of_one_image_is_reported_not_split(small_dataset, tmp_path):
    source = write_label_studio(small_dataset, tmp_path / "ls")
    for image in sorted((source / "images").iterdir())[1:]:
        image.unlink()
    report = check_export(source)
    assert report.errors == ["A dataset with 1 image(s) cannot be split into train and val"]


def test_unknown_folder_says_what_is_recognised(tmp_path):
    (tmp_path / "photos").mkdir()
    shutil.copy(__file__, tmp_path / "photos" / "notes.txt")
    report = check_export(tmp_path / "photos")
    assert not report.ok and "No data.yaml" in report.errors[0] and "COCO JSON" in report.errors[0]


@pytest.mark.slow
def test_a_stored_coco_export_trains_in_the_container(small_dataset, tmp_path):
    source = write_coco(small_dataset, tmp_path / "coco")
    info = LocalBackend(home=tmp_path / "home", user="ana").store_dataset(source, name="coco")
    run = run_container(make_ml_root(tmp_path / "ml", Path(info.location), {**FAST_TRAINING, "epochs": 1}))
    assert run.code == 0, run.failure or run.log[-3000:]
    card = json.loads((run.root / "model" / "model_card.json").read_text())
    assert card["classes"] == ["good", "insufficient", "bridge"] and card["epochs_completed"] == 1
    assert (run.root / "model" / "best.onnx").is_file()
