"""Safe reading of zip archives: checked up front, then read member by member, never unpacked.

:func:`open_safe_zip` refuses an archive before a single byte is read from it if it could harm
whoever unpacks it: member names that escape the target folder (zip slip), symbolic links,
encrypted members, too many members, too many bytes in all, or a compression ratio only a zip
bomb reaches.  Sizes in zip headers can lie, so every member read is also stopped as soon as it
yields more bytes than its header declared.

Member names come out as relative POSIX paths (``train/images/a.jpg``, backslashes written by
Windows tools turned into slashes); folders and macOS / Windows junk (``__MACOSX/``,
``.DS_Store``, ``._*``, ``Thumbs.db``) are left out.
"""

from __future__ import annotations

import io
import lzma
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from amc_widgets.core.errors import AmcError

MiB = 1 << 20
GiB = 1 << 30
READ_CHUNK = MiB
READABLE_COMPRESSIONS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
JUNK_FOLDERS = {"__MACOSX"}
JUNK_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}
_DRIVE = re.compile(r"^[A-Za-z]:")


class BadArchiveError(AmcError, ValueError):
    """The archive cannot be read: not a zip, damaged, or compressed in a way zipfile cannot read."""


class UnsafeArchiveError(AmcError, ValueError):
    """The archive could harm the machine that unpacks it; the message names the member."""


@dataclass(frozen=True)
class ZipLimits:
    """What :func:`open_safe_zip` accepts."""

    max_total_bytes: int = 20 * GiB  # uncompressed, all members together
    max_ratio: float = 200.0  # uncompressed / compressed size of one member ...
    ratio_checked_above: int = MiB  # ... larger than this (small files may compress better)
    max_members: int = 1_000_000


class _DeclaredSizeReader(io.RawIOBase):
    """Reads one member, refusing any byte beyond the size its header declared."""

    def __init__(self, stream: io.BufferedIOBase, name: str, declared: int):
        super().__init__()
        self._stream, self._name, self._declared, self._seen = stream, name, declared, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size >= 0:
            return self._read_chunk(size)
        chunks = []
        while chunk := self._read_chunk(READ_CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self._read_chunk(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _read_chunk(self, size: int) -> bytes:
        try:
            data = self._stream.read(size)
        except (zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
            raise BadArchiveError(f"{self._name} is damaged in the archive: {exc}") from None
        self._seen += len(data)
        if self._seen > self._declared:
            raise UnsafeArchiveError(
                f"{self._name} holds more data than its zip header declares ({self._declared} bytes): "
                "the archive was tampered with"
            )
        return data

    def close(self) -> None:
        self._stream.close()
        super().close()


class SafeZip:
    """A zip archive that passed :func:`open_safe_zip`'s checks; close it, or use it in ``with``."""

    def __init__(self, path: Path, archive: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo]):
        self.path = path
        self._zip = archive
        self._infos = infos

    @property
    def members(self) -> list[str]:
        """Every file in the archive as a relative POSIX path, in archive order."""
        return list(self._infos)

    @property
    def total_size(self) -> int:
        """Uncompressed bytes of all :attr:`members`, as their headers declare."""
        return sum(info.file_size for info in self._infos.values())

    def size(self, name: str) -> int:
        """Uncompressed bytes of one member, as its header declares."""
        return self._info(name).file_size

    def open(self, name: str) -> io.RawIOBase:
        """A stream of one member's bytes; raises :class:`UnsafeArchiveError` if the header lied."""
        info = self._info(name)
        try:
            stream = self._zip.open(info)
        except zipfile.BadZipFile as exc:
            raise BadArchiveError(f"{name} is damaged in the archive: {exc}") from None
        return _DeclaredSizeReader(stream, name, info.file_size)

    def read_bytes(self, name: str) -> bytes:
        """One member's bytes, read through :meth:`open`'s guard."""
        with self.open(name) as stream:
            return stream.read()

    def _info(self, name: str) -> zipfile.ZipInfo:
        try:
            return self._infos[name]
        except KeyError:
            raise KeyError(f"{name} is not in {self.path.name}") from None

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_safe_zip(path: Path, limits: ZipLimits = ZipLimits()) -> SafeZip:
    """Open and check the zip archive ``path``.

    Raises :class:`UnsafeArchiveError` for a dangerous archive, :class:`BadArchiveError` for a
    file that is not a zip or cannot be read, and OSError where the file itself cannot be opened.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError):
        raise BadArchiveError(f"{path.name} is not a zip archive (or it is damaged)") from None
    try:
        infos = _checked_members(archive.infolist(), limits)
    except BaseException:
        archive.close()
        raise
    return SafeZip(path, archive, infos)


def _checked_members(infos: list[zipfile.ZipInfo], limits: ZipLimits) -> dict[str, zipfile.ZipInfo]:
    """Check every entry; return the files worth reading by normalized name."""
    if len(infos) > limits.max_members:
        raise UnsafeArchiveError(
            f"The archive has {len(infos):,} entries, more than the limit of {limits.max_members:,}")
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_bytes:
        raise UnsafeArchiveError(
            f"The archive would unpack to {total / GiB:.1f} GiB, more than the limit of "
            f"{limits.max_total_bytes / GiB:.1f} GiB")
    files: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name, is_folder = _safe_name(info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeArchiveError(f"{info.filename} is a symbolic link; archives with links are refused")
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(
                f"{info.filename} is encrypted (password-protected); zip the dataset again without a password")
        if info.compress_type not in READABLE_COMPRESSIONS:
            raise BadArchiveError(
                f"{info.filename} uses a compression method that cannot be read (zip method "
                f"{info.compress_type}); zip the dataset again with standard (deflate) compression")
        if info.file_size > limits.ratio_checked_above:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise UnsafeArchiveError(
                    f"{info.filename} expands {ratio:,.0f} times (limit {limits.max_ratio:,.0f}): "
                    "this looks like a zip bomb")
        if is_folder or _is_junk(name):
            continue
        if name in files:
            raise UnsafeArchiveError(f"{info.filename} appears more than once in the archive")
        files[name] = info
    return files


def _safe_name(raw: str) -> tuple[str, bool]:
    """(relative POSIX path, whether it names a folder); refuse names that leave the target folder."""
    text = raw.replace("\\", "/")
    if "\0" in text:
        problem = "contains a NUL character"
    elif text.startswith("/"):
        problem = "is an absolute path"
    elif _DRIVE.match(text):
        problem = "starts with a drive letter"
    elif ".." in text.split("/"):
        problem = "climbs out of the target folder with '..'"
    else:
        name = "/".join(part for part in text.split("/") if part not in ("", "."))
        if name or text.endswith("/"):
            return name, text.endswith("/")
        problem = "is empty"
    raise UnsafeArchiveError(f"Archive member name '{raw}' {problem}; archives with such names are refused")


def _is_junk(name: str) -> bool:
    """macOS resource forks and folder metadata, Windows thumbnails: not part of any dataset."""
    parts = name.split("/")
    base = parts[-1]
    return bool(JUNK_FOLDERS.intersection(parts[:-1])) or base in JUNK_FILES or base.startswith("._")
