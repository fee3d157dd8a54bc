"""The automatic train / val split: seeded, stratified, and never strips a class from train."""

from collections import Counter

import pytest

from amc_widgets.core.dataset_split import SplitSettings, SplitSettingsError, split_train_val


def _images(common: int = 90, rare: int = 3) -> dict[str, set[int]]:
    """Mostly class 0 and 1, ``rare`` images of class 2, one image of class 3, a few backgrounds."""
    images = {f"img{i:03d}.jpg": {i % 2} for i in range(common)}
    images.update({f"rare{i}.jpg": {2} for i in range(rare)})
    images["only.jpg"] = {3}
    images.update({f"bg{i}.jpg": set() for i in range(6)})
    return images


def test_same_seed_same_split_other_seed_other_split():
    images = _images()
    first = split_train_val(images, SplitSettings(seed=3))
    assert split_train_val(dict(reversed(images.items())), SplitSettings(seed=3)) == first
    assert split_train_val(images, SplitSettings(seed=4)) != first


@pytest.mark.parametrize("seed", range(20))
def test_every_class_with_two_images_is_in_val_and_train(seed):
    images = _images(rare=2)
    train, val = split_train_val(images, SplitSettings(val_fraction=0.2, seed=seed))
    assert sorted(train + val) == sorted(images) and not set(train) & set(val)
    assert len(val) == round(0.2 * len(images))
    in_val = Counter(c for name in val for c in images[name])
    in_train = Counter(c for name in train for c in images[name])
    assert in_val[2] == 1 and in_train[2] == 1, "the rare class is in both"
    assert in_val[3] == 0 and in_train[3] == 1, "a class with one image stays in train"
    assert in_val[0] == pytest.approx(0.2 * 45, abs=1) and in_val[1] == pytest.approx(0.2 * 45, abs=1)


def test_rare_classes_get_val_images_even_when_the_val_share_is_tiny():
    images = {f"c{cls}_{i}.jpg": {cls} for cls in range(6) for i in range(2)}
    images.update({f"common{i}.jpg": {0} for i in range(200)})
    _train, val = split_train_val(images, SplitSettings(val_fraction=0.01))
    assert {c for name in val for c in images[name]} == set(range(6))


def test_bad_settings_are_refused_in_words():
    with pytest.raises(SplitSettingsError, match="between 0 and 1"):
        SplitSettings(val_fraction=1.5)
    with pytest.raises(SplitSettingsError, match="cannot be split"):
        split_train_val({"a.jpg": {0}}, SplitSettings())
