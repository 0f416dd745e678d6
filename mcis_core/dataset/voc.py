"""PASCAL VOC 2012: its class names, and the layout of `mcis_core.common.layout` built from
an extracted VOC tree and a folder of augmented masks.

train_aug = (augmented-mask images + VOC train) - VOC val: 10582 names on real VOC.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mcis_core.common.errors import DatasetError
from mcis_core.common.io import read_gray, write_names
from mcis_core.common.layout import (
    AUG_MASK_DIR,
    CLASSES_FILE,
    FINE_MASK_DIR,
    JPEG_DIR,
    LABELS_FILE,
    LIST_DIR,
    TRAIN,
    TRAIN_AUG,
    VAL,
    list_path,
    read_class_labels,
    read_split,
)

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip


def mask_classes(mask: np.ndarray, num_classes: int) -> list[int]:
    """Sorted class ids (0..num_classes-1) present in a label map, ignoring background and 255."""
    values = np.unique(mask)
    return [int(v) - 1 for v in values if 1 <= v <= num_classes]


def find_dir_containing(root: Path, required: Sequence[str], what: str) -> Path:
    """The shallowest folder under `root` that holds every entry of `required`."""
    for folder in sorted(
        (p for p in [root, *root.rglob("*")] if p.is_dir()), key=lambda p: len(p.parts)
    ):
        if all((folder / r).exists() for r in required):
            return folder
    raise DatasetError(f"{root}: no folder with {list(required)} found: is this a {what}?")


def train_aug_names(
    aug_names: Iterable[str], train: Iterable[str], val: Iterable[str]
) -> list[str]:
    """The literature's train_aug list: (aug ∪ train) − val, sorted."""
    return sorted((set(aug_names) | set(train)) - set(val))


def build_layout(
    voc_root: Path, aug_mask_dir: Path, out: Path, classes: Sequence[str] = VOC_CLASSES
) -> dict[str, int]:
    """Move an extracted VOC tree and augmented masks into the layout of `common.layout`.

    `voc_root` holds JPEGImages, SegmentationClass and ImageSets/Segmentation;
    `aug_mask_dir` holds <name>.png masks. Files are moved, not copied, so both
    must be on the filesystem of `out` (a fresh temporary folder). Returns counts.
    """
    train, val = read_split(voc_root, TRAIN), read_split(voc_root, VAL)
    aug = sorted(p.stem for p in aug_mask_dir.glob("*.png"))
    train_aug = train_aug_names(aug, train, val)

    _require_files(voc_root / JPEG_DIR, sorted(set(train_aug) | set(val)), ".jpg", "image")
    _require_files(voc_root / FINE_MASK_DIR, train + val, ".png", "mask")
    _require_files(aug_mask_dir, sorted(set(train_aug) - set(train)), ".png", "augmented mask")

    (out / LIST_DIR).mkdir(parents=True)
    for folder in (JPEG_DIR, FINE_MASK_DIR, AUG_MASK_DIR):
        (out / folder).mkdir()
    for name in tqdm(sorted(set(train_aug) | set(val)), desc="layout", unit="img"):
        os.replace(voc_root / JPEG_DIR / f"{name}.jpg", out / JPEG_DIR / f"{name}.jpg")
    for name in train + val:
        # fine masks take precedence over converted ones, as in SegmentationClassAug
        shutil.copyfile(
            voc_root / FINE_MASK_DIR / f"{name}.png", out / AUG_MASK_DIR / f"{name}.png"
        )
        os.replace(voc_root / FINE_MASK_DIR / f"{name}.png", out / FINE_MASK_DIR / f"{name}.png")
    for name in sorted(set(train_aug) - set(train)):
        os.replace(aug_mask_dir / f"{name}.png", out / AUG_MASK_DIR / f"{name}.png")

    for split, names in ((TRAIN, train), (VAL, val), (TRAIN_AUG, train_aug)):
        write_names(list_path(out, split), names)
    write_names(out / CLASSES_FILE, classes)
    _write_class_labels(out, train_aug + val, len(classes))
    return {"train": len(train), "val": len(val), "train_aug": len(train_aug)}


def _require_files(folder: Path, names: Sequence[str], suffix: str, what: str) -> None:
    missing = [n for n in names if not (folder / f"{n}{suffix}").is_file()]
    if missing:
        shown = ", ".join(str(folder / f"{n}{suffix}") for n in missing[:5])
        raise DatasetError(
            f"{len(missing)} {what}(s) named in the image lists are missing, e.g. {shown}"
        )


def _write_class_labels(out: Path, names: Sequence[str], num_classes: int) -> None:
    lines = []
    for name in tqdm(names, desc="labels", unit="img"):
        classes = mask_classes(read_gray(out / AUG_MASK_DIR / f"{name}.png"), num_classes)
        lines.append(" ".join([name, *map(str, classes)]))
    (out / LABELS_FILE).write_text("".join(f"{line}\n" for line in lines))


def dataset_stats(root: Path) -> dict[str, float | int]:
    """Image counts per list and label statistics of train_aug, for metrics/dataset.json."""
    labels = read_class_labels(root)
    train_aug = read_split(root, TRAIN_AUG)
    per_image = [len(labels[n]) for n in train_aug]
    stats: dict[str, float | int] = {
        f"{split}_images": len(read_split(root, split)) for split in (TRAIN, VAL, TRAIN_AUG)
    }
    stats["train_aug_classes_per_image"] = round(float(np.mean(per_image)), 4) if per_image else 0.0
    return stats
