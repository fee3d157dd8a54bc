"""Weights to start from: the choices, the release-asset download (against a local HTTP server
serving a stand-in asset saved by ultralytics) and the check of a .pt before use."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from amc_widgets.core.weights import (
    AssetPin,
    WeightsCache,
    WeightsChoice,
    WeightsError,
    WeightsUnavailableError,
    default_choice,
    describe_source,
    sha256_file,
    stored_weights_name,
)
from amc_widgets.core.weights_check import check_weights
from tests.conftest import ASSET, free_port


def _pin(path: Path) -> dict[str, AssetPin]:
    return {ASSET: AssetPin(path.stat().st_size, sha256_file(path))}


def test_choices_parse():
    assert WeightsChoice.parse("coco") == WeightsChoice("coco")
    assert WeightsChoice.parse(" Scratch ") == WeightsChoice("scratch")
    assert WeightsChoice.parse("job:amc-yolov5n-demo-1") == WeightsChoice("job", "amc-yolov5n-demo-1")
    assert WeightsChoice.parse("~/models/best.pt") == WeightsChoice("file", "~/models/best.pt")
    assert str(WeightsChoice.parse("job:abc")) == "job:abc"
    with pytest.raises(WeightsError, match="not a job name"):
        WeightsChoice.parse("job:not_a name")
    with pytest.raises(WeightsError, match="coco, scratch, job:NAME or the path of a .pt"):
        WeightsChoice.parse("yolov5n.onnx")
    assert stored_weights_name(Path("/x/My best (v2).pt"), "ab" * 32) == "My-best-v2-abababababab.pt"


def test_a_jobs_starting_point_in_words():
    digest = "0123456789ab" + "f" * 52
    assert describe_source({}) == "from scratch" == describe_source({"weights": "", "weights_source": "scratch"})
    assert describe_source({"weights_source": f"coco:yolov5nu.pt sha256:{digest}"}) == (
        "COCO-pretrained yolov5nu.pt (sha256 0123456789ab)")
    assert describe_source({"weights_source": f"file:mine.pt sha256:{digest}"}) == "file mine.pt (sha256 0123456789ab)"
    assert describe_source({"weights": "start.pt"}) == "file start.pt"  # given by hand with --set


def test_download_once_with_progress_checked_and_cached(asset_server, stand_in_asset, tmp_path):
    url, requests = asset_server
    cache = WeightsCache(tmp_path / "weights", base_url=url, pins=_pin(stand_in_asset))
    assert default_choice(cache, "yolov5n") == WeightsChoice("scratch")  # nothing on this machine yet
    seen = []
    path = cache.fetch(ASSET, progress=lambda done, total: seen.append((done, total)))
    assert path == tmp_path / "weights" / ASSET and sha256_file(path) == sha256_file(stand_in_asset)
    assert seen[-1] == (stand_in_asset.stat().st_size,) * 2 and len(seen) >= 2
    assert cache.fetch(ASSET) == path and requests == [f"/{ASSET}"]  # the second time from the cache
    assert default_choice(cache, "yolov5n") == WeightsChoice("coco")
    assert sorted(p.name for p in path.parent.iterdir()) == [ASSET]


def test_corrupt_download_is_refused_and_nothing_cached(asset_server, stand_in_asset, tmp_path):
    url, _ = asset_server
    pins = {ASSET: AssetPin(stand_in_asset.stat().st_size, "0" * 64)}
    cache = WeightsCache(tmp_path / "weights", base_url=url, pins=pins)
    with pytest.raises(WeightsError, match=r"download of yolov5nu.pt .* is corrupt.*Nothing was kept"):
        cache.fetch(ASSET)
    assert list((tmp_path / "weights").iterdir()) == []
    assert cache.cached(ASSET) is None


def test_unpinned_asset_records_its_hash_and_a_changed_file_is_refused(asset_server, stand_in_asset, tmp_path):
    url, _ = asset_server
    cache = WeightsCache(tmp_path / "weights", base_url=url, pins={ASSET: None})
    path = cache.fetch(ASSET)
    assert (tmp_path / "weights" / f"{ASSET}.sha256").read_text().split()[0] == sha256_file(stand_in_asset)
    path.write_bytes(b"tampered")
    with pytest.raises(WeightsError, match="is not the release asset"):
        cache.fetch(ASSET)


def test_no_network_says_which_file_to_put_where(tmp_path):
    cache = WeightsCache(tmp_path / "weights", base_url=f"http://127.0.0.1:{free_port()}/v8", pins={ASSET: None})
    with pytest.raises(WeightsUnavailableError) as caught:
        cache.fetch(ASSET)
    message = str(caught.value)
    assert f"Could not download {ASSET} from http://127.0.0.1:" in message
    assert f"put it at {tmp_path / 'weights' / ASSET}" in message and "--weights scratch" in message
    assert not any((tmp_path / "weights").iterdir())
    shutil.copyfile(__file__, tmp_path / "weights" / ASSET)  # put by hand: used from then on
    assert cache.fetch(ASSET) == tmp_path / "weights" / ASSET
    with pytest.raises(WeightsError, match="not a known release asset"):
        cache.fetch("yolov9u.pt")


def test_check_says_what_the_classes_mean(stand_in_asset):
    coco = check_weights(stand_in_asset, "yolov5n", ["good", "insufficient", "bridge"])
    assert coco.class_names[:2] == ["0", "1"] and len(coco.class_names) == 80
    assert coco.architecture == "yolov5n.yaml" and coco.transferred / coco.total > 0.8
    assert "80 classes" in coco.note and "the dataset has 3" in coco.note and "new detection head" in coco.note
    same = check_weights(stand_in_asset, "yolov5n", [str(i) for i in range(80)])
    assert same.transferred == same.total and "keeps their head" in same.note
    renamed = check_weights(stand_in_asset, "yolov5n", [f"c{i}" for i in range(80)])
    assert "other names" in renamed.note
    assert coco.sha256 == sha256_file(stand_in_asset)


def test_check_refuses_what_cannot_be_used(stand_in_asset, tmp_path):
    with pytest.raises(WeightsError, match=r"holds a yolov5n.yaml model, which does not fit yolov5s"):
        check_weights(stand_in_asset, "yolov5s", ["a"])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pt is not an ultralytics checkpoint that loads safely"):
        check_weights(junk, "yolov5n", ["a"])
    with pytest.raises(WeightsError, match="does not exist"):
        check_weights(tmp_path / "missing.pt", "yolov5n", ["a"])


def test_check_refuses_a_model_of_another_task(tmp_path):
    from ultralytics import YOLO

    classifier = tmp_path / "cls.pt"
    YOLO("yolov8n-cls.yaml").save(str(classifier))
    with pytest.raises(WeightsError, match=r"cls.pt is not a detection model \(classify\)"):
        check_weights(classifier, "yolov5n", ["a"])


def test_checking_weights_leaves_pillow_reporting_bad_images_as_bad_images(tmp_path):
    """ultralytics, once imported, makes Pillow try pi-heif for an unknown image (ModuleNotFoundError
    offline): the dashboard's process checks weights and then datasets, so Pillow's own open comes back."""
    from PIL import Image, UnidentifiedImageError

    with pytest.raises(WeightsError):
        check_weights(tmp_path / "missing.pt", "yolov5n", ["a"])  # imports ultralytics
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(UnidentifiedImageError):
        Image.open(junk)
