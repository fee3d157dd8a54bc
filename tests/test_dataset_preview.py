"""The preview gallery: a few images per class, rarest first, boxes drawn where the labels say."""

import io
from collections import Counter

import pytest
from PIL import Image, ImageColor

from amc_widgets.core.dataset_preview import COLOURS, DatasetPictures, ImageNotFoundError
from tests.conftest import zip_folder


def test_gallery_is_rarest_class_first_each_image_once(dataset_copy):
    # make "bridge" (class 2) the rarest: only one image keeps its bridges
    labels = sorted((dataset_copy / "train" / "labels").glob("*.txt")) + sorted(
        (dataset_copy / "val" / "labels").glob("*.txt"))
    kept = None
    for label in labels:
        lines = label.read_text().splitlines()
        if kept is None and any(line.startswith("2 ") for line in lines):
            kept = label.stem
            continue
        label.write_text("".join(f"{line}\n" for line in lines if not line.startswith("2 ")))
    with DatasetPictures(dataset_copy) as pictures:
        gallery = pictures.gallery(per_class=2)
    assert gallery[0] == ("bridge", gallery[0][1]) and gallery[0][1].name == f"{kept}.jpg"
    assert Counter(name for name, _ in gallery) == {"bridge": 1, "good": 2, "insufficient": 2}
    assert len({item.image for _, item in gallery}) == len(gallery)


def test_find_by_name_stem_or_path_and_render_draws_the_boxes(small_dataset, tmp_path):
    archive = tmp_path / "solder.zip"
    zip_folder(small_dataset, archive).close()
    with DatasetPictures(archive) as pictures:
        item = pictures.find("board_val_0002")
        assert pictures.find("board_val_0002.jpg") == item == pictures.find("val/images/board_val_0002.jpg")
        with pytest.raises(ImageNotFoundError, match="No image named 'nope.jpg'"):
            pictures.find("nope.jpg")
        picture = Image.open(io.BytesIO(pictures.render(item, max_side=256)))
    assert picture.size == (256, 256)
    cls, x, y, w, h = item.boxes[0]
    # the box's bottom edge, mid-way along: the class colour, as the label says
    edge = picture.getpixel((round(x * 256), round((y + h / 2) * 256) - 1))
    assert max(abs(a - b) for a, b in zip(edge, ImageColor.getrgb(COLOURS[cls]))) < 40
