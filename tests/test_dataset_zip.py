"""Datasets uploaded as a .zip: checked without unpacking, dangerous archives refused."""

from __future__ import annotations

import io
import re
import struct
import zipfile
from pathlib import Path

import pytest
import yaml

from amc_widgets.core.archive import BadArchiveError, UnsafeArchiveError, ZipLimits, open_safe_zip
from amc_widgets.core.dataset_check import check_dataset


def _zip_folder(folder: Path, dest: Path, top: str = "solder-v3/", extra: dict[str, bytes] | None = None) -> Path:
    """Zip ``folder`` under the top folder ``top``, plus ``extra`` members."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, top + path.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return dest


def _zip_members(dest: Path, members: dict[str | zipfile.ZipInfo, bytes]) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return dest


def _patch_headers(path: Path, local_offset: int, central_offset: int, fmt: str, value: int) -> None:
    """Overwrite one field in the local and the central header of a one-member zip."""
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, data.index(b"PK\x03\x04") + local_offset, value)
    struct.pack_into(fmt, data, data.index(b"PK\x01\x02") + central_offset, value)
    path.write_bytes(bytes(data))


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.fixture()
def no_extraction(monkeypatch):
    """Fail the test if anything unpacks a zip to disk."""
    def refuse(*args, **kwargs):
        raise AssertionError("a zip was extracted to disk")

    monkeypatch.setattr(zipfile.ZipFile, "extract", refuse)
    monkeypatch.setattr(zipfile.ZipFile, "extractall", refuse)


def test_clean_zip_with_top_folder_matches_the_folder(small_dataset, tmp_path, no_extraction):
    archive = _zip_folder(small_dataset, tmp_path / "solder.zip", extra={
        "__MACOSX/solder-v3/train/images/._board_train_0000.jpg": b"resource fork",
        "solder-v3/train/images/.DS_Store": b"finder",
        "solder-v3/val/images/._board_val_0000.jpg": b"resource fork",
    })
    before = _listing(tmp_path)
    from_zip, from_folder = check_dataset(archive), check_dataset(small_dataset)
    assert from_zip.ok and from_folder.ok, from_zip.summary() + from_folder.summary()
    assert from_zip.splits == from_folder.splits and from_zip.class_counts == from_folder.class_counts
    assert from_zip.splits["train"].images == 32 and from_zip.splits["val"].images == 16
    assert from_zip.data_yaml == archive / "solder-v3" / "data.yaml"
    assert _listing(tmp_path) == before  # nothing unpacked next to the zip


def test_class_id_too_large_names_the_member_and_line(dataset_copy, tmp_path):
    label = dataset_copy / "train" / "labels" / "board_train_0003.txt"
    line = len(label.read_text().splitlines()) + 1
    label.write_text(label.read_text() + "7 0.5 0.5 0.1 0.1\n")
    report = check_dataset(_zip_folder(dataset_copy, tmp_path / "bad.zip"))
    assert not report.ok
    assert any(f"solder-v3/train/labels/board_train_0003.txt line {line}: class 7" in e for e in report.errors)


def test_corrupt_image_in_zip_is_named(dataset_copy, tmp_path):
    (dataset_copy / "val" / "images" / "board_val_0002.jpg").write_bytes(b"not a jpeg")
    report = check_dataset(_zip_folder(dataset_copy, tmp_path / "bad.zip"))
    assert any("cannot be read" in e and "solder-v3/val/images/board_val_0002.jpg" in e for e in report.errors)


def test_truncated_jpeg_in_zip_is_named(dataset_copy, tmp_path):
    image = dataset_copy / "val" / "images" / "board_val_0003.jpg"
    image.write_bytes(image.read_bytes()[:-100])
    report = check_dataset(_zip_folder(dataset_copy, tmp_path / "bad.zip"))
    assert any("cannot be read" in e and "solder-v3/val/images/board_val_0003.jpg" in e for e in report.errors)


def test_txt_lists_with_foreign_paths_in_a_zip(small_dataset, tmp_path):
    train = sorted(p.name for p in (small_dataset / "train" / "images").iterdir())
    val = sorted(p.name for p in (small_dataset / "val" / "images").iterdir())
    archive = tmp_path / "lists.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(small_dataset.rglob("*")):
            if path.is_file() and path.name != "data.yaml":
                out.write(path, "export/" + path.relative_to(small_dataset).as_posix())
        out.writestr("export/lists/train.txt", "".join(f"../train/images/{name}\n" for name in train))
        out.writestr("export/lists/val.txt", "".join(f"C:\\Users\\eng\\export\\val\\images\\{name}\r\n"
                                                     for name in val))
        out.writestr("export/lists/data.yaml", yaml.safe_dump(
            {"path": "C:\\Users\\eng\\export", "train": "lists/train.txt", "val": "lists/val.txt",
             "names": ["good", "insufficient", "bridge"]}))
    report = check_dataset(archive)
    assert report.ok, report.summary()
    assert report.splits["train"].images == 32 and report.splits["val"].images == 16


def test_split_folder_missing_from_the_zip(small_dataset, tmp_path):
    archive = _zip_folder(small_dataset / "train", tmp_path / "only-train.zip", top="solder/train/", extra={
        "solder/data.yaml": yaml.safe_dump({"train": "train/images", "val": "val/images", "nc": 1,
                                            "names": ["x"]}).encode(),
    })
    errors = check_dataset(archive).errors
    assert len(errors) == 1 and "val/images" in errors[0] and "not found" in errors[0]


def test_members_are_normalized_and_junk_is_left_out(tmp_path):
    archive = _zip_members(tmp_path / "a.zip", {
        "top/": b"",
        "top\\train\\a.txt": b"windows separators",
        "./top/b.txt": b"b" * 3000,
        "__MACOSX/top/._b.txt": b"fork",
        "top/.DS_Store": b"finder",
        "top/Thumbs.db": b"thumbs",
    })
    with open_safe_zip(archive) as safe:
        assert safe.members == ["top/train/a.txt", "top/b.txt"]
        assert safe.total_size == len(b"windows separators") + 3000
        assert safe.read_bytes("top/train/a.txt") == b"windows separators"
        with safe.open("top/b.txt") as stream:
            chunks = iter(lambda: stream.read(1000), b"")
            assert [len(chunk) for chunk in chunks] == [1000, 1000, 1000]
        with pytest.raises(KeyError, match="__MACOSX"):
            safe.open("__MACOSX/top/._b.txt")


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/x", "C:\\x", "C:/x", "..\\evil.txt", "data/../../evil.txt",
                                  "\\\\server\\share\\x"])
def test_zip_slip_names_are_refused(tmp_path, name):
    archive = _zip_members(tmp_path / "slip.zip", {"data/data.yaml": b"names: [a]", name: b"owned"})
    with pytest.raises(UnsafeArchiveError, match=re.escape(name)):
        open_safe_zip(archive)
    report = check_dataset(archive)
    assert not report.ok and name in report.errors[0]


def test_symlink_member_is_refused(tmp_path):
    link = zipfile.ZipInfo("solder/train/images/passwd.jpg")
    link.external_attr = 0o120777 << 16
    archive = _zip_members(tmp_path / "link.zip", {link: b"/etc/passwd"})
    with pytest.raises(UnsafeArchiveError, match="passwd.jpg is a symbolic link"):
        open_safe_zip(archive)
    assert "symbolic link" in check_dataset(archive).errors[0]


def test_zip_bomb_is_refused(tmp_path):
    zeros = bytes(5 << 20)  # deflates about 1000:1
    archive = _zip_members(tmp_path / "bomb.zip", {"solder/data.yaml": b"names: [a]", "solder/zeros.bin": zeros})
    with pytest.raises(UnsafeArchiveError, match="zeros.bin expands .* times"):
        open_safe_zip(archive)
    assert "zip bomb" in check_dataset(archive).errors[0]
    with open_safe_zip(archive, ZipLimits(max_ratio=10_000)) as safe:  # the limit is the caller's to set
        assert safe.size("solder/zeros.bin") == 5 << 20


def test_total_size_and_member_count_limits(tmp_path):
    archive = _zip_members(tmp_path / "big.zip", {f"f{i}.txt": bytes(range(256)) * 4 for i in range(4)})
    with pytest.raises(UnsafeArchiveError, match="unpack to"):
        open_safe_zip(archive, ZipLimits(max_total_bytes=3000))
    with pytest.raises(UnsafeArchiveError, match="4 entries"):
        open_safe_zip(archive, ZipLimits(max_members=3))
    with open_safe_zip(archive, ZipLimits(max_total_bytes=4096, max_members=4)) as safe:
        assert len(safe.members) == 4


def test_duplicate_members_are_refused(tmp_path):
    archive = _zip_members(tmp_path / "twice.zip", {"a/b.txt": b"one", "a\\b.txt": b"two"})
    with pytest.raises(UnsafeArchiveError, match="more than once"):
        open_safe_zip(archive)


def test_encrypted_member_is_refused(tmp_path):
    archive = _zip_members(tmp_path / "secret.zip", {"solder/data.yaml": b"names: [a]"})
    _patch_headers(archive, 6, 8, "<H", 0x1)  # general purpose flag bit 0: encrypted
    with pytest.raises(UnsafeArchiveError, match="data.yaml is encrypted"):
        open_safe_zip(archive)
    assert "without a password" in check_dataset(archive).errors[0]


def test_unsupported_compression_is_a_clear_error(tmp_path):
    archive = _zip_members(tmp_path / "deflate64.zip", {"solder/data.yaml": b"names: [a]"})
    _patch_headers(archive, 8, 10, "<H", 9)  # method 9: Deflate64, which zipfile cannot read
    with pytest.raises(BadArchiveError, match="compression method"):
        open_safe_zip(archive)


def test_header_that_understates_the_size_never_yields_more(tmp_path):
    archive = _zip_members(tmp_path / "liar.zip", {"solder/data.yaml": b"x" * 1000})
    _patch_headers(archive, 22, 24, "<I", 10)  # uncompressed size: 10 bytes, it is 1000
    with open_safe_zip(archive) as safe:
        assert safe.size("solder/data.yaml") == 10
        with pytest.raises(ValueError, match="data.yaml"):
            safe.read_bytes("solder/data.yaml")
    assert not check_dataset(archive).ok


def test_streaming_guard_stops_at_the_declared_size(small_dataset, tmp_path, monkeypatch):
    archive = _zip_folder(small_dataset, tmp_path / "solder.zip")
    # A decompressor that trusts the data, not the header: every member yields one byte too many.
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, info, *args, **kwargs:
                        io.BytesIO(b"\0" * (info.file_size + 1)))
    with open_safe_zip(archive) as safe:
        with pytest.raises(UnsafeArchiveError, match="more data than its zip header declares"):
            safe.read_bytes("solder-v3/data.yaml")
        with safe.open("solder-v3/data.yaml") as stream:
            assert stream.read(safe.size("solder-v3/data.yaml")) == b"\0" * safe.size("solder-v3/data.yaml")
            with pytest.raises(UnsafeArchiveError):
                stream.read(1)
    report = check_dataset(archive)
    assert not report.ok and "tampered" in report.errors[0]


def test_not_a_zip_and_missing_zip(tmp_path):
    fake = tmp_path / "dataset.zip"
    fake.write_bytes(b"this is a text file, not an archive")
    with pytest.raises(BadArchiveError, match="not a zip archive"):
        open_safe_zip(fake)
    assert "not a zip archive" in check_dataset(fake).errors[0]
    assert "does not exist" in check_dataset(tmp_path / "gone.zip").errors[0]
    (tmp_path / "notes.txt").write_text("hello")
    assert "neither a folder nor a .zip" in check_dataset(tmp_path / "notes.txt").errors[0]
