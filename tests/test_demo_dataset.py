import hashlib

import pytest

from amc_widgets.core.dataset_check import check_dataset
from amc_widgets.core.demo_dataset import CLASS_NAMES, make_demo_dataset


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_demo_dataset_is_valid_and_deterministic(tmp_path):
    make_demo_dataset(tmp_path / "a", train=12, val=6, seed=3)
    make_demo_dataset(tmp_path / "b", train=12, val=6, seed=3)
    make_demo_dataset(tmp_path / "c", train=12, val=6, seed=4)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    report = check_dataset(tmp_path / "a")
    assert report.ok, report.summary()
    assert report.names == list(CLASS_NAMES)
    assert report.splits["train"].images == 12 and report.splits["val"].images == 6
    assert all(report.class_counts[i] > 0 for i in range(len(CLASS_NAMES)))


def test_demo_dataset_never_overwrites(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        make_demo_dataset(tmp_path, train=2, val=2)
    assert (tmp_path / "keep.txt").read_text() == "mine"
