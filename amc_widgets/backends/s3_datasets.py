"""Datasets in S3 under ``users/<key>/custom-uploads/<name>/`` (the user's space).

A small file goes as one PutObject, ``UPLOAD_THREADS`` at a time from a thread pool; a big file, or a
zip member too big to inflate into memory, through s3transfer's TransferManager (multipart, parts in
parallel).  Both use botocore's retries and default checksums.  A file already in S3 with the same
size and ETag is not sent again, so an interrupted upload resumes where it stopped.  A dataset counts
as complete only once its manifest (``.amc-dataset.json``) is written, last; a zip is unpacked while
uploading, member by member, straight from the archive.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from boto3.s3.transfer import TransferConfig, create_transfer_manager
from s3transfer.subscribers import BaseSubscriber

from amc_widgets.backends.base import DatasetInfo, ProgressCallback
from amc_widgets.core.storage import iter_files

MANIFEST = ".amc-dataset.json"
TRANSFER_CONFIG = TransferConfig(multipart_threshold=16 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024,
                                 max_concurrency=10)  # parts of big files in flight at once
# Small files in flight at once.  One PutObject each: s3transfer's bookkeeping per transfer (futures,
# coordinators, a submission task) cost a quarter of the client's CPU per small file (bench/upload.py).
UPLOAD_THREADS = 32
UPLOAD_WINDOW = 16  # big files open and in flight at once; the next one starts as soon as one is done
# Files up to this size are read (zip members inflated) into memory once: a body in memory goes out with
# its headers in one write, and botocore hashes it without reading a file twice and seeking back.
IN_MEMORY = 2 * 1024 * 1024


@dataclass(frozen=True)
class UploadItem:
    """One file to store: its key below the dataset prefix, size, how to open / hash it, its path when
    it is a file on disk (s3transfer then opens it in the thread that sends it), and whether ``open``
    gives a stream that can seek back (for checksums and retries)."""

    relative_key: str
    size: int
    open: Callable[[], BinaryIO]
    path: Path | None = None
    seekable: bool = True


def matches_etag(stream: BinaryIO, etag: str, config: TransferConfig = TRANSFER_CONFIG) -> bool:
    """Whether ``stream`` holds the object behind ``etag``: a plain MD5 (single PUT, or a store such as
    s3rver that hashes whole objects) or AWS's multipart form, the MD5 of ``config``-sized part MD5s."""
    etag = etag.strip('"')
    if "-" not in etag:
        digest = hashlib.md5(usedforsecurity=False)
        while chunk := stream.read(config.multipart_chunksize):
            digest.update(chunk)
        return digest.hexdigest() == etag
    digests = []
    while chunk := stream.read(config.multipart_chunksize):
        digests.append(hashlib.md5(chunk, usedforsecurity=False).digest())
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}" == etag


class _Progress(BaseSubscriber):
    def __init__(self, report: Callable[[int], None]):
        self._report = report

    def on_progress(self, future, bytes_transferred, **kwargs):
        self._report(bytes_transferred)


class _Slot(BaseSubscriber):
    """Tells s3transfer the size (so it never seeks to the end to learn it); when the upload is
    done, closes the stream, notes a failure and frees its place in the window."""

    def __init__(self, size: int, stream: BinaryIO | None, slots: threading.Semaphore, failed: threading.Event):
        self._size, self._stream, self._slots, self._failed = size, stream, slots, failed

    def on_queued(self, future, **kwargs):
        future.meta.provide_transfer_size(self._size)

    def on_done(self, future, **kwargs):
        try:
            future.result()
        except BaseException:  # noqa: BLE001 - any failure (cancellation too) stops the window
            self._failed.set()
        finally:
            if self._stream is not None:
                self._stream.close()
            self._slots.release()


def _put_without_waiting(model, params, **kwargs) -> None:
    """A PutObject sends its body with its headers.  botocore asks the server for "100 Continue"
    before any file-like body: a round trip per file, while an upload's single PUTs are small (below
    the multipart threshold; the parts of bigger files still wait)."""
    if model.name == "PutObject":
        params["headers"].pop("Expect", None)


class S3DatasetStore:
    """The user's datasets in one bucket and prefix."""

    def __init__(self, s3, bucket: str, prefix: str, config: TransferConfig = TRANSFER_CONFIG,
                 clock: Callable[[], float] = time.time):
        self.s3, self.bucket, self.prefix = s3, bucket, prefix.rstrip("/") + "/"
        self.config, self.clock = config, clock

    def dataset_prefix(self, name: str) -> str:
        return f"{self.prefix}{name}/"

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def manifest(self, name: str) -> dict | None:
        """The dataset's manifest, or None.  Looked up by listing first: S3 answers a GET of a missing
        key with 403, not 404, unless the caller may ListBucket for it (S3 GetObject permissions), so
        reading a manifest that is not there yet would be AccessDenied under the user policy."""
        key = self.dataset_prefix(name) + MANIFEST
        found = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1).get("Contents", [])
        if not any(obj["Key"] == key for obj in found):
            return None
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def list(self) -> list[DatasetInfo]:
        """Every dataset folder; ``complete`` is False for an upload that did not finish."""
        sizes: dict[str, list[int]] = {}
        complete: set[str] = set()
        modified: dict[str, float] = {}
        for obj in self._objects(self.prefix):
            name, _, rest = obj["Key"][len(self.prefix):].partition("/")
            if not rest:
                continue
            if rest == MANIFEST:
                complete.add(name)
            else:
                sizes.setdefault(name, []).append(obj["Size"])
            modified[name] = max(modified.get(name, 0.0), obj["LastModified"].timestamp())
        return [
            DatasetInfo(name, len(sizes.get(name, [])), sum(sizes.get(name, [])),
                        f"s3://{self.bucket}/{self.dataset_prefix(name)}", modified.get(name), name in complete)
            for name in sorted(set(sizes) | complete)
        ]

    def upload(self, name: str, items: list[UploadItem], source: str, overwrite: bool,
               progress: ProgressCallback | None = None, classes: list[str] | None = None) -> DatasetInfo:
        """Store ``items`` as dataset ``name``; unchanged objects are skipped, stale ones removed;
        the manifest records the dataset's ``classes``."""
        prefix = self.dataset_prefix(name)
        existing = {obj["Key"]: obj for obj in self._objects(prefix)}
        if prefix + MANIFEST in existing:
            if not overwrite:
                raise FileExistsError(f"A dataset named '{name}' is already stored; "
                                      "choose another name or overwrite it")
            self.s3.delete_object(Bucket=self.bucket, Key=prefix + MANIFEST)  # incomplete from here on
        total = sum(item.size for item in items)
        done, counting = 0, threading.Lock()

        def advance(count: int) -> None:  # called from the sending threads
            nonlocal done
            with counting:
                done += count
                if progress:
                    progress(done, total)

        pending = []
        for item in items:
            found = existing.get(prefix + item.relative_key)
            if found and found["Size"] == item.size:
                with item.open() as stream:
                    if matches_etag(stream, found["ETag"], self.config):
                        advance(item.size)
                        continue
            pending.append(item)
        self._send(pending, prefix, advance)
        wanted = {prefix + item.relative_key for item in items}
        self._delete_keys([key for key in existing if key not in wanted and not key.endswith(MANIFEST)])
        manifest = {"name": name, "files": len(items), "bytes": total, "source": source, "stored": self.clock(),
                    "classes": classes or []}
        self.s3.put_object(Bucket=self.bucket, Key=prefix + MANIFEST, Body=json.dumps(manifest).encode())
        return DatasetInfo(name, len(items), total, f"s3://{self.bucket}/{prefix}", self.clock(), True)

    def _send(self, items: list[UploadItem], prefix: str, advance: Callable[[int], None]) -> None:
        """Upload ``items``: small ones from a pool of UPLOAD_THREADS, meanwhile big ones in parts.  After
        a failure nothing more starts, and the error is raised once what was in flight has ended."""
        failed = threading.Event()
        # after botocore's own handler, which adds the header; once per client
        self.s3.meta.events.register_last("before-call.s3", _put_without_waiting, unique_id="amc-put-without-waiting")
        whole, in_parts = [], []
        for item in items:
            one_put = item.seekable and item.size < self.config.multipart_threshold
            (whole if one_put else in_parts).append(item)
        with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="amc-upload") as pool:
            futures = [pool.submit(self._put, item, prefix, advance, failed) for item in whole]
            try:
                if in_parts:
                    self._send_in_parts(in_parts, prefix, advance, failed)
                for future in futures:
                    future.result()
            except BaseException:
                failed.set()
                pool.shutdown(cancel_futures=True)
                raise

    def _put(self, item: UploadItem, prefix: str, advance: Callable[[int], None], failed: threading.Event) -> None:
        """One small file in one PutObject (botocore retries it, seeking the body back)."""
        if failed.is_set():
            return
        try:
            with item.open() as stream:
                body = stream.read() if item.size <= IN_MEMORY else stream
                self.s3.put_object(Bucket=self.bucket, Key=prefix + item.relative_key, Body=body)
        except BaseException:
            failed.set()
            raise
        advance(item.size)

    def _send_in_parts(self, items: list[UploadItem], prefix: str, advance: Callable[[int], None],
                       failed: threading.Event) -> None:
        """Big files and streamed zip members through s3transfer, at most UPLOAD_WINDOW open at once."""
        slots = threading.Semaphore(UPLOAD_WINDOW)
        with create_transfer_manager(self.s3, self.config) as manager:
            futures = []
            for item in items:
                slots.acquire()
                if failed.is_set():
                    break
                # a file on disk is opened by the thread that sends it, not by this one
                stream = None
                if item.path is None:
                    try:
                        stream = item.open()
                    except BaseException:
                        slots.release()
                        raise
                source = str(item.path) if stream is None else stream
                futures.append(manager.upload(source, self.bucket, prefix + item.relative_key,
                                              subscribers=[_Progress(advance),
                                                           _Slot(item.size, stream, slots, failed)]))
            for future in futures:
                future.result()

    def delete(self, name: str) -> None:
        prefix = self.dataset_prefix(name)
        keys = [obj["Key"] for obj in self._objects(prefix)]
        if not keys:
            raise LookupError(f"No stored dataset named '{name}'")
        manifest = [k for k in keys if k.endswith(MANIFEST)]
        self._delete_keys(manifest)  # first: it stops looking complete at once
        self._delete_keys([k for k in keys if k not in manifest])

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start:start + 1000]]
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})


def folder_items(folder: Path) -> list[UploadItem]:
    return [UploadItem(path.relative_to(folder).as_posix(), path.stat().st_size,
                       lambda path=path: open(path, "rb"), path) for path in sorted(iter_files(folder))]


def zip_items(archive) -> list[UploadItem]:
    """Members of an open :class:`amc_widgets.core.archive.SafeZip`, unpacked when uploaded: small
    ones inflated into memory (a deflate stream cannot seek back for checksums and retries), big
    ones streamed."""
    def opener(member: str, size: int) -> Callable[[], BinaryIO]:
        if size <= IN_MEMORY:
            return lambda: io.BytesIO(archive.read_bytes(member))
        return lambda: archive.open(member)

    return [UploadItem(member, archive.size(member), opener(member, archive.size(member)),
                       seekable=archive.size(member) <= IN_MEMORY)
            for member in archive.members]
