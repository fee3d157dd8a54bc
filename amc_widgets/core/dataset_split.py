"""A seeded, stratified train / val split for datasets exported without a validation split.

Every class found in at least two images gets validation images in proportion to its images (at
least one), and never loses its last training image; the rest of the validation share is drawn at
random.  The same images, classes, fraction and seed always give the same split.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from amc_widgets.core.dataset_check import DatasetError


class SplitSettingsError(DatasetError):
    """The split asked for cannot be made (a DatasetError: reports show it like any other problem)."""


@dataclass(frozen=True)
class SplitSettings:
    """How to split a dataset that has no validation split: the validation share and the seed."""

    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise SplitSettingsError(
                f"The validation share must be between 0 and 1 (got {self.val_fraction}); 0.2 keeps 20% for validation")

    def describe(self, train: int, val: int) -> str:
        """One line for reports: '80/20 automatic split (seed 0, stratified by class): 24 train, 6 val'."""
        val_pct = round(self.val_fraction * 100)
        return (f"{100 - val_pct}/{val_pct} automatic split (seed {self.seed}, stratified by class): "
                f"{train} train, {val} val images")


DEFAULT_SPLIT = SplitSettings()


def split_train_val(images: dict[str, set[int]], settings: SplitSettings) -> tuple[list[str], list[str]]:
    """(train, val) image names from ``images`` (name -> the class ids it contains), both sorted."""
    names = sorted(images)
    if len(names) < 2:
        raise SplitSettingsError(f"A dataset with {len(names)} image(s) cannot be split into train and val")
    rng = random.Random(settings.seed)
    target = min(len(names) - 1, max(1, round(settings.val_fraction * len(names))))
    per_class = Counter(cls for name in names for cls in images[name])
    in_train = Counter(per_class)
    val: set[str] = set()

    def take(name: str) -> bool:
        """Move ``name`` to val unless a class would lose its last training image."""
        if name in val or any(in_train[cls] <= 1 for cls in images[name]):
            return False
        val.add(name)
        in_train.subtract(images[name])
        return True

    for cls in sorted(per_class, key=lambda c: (per_class[c], c)):  # rarest first
        if per_class[cls] < 2:
            continue
        wanted = max(1, round(settings.val_fraction * per_class[cls]))
        candidates = [name for name in names if cls in images[name]]
        rng.shuffle(candidates)
        have = sum(1 for name in candidates if name in val)
        for name in candidates:
            if have >= wanted or (have and len(val) >= target):  # one each even past the target
                break
            have += take(name)
    rest = [name for name in names if name not in val]
    rng.shuffle(rest)
    for name in rest:
        if len(val) >= target:
            break
        take(name)
    return [name for name in names if name not in val], sorted(val)
