"""The dataset upload path against a second, independent S3 server: s3rver (npm), on loopback."""

from __future__ import annotations

import random
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from amc_widgets.backends.aws_session import AwsCredentials
from amc_widgets.backends.s3_datasets import MANIFEST, S3DatasetStore, folder_items, zip_items
from amc_widgets.core.archive import open_safe_zip
from tests.conftest import free_port

S3RVER = Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "s3rver"
BUCKET = "amc-compat"


@pytest.fixture()
def s3rver(tmp_path):
    assert S3RVER.exists(), "s3rver is missing: `make test` installs it with npm ci"
    port = free_port()
    process = subprocess.Popen([str(S3RVER), "-d", str(tmp_path / "s3rver-data"), "--address", "127.0.0.1",
                                "--port", str(port), "--silent", "--configure-bucket", BUCKET],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    credentials = AwsCredentials(access_key_id="S3RVER", secret_access_key="S3RVER",
                                 s3_endpoint_url=f"http://127.0.0.1:{port}")
    s3 = credentials.client_factory()("s3")
    deadline = time.monotonic() + 30
    while True:
        try:
            s3.head_bucket(Bucket=BUCKET)
            break
        except Exception:  # noqa: BLE001 - not up yet, whatever the answer
            assert time.monotonic() < deadline and process.poll() is None, "s3rver did not start"
            time.sleep(0.2)
    yield s3
    process.terminate()
    process.wait(timeout=10)


def test_folder_and_zip_uploads_work_on_another_s3_server(s3rver, small_dataset, tmp_path):
    dataset = tmp_path / "big"
    shutil.copytree(small_dataset, dataset)
    (dataset / "notes.bin").write_bytes(bytes(range(256)) * (70 * 1024))  # 17.5 MB: a multipart upload
    store = S3DatasetStore(s3rver, BUCKET, "users/ana/custom-uploads")
    waits: dict[str, set[bool]] = {}  # operation -> whether its requests waited for "100 Continue"
    for operation in ("PutObject", "UploadPart"):
        s3rver.meta.events.register(f"before-send.s3.{operation}", lambda request, operation=operation, **_:
                                    waits.setdefault(operation, set()).add("Expect" in request.headers))
    progress: list[tuple[int, int]] = []
    info = store.upload("folder", folder_items(dataset), "big", overwrite=False,
                        progress=lambda done, total: progress.append((done, total)))
    total = sum(p.stat().st_size for p in dataset.rglob("*") if p.is_file())
    assert progress[-1] == (total, total)  # counted from many sending threads, none lost
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    assert waits["PutObject"] == {False}  # a small file's body goes with its headers: one round trip
    assert waits["UploadPart"] == {True}  # a big part waits until the server would take it
    listed = {d.name: d for d in store.list()}["folder"]
    assert listed.complete and listed.files == info.files
    body = s3rver.get_object(Bucket=BUCKET, Key="users/ana/custom-uploads/folder/notes.bin")["Body"].read()
    assert body == (dataset / "notes.bin").read_bytes()

    puts: list[str] = []
    s3rver.meta.events.register("before-parameter-build.s3.PutObject", lambda params, **_: puts.append(params["Key"]))
    s3rver.meta.events.register("before-parameter-build.s3.CreateMultipartUpload",
                                lambda params, **_: puts.append(params["Key"]))
    store.upload("folder", folder_items(dataset), "big", overwrite=True)
    assert puts == [f"users/ana/custom-uploads/folder/{MANIFEST}"]  # ETags match this server's too

    archive = tmp_path / "dataset.zip"
    streamed = random.Random(0).randbytes(3 * 1024 * 1024)  # too big to inflate into memory: streamed to S3
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in small_dataset.rglob("*"):
            if path.is_file():
                zf.write(path, path.relative_to(small_dataset).as_posix())
        zf.writestr("extras/scan.bin", streamed)
    with open_safe_zip(archive) as opened:
        store.upload("zipped", zip_items(opened), archive.name, overwrite=False)
    prefix = "users/ana/custom-uploads/zipped/"
    keys = {obj["Key"] for obj in s3rver.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]}
    assert prefix + "data.yaml" in keys
    assert len(keys) == sum(1 for p in small_dataset.rglob("*") if p.is_file()) + 2
    assert s3rver.get_object(Bucket=BUCKET, Key=prefix + "extras/scan.bin")["Body"].read() == streamed
