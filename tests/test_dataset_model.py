"""The dataset model on the real local backend: check, browser uploads, store (with the upload's
progress and outcome), list, delete, the validation image for previews; and the Dataset panel on it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from amc_widgets.core.dataset_check import DatasetError
from amc_widgets.ui.models import connection as connection_module
from amc_widgets.ui.models import dataset as dataset_module
from amc_widgets.ui.models.connection import ConnectionModel, NotConnectedError
from amc_widgets.ui.models.dataset import DatasetModel
from tests.conftest import wait_until
from tests.dashboard_fakes import assert_imports_no_widgets
from tests.label_exports import write_coco


@pytest.fixture()
def datasets(tmp_path, monkeypatch) -> DatasetModel:
    monkeypatch.setenv("AMC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AMC_USER", "ana")
    monkeypatch.delenv(connection_module.CONTAINER_COMMAND_ENV, raising=False)
    connection = ConnectionModel()
    connection.connect()
    (tmp_path / "uploads").mkdir()
    return DatasetModel(connection, upload_dir=tmp_path / "uploads")


def test_check_store_and_list_a_dataset(datasets, small_dataset):
    with pytest.raises(ValueError, match="Check a dataset first"):
        datasets.store("solder")
    with pytest.raises(ValueError):
        datasets.check("   ")
    report = datasets.check(small_dataset)
    assert report.ok and datasets.suggested_name()
    names, counts = datasets.histogram()
    assert names == report.names and sum(counts) == sum(split.instances for split in report.splits.values())
    heard = []
    datasets.observe(lambda change: heard.append(change.name))
    info = datasets.store("solder")
    assert info.name == "solder" and datasets.names() == ["solder"] and "datasets" in heard
    assert Path(info.location).is_relative_to(Path(datasets.connection.backend.home))
    datasets.delete("solder")
    assert datasets.names() == []


def test_a_coco_export_is_checked_previewed_and_stored_with_the_split_it_reported(datasets, small_dataset,
                                                                                   tmp_path):
    source = write_coco(small_dataset, tmp_path / "coco")
    datasets.val_fraction, datasets.split_seed = 0.25, 11
    report = datasets.check(source)
    assert report.ok and report.source_format == "COCO JSON, converted to YOLO"
    assert "75/25 automatic split (seed 11" in report.split_note
    assert [name for name, _image, _png in datasets.gallery][:1] == [report.names[min(
        range(3), key=lambda c: (report.class_counts[c], c))]], "rarest class first"
    assert all(png.startswith(b"\x89PNG") for _n, _i, png in datasets.gallery) and len(datasets.gallery) == 9
    image, png = datasets.show_image("board_train_0007")
    assert image.endswith("/board_train_0007.jpg") and png.startswith(b"\x89PNG")
    with pytest.raises(LookupError, match="No image named 'nope'"):
        datasets.show_image("nope")
    datasets.val_fraction = 0.5  # changed after the check: the store keeps what the report showed
    info = datasets.store("coco")
    stored = Path(info.location)
    assert len(list((stored / "images" / "val").iterdir())) == report.splits["val"].images == 12
    converted = datasets._preview_path
    datasets.check(small_dataset)
    assert not converted.exists(), "the previous converted copy is removed"


def test_store_refuses_a_dataset_with_errors(datasets, dataset_copy):
    (dataset_copy / "train" / "labels" / "board_train_0000.txt").write_text("9 0.5 0.5 0.1 0.1\n")
    report = datasets.check(dataset_copy)
    assert not report.ok
    with pytest.raises(DatasetError, match="errors"):
        datasets.store("broken")
    assert "errors" in datasets.upload.error and not datasets.upload.running
    assert datasets.refresh() == []


def test_browser_upload_refuses_non_zip_and_too_big(datasets, monkeypatch):
    with pytest.raises(ValueError, match=r"\.zip"):
        datasets.save_browser_upload("dataset.tar.gz", b"x")
    monkeypatch.setattr(dataset_module, "UPLOAD_LIMIT_BYTES", 1024)
    with pytest.raises(ValueError, match="copy it to the server"):
        datasets.save_browser_upload("big.zip", b"x" * 1025)
    assert list(datasets.upload_dir.iterdir()) == []


@pytest.mark.parametrize("filename", ["../../x.zip", "/etc/cron.d/x.zip", "..\\..\\x.zip", "my boards (v2).ZIP"])
def test_browser_upload_name_stays_inside_the_upload_folder(datasets, filename):
    path = datasets.save_browser_upload(filename, b"PK\x05\x06" + b"\0" * 18)
    assert path.parent == datasets.upload_dir
    assert path.resolve().is_relative_to(datasets.upload_dir.resolve())
    assert set(path.name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert path.read_bytes().startswith(b"PK")


def test_uploaded_zip_checks_stores_and_gives_a_validation_image(datasets, small_dataset, tmp_path):
    archive = Path(shutil.make_archive(str(tmp_path / "boards"), "zip", small_dataset))
    path = datasets.save_browser_upload("boards.zip", archive.read_bytes())
    assert datasets.check(path).ok
    datasets.store("boards")
    assert datasets.names() == ["boards"]
    image = datasets.validation_image("boards")
    location = Path(datasets.datasets[0].location)
    assert image is not None and image.is_file() and image.is_relative_to(location)
    assert "val" in image.relative_to(location).parts
    assert datasets.validation_image("unknown") is None  # the checked path is a zip, not a folder


def test_validation_image_from_the_folder_checked_here(datasets, small_dataset):
    datasets.check(small_dataset)
    image = datasets.validation_image("not-stored")
    assert image is not None and image.is_relative_to(small_dataset) and "val" in image.parts


def test_datasets_need_a_connection(tmp_path):
    model = DatasetModel(ConnectionModel(local_factory=lambda: None), upload_dir=tmp_path)
    with pytest.raises(NotConnectedError, match="Not connected"):
        model.refresh()


# --- the upload's state -----------------------------------------------------------------------

def test_store_keeps_its_progress_and_outcome_in_the_upload_state(datasets, small_dataset):
    upload = datasets.upload
    with pytest.raises(ValueError, match="Check a dataset first"):
        datasets.store()
    assert upload.error == "Check a dataset first" and not upload.running and upload.stored is None
    datasets.check(small_dataset)
    assert upload.error == "" and datasets.store_name == datasets.suggested_name() != ""
    running, fractions = [], []
    upload.observe(lambda change: running.append(change.new), "running")
    upload.observe(lambda change: fractions.append(change.new), "fraction")
    info = datasets.store()  # under the suggested name
    assert running == [True, False] and upload.stored == info and info.name == datasets.suggested_name()
    assert len(fractions) > 1 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert upload.done == upload.total > 0 and upload.error == ""
    datasets.store_name = "renamed"
    datasets.check(small_dataset)  # a new check: a new upload to come, under the suggested name again
    assert upload.stored is None and upload.fraction == 0.0 and datasets.store_name == info.name


def test_a_failed_store_keeps_its_error_and_the_next_one_starts_clean(datasets, small_dataset):
    datasets.check(small_dataset)
    datasets.store("solder")
    with pytest.raises(FileExistsError):
        datasets.store("solder")  # stored already, and not to be overwritten
    assert "solder" in datasets.upload.error and datasets.upload.stored is None
    info = datasets.store("solder", overwrite=True)
    assert datasets.upload.error == "" and datasets.upload.stored == info


def test_the_dataset_panel_shows_the_report_and_the_upload(datasets, small_dataset):
    from amc_widgets.ui.views.dataset import DatasetView

    view = DatasetView(datasets)
    view.path.input.value = str(small_dataset)
    view.check_button.click()
    assert "Ready for training" in view.report.value and view.store_box.layout.display == "flex"
    assert view.store_name.input.value == datasets.suggested_name()
    view.store_name.input.value = "boards"
    view.store_button.click()
    wait_until(lambda: "Stored &#x27;boards&#x27;" in view.store_status.value, 60, "the upload")
    wait_until(lambda: not view.store_button.disabled, 5, "the button back")
    assert view.store_progress.value == 1.0 and datasets.names() == ["boards"]
    assert "boards" in view.stored.options[0][0]
    view.store_button.click()  # again, without overwrite: the error is shown
    wait_until(lambda: "amc-msg-error" in view.store_status.value, 60, "the refusal")
    view.check_button.click()
    assert view.store_status.value == "" and view.store_progress.value == 0.0


def many_classes(dataset: Path, count: int = 80) -> list[str]:
    """The dataset's data.yaml rewritten with ``count`` classes: the first three have objects, no other."""
    names = ["good", "insufficient", "bridge"] + [f"class_{i:02d}" for i in range(3, count)]
    (dataset / "data.yaml").write_text("train: train/images\nval: val/images\nnames:\n"
                                       + "".join(f"- {name}\n" for name in names))
    return names


def test_many_classes_are_bars_by_count_with_the_empty_ones_apart(datasets, dataset_copy):
    from amc_widgets.ui.views.dataset import BAR_PX, DatasetView

    names = many_classes(dataset_copy)
    view = DatasetView(datasets)
    view.path.input.value = str(dataset_copy)
    view.check_button.click()
    bars, empty = datasets.class_bars()
    counts = dict(zip(*datasets.histogram()))
    assert [name for name, _count in bars] == sorted(names[:3], key=lambda n: -counts[n])
    assert [count for _name, count in bars] == sorted(counts[n] for n in names[:3])[::-1]
    assert empty == names[3:]
    figure = view.histogram_box.children[0]
    assert figure.data[0].orientation == "h" and list(figure.data[0].y) == [name for name, _c in reversed(bars)]
    assert figure.layout.height == BAR_PX * 3 + 70 and figure.layout.width is None  # as wide as its box
    assert "77 classes without any object" in view.empty_classes.value and "class_79" in view.empty_classes.value
    assert "80 classes (objects per class in the chart)" in view.report.value
    assert "class_42" not in view.report.value  # not a paragraph of names
    assert "Classes without a single labelled object [77]: class_03; " in view.report.value
    assert view.histogram_box.layout.overflow == "hidden auto"  # scrolls when long


def test_the_dataset_panel_shows_format_split_gallery_and_an_image_by_name(datasets, small_dataset, tmp_path):
    from amc_widgets.ui.views.dataset import DatasetView

    view = DatasetView(datasets)
    view.val_fraction.value, view.split_seed.value = 0.25, 4
    view.path.input.value = str(write_coco(small_dataset, tmp_path / "coco"))
    view.check_button.click()
    assert "Format: COCO JSON, converted to YOLO" in view.report.value
    assert "Split: 75/25 automatic split (seed 4" in view.report.value
    assert view.preview_box.layout.display == "flex" and len(view.gallery.children) == 9
    view.image_name.value = "board_val_0001.jpg"
    view.show_image_button.click()
    assert "board_val_0001.jpg" in view.picked_caption.value and bytes(view.picked_image.value).startswith(b"\x89PNG")
    view.image_name.value = "<b>nope</b>"
    view.show_image_button.click()
    assert "No image named &#x27;&lt;b&gt;nope&lt;/b&gt;&#x27;" in view.picked_status.value


def test_the_dataset_model_imports_no_widgets():
    assert_imports_no_widgets("amc_widgets.ui.models.dataset")
