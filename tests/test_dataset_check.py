"""Dataset checks: every layout data.yaml may describe, and every problem a factory engineer makes."""

import io
import shutil

import pytest
import yaml
from PIL import Image

from amc_widgets.core.dataset_check import (
    DatasetError,
    check_dataset,
    label_path_for,
    resolve_dataset,
    write_resolved_data_yaml,
)


def _set_yaml(root, **data):
    (root / "data.yaml").write_text(yaml.safe_dump(data))


def test_demo_layout_resolves(dataset_copy):
    resolved = resolve_dataset(dataset_copy)
    assert len(resolved.images["train"]) == 32 and len(resolved.images["val"]) == 16
    assert all(p.is_absolute() and p.is_file() for p in resolved.images["train"])


def test_txt_lists_with_relative_and_foreign_absolute_paths(dataset_copy):
    train = sorted((dataset_copy / "train" / "images").iterdir())
    val = sorted((dataset_copy / "val" / "images").iterdir())
    # "./" entries (relative to the list) and paths written on a Windows machine.
    (dataset_copy / "train.txt").write_text("".join(f"./train/images/{p.name}\n" for p in train))
    (dataset_copy / "val.txt").write_text(
        "".join(f"C:\\Users\\eng\\solder\\val\\images\\{p.name}\r\n" for p in val))
    _set_yaml(dataset_copy, path="C:\\Users\\eng\\solder", train="train.txt", val="val.txt",
              names={0: "good", 1: "insufficient", 2: "bridge"})
    resolved = resolve_dataset(dataset_copy)
    assert resolved.images["train"] == [p.resolve() for p in train]
    assert resolved.images["val"] == [p.resolve() for p in val]
    assert resolved.names == ["good", "insufficient", "bridge"]


def test_roboflow_style_parent_paths_and_nested_data_yaml(tmp_path, small_dataset):
    root = tmp_path / "upload"
    shutil.copytree(small_dataset, root / "solder-v3")
    (root / "solder-v3" / "data.yaml").unlink()
    (root / "solder-v3" / "data.yaml").write_text(yaml.safe_dump(
        {"train": "../train/images", "val": ["../val/images"], "nc": 3, "names": ["a", "b", "c"]}))
    resolved = resolve_dataset(root)
    assert resolved.data_yaml == (root / "solder-v3" / "data.yaml").resolve()
    assert len(resolved.images["val"]) == 16


def test_resolved_yaml_lists_absolute_images(dataset_copy, tmp_path):
    resolved = resolve_dataset(dataset_copy)
    out = write_resolved_data_yaml(resolved, tmp_path / "work")
    data = yaml.safe_load(out.read_text())
    assert data["nc"] == 3 and data["names"] == {0: "good", 1: "insufficient", 2: "bridge"}
    listed = (tmp_path / "work" / "train.txt").read_text().split()
    assert [str(p) for p in resolved.images["train"]] == listed
    assert label_path_for(resolved.images["train"][0]).is_file()


def test_clean_dataset_reports_counts(dataset_copy):
    report = check_dataset(dataset_copy)
    assert report.ok, report.summary()
    assert report.splits["train"].instances == sum(
        len(p.read_text().split("\n")) - 1 for p in (dataset_copy / "train" / "labels").iterdir())
    assert "train: 32 images" in report.summary()


def test_missing_data_yaml(dataset_copy):
    (dataset_copy / "data.yaml").unlink()
    report = check_dataset(dataset_copy)
    assert not report.ok and "No data.yaml" in report.errors[0]


def test_listed_images_that_are_missing(dataset_copy):
    (dataset_copy / "val.txt").write_text("./val/images/board_val_0000.jpg\n./val/images/gone.jpg\n")
    _set_yaml(dataset_copy, train="train/images", val="val.txt", names=["a", "b", "c"])
    with pytest.raises(DatasetError, match="gone.jpg"):
        resolve_dataset(dataset_copy)


def test_split_folder_that_does_not_exist(dataset_copy):
    _set_yaml(dataset_copy, train="train/images", val="valid/images", names=["a", "b", "c"])
    report = check_dataset(dataset_copy)
    assert "valid/images" in report.errors[0] and "not found" in report.errors[0]


def test_class_id_beyond_names(dataset_copy):
    label = dataset_copy / "train" / "labels" / "board_train_0003.txt"
    label.write_text(label.read_text() + "7 0.5 0.5 0.1 0.1\n")
    report = check_dataset(dataset_copy)
    assert not report.ok
    assert any("board_train_0003.txt" in e and "class 7" in e and "3 classes" in e for e in report.errors)


def test_malformed_and_out_of_range_lines(dataset_copy):
    labels = dataset_copy / "train" / "labels"
    (labels / "board_train_0001.txt").write_text("0 0.5 0.5 0.2\n")
    (labels / "board_train_0002.txt").write_text("1 0.5 1.7 0.2 0.2\n")
    (labels / "board_train_0004.txt").write_text("good 0.5 0.5 0.2 0.2\n")
    errors = "\n".join(check_dataset(dataset_copy).errors)
    assert "Malformed" in errors and "board_train_0001.txt line 1" in errors
    assert "outside 0..1" in errors and "board_train_0002.txt" in errors
    assert "text where numbers belong" in errors and "board_train_0004.txt" in errors


def test_corrupt_image_and_unlabelled_images(dataset_copy):
    (dataset_copy / "train" / "images" / "board_train_0005.jpg").write_bytes(b"not a jpeg")
    (dataset_copy / "train" / "labels" / "board_train_0006.txt").unlink()
    report = check_dataset(dataset_copy)
    assert any("cannot be read" in e and "board_train_0005.jpg" in e for e in report.errors)
    assert report.splits["train"].background == 1


def _image_bytes(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").resize((64, 64)).save(out, fmt)
    return out.getvalue()


def test_truncated_jpeg_and_png_with_garbage_are_named(dataset_copy):
    images = dataset_copy / "train" / "images"
    jpeg = (images / "board_train_0001.jpg").read_bytes()
    (images / "board_train_0001.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # an upload cut short
    (images / "board_train_0002.jpg").write_bytes(jpeg[:-2])  # only the end marker missing
    png = _image_bytes("PNG")
    (images / "board_train_0003.png").write_bytes(png[:60] + b"garbage!" * 8 + png[124:])
    (images / "board_train_0004.png").write_bytes(png[: len(png) // 2])
    report = check_dataset(dataset_copy)
    unreadable = next(e for e in report.errors if "cannot be read" in e)
    for name in ("board_train_0001.jpg", "board_train_0002.jpg", "board_train_0003.png", "board_train_0004.png"):
        assert name in unreadable, (name, report.errors)
    assert "[4]" in unreadable


def test_jpeg_with_data_after_its_end_marker_is_accepted(dataset_copy):
    image = dataset_copy / "train" / "images" / "board_train_0001.jpg"
    image.write_bytes(image.read_bytes() + b"camera maker trailer")  # ultralytics restores these
    report = check_dataset(dataset_copy)
    assert report.ok, report.errors


def test_image_in_a_format_yolo_does_not_read(dataset_copy):
    (dataset_copy / "train" / "images" / "board_train_0001.jpg").write_bytes(_image_bytes("GIF"))
    errors = check_dataset(dataset_copy).errors
    assert any("format YOLO does not read" in e and "board_train_0001.jpg (GIF)" in e for e in errors), errors


def test_nc_disagreeing_with_names(dataset_copy):
    _set_yaml(dataset_copy, train="train/images", val="val/images", nc=4, names=["a", "b", "c"])
    assert "nc is 4" in check_dataset(dataset_copy).errors[0]


def test_many_problems_are_counted_not_all_listed(dataset_copy):
    for label in sorted((dataset_copy / "train" / "labels").iterdir())[:12]:
        label.write_text("9 0.5 0.5 0.1 0.1\n")
    errors = check_dataset(dataset_copy).errors
    assert any("[12]" in e and "and 7 more" in e for e in errors)
