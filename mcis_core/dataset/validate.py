"""The dataset checked once, where it enters the pipeline (the `download` stage's output).

Every listed image decodes; every mask decodes, has its image's size and holds only
background, the dataset's class labels and 255; every image-level label is a class id;
every listed name exists. All problems are collected and reported together, one line per
file, so that a broken dataset stops the pipeline before any later stage reads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mcis_core.common.errors import DatasetError
from mcis_core.common.io import opened_image, read_gray
from mcis_core.common.layout import (
    IGNORE_INDEX,
    LABELS_FILE,
    TRAIN,
    TRAIN_AUG,
    VAL,
    aug_mask_path,
    fine_mask_path,
    image_path,
    invalid_class_ids,
    read_classes,
    read_split,
)

SHOWN_PROBLEMS = 20  # the message lists this many problems, then counts the rest


def validate_layout(root: Path) -> None:
    """Raise DatasetError listing every problem of the dataset at `root`, if any."""
    problems = list(_problems(root))
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:SHOWN_PROBLEMS])
        more = len(problems) - SHOWN_PROBLEMS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise DatasetError(f"{root}: {len(problems)} problem(s) in the dataset:\n{shown}{tail}")


def _problems(root: Path) -> Iterator[str]:
    num_classes = len(read_classes(root))
    train, val, train_aug = (read_split(root, s) for s in (TRAIN, VAL, TRAIN_AUG))
    yield from _label_problems(root, set(train_aug) | set(val), num_classes)
    sizes = {}
    for name in tqdm(sorted(set(train_aug) | set(val)), desc="check images", unit="img"):
        try:
            with opened_image(image_path(root, name)) as img:
                sizes[name] = (img.height, img.width)
        except DatasetError as err:
            yield str(err)
    masks = [fine_mask_path(root, n) for n in train + val]
    masks += [aug_mask_path(root, n) for n in sorted(set(train_aug) | set(val))]
    for path in tqdm(masks, desc="check masks", unit="mask"):
        yield from _mask_problems(path, sizes.get(path.stem), num_classes)


def _mask_problems(path: Path, size: tuple[int, int] | None, num_classes: int) -> Iterator[str]:
    try:
        mask = read_gray(path)
    except DatasetError as err:
        yield str(err)
        return
    if size is not None and mask.shape != size:
        yield f"{path}: mask is {mask.shape[0]}x{mask.shape[1]}, its image {size[0]}x{size[1]}"
    values = np.unique(mask)
    bad = [int(v) for v in values if v > num_classes and v != IGNORE_INDEX]
    if bad:
        yield f"{path}: labels {bad} are neither 0..{num_classes} nor {IGNORE_INDEX}"


def _label_problems(root: Path, names: set[str], num_classes: int) -> Iterator[str]:
    path = root / LABELS_FILE
    listed = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        name, *ids = line.split()
        listed.add(name)
        wrong = invalid_class_ids(ids, num_classes)
        if wrong:
            yield f"{path}:{number}: class ids {wrong} of {name} are not in 0..{num_classes - 1}"
    for name in sorted(names - listed):
        yield f"{path}: no image-level labels for {name}"
