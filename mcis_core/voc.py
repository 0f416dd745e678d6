"""PASCAL VOC 2012 conventions and the dataset layout every later stage reads.

The layout (built by `build_layout` from an extracted VOC tree and a folder of
augmented masks) is the one the WSSS literature uses:

    JPEGImages/<name>.jpg
    SegmentationClass/<name>.png       fine masks of VOC train + val
    SegmentationClassAug/<name>.png    one mask per train_aug and val image
    ImageSets/Segmentation/{train,val,train_aug}.txt
    cls_labels.txt                     "<name> <class id> ..." per train_aug/val image

train_aug = (augmented-mask images + VOC train) - VOC val: 10582 names on real VOC.
Class ids are 0..19 (aeroplane..tvmonitor); in masks class k is k + 1, background
0 and 255 "ignore".
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from mcis_core.io import read_gray, read_names, write_names

CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
NUM_CLASSES = len(CLASSES)
BACKGROUND = 0
IGNORE_INDEX = 255

JPEG_DIR = "JPEGImages"
FINE_MASK_DIR = "SegmentationClass"
AUG_MASK_DIR = "SegmentationClassAug"
LIST_DIR = "ImageSets/Segmentation"
LABELS_FILE = "cls_labels.txt"
TRAIN, VAL, TRAIN_AUG = "train", "val", "train_aug"


class DatasetError(RuntimeError):
    """The extracted dataset is missing files or is laid out unexpectedly."""


def voc_palette() -> list[int]:
    """The standard VOC colour map: 256 RGB triples flattened (bit-interleaved label ids)."""
    palette = []
    for label in range(256):
        rgb = [0, 0, 0]
        value = label
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << (7 - bit)
            value >>= 3
        palette.extend(rgb)
    return palette


_PALETTE = voc_palette()


def save_mask(path: str | Path, mask: np.ndarray) -> None:
    """Save an (H, W) label map as a VOC palette PNG."""
    img = Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="P")
    img.putpalette(_PALETTE)
    img.save(path, format="PNG")


def mask_classes(mask: np.ndarray) -> list[int]:
    """Sorted class ids (0..19) present in a label map, ignoring background and 255."""
    values = np.unique(mask)
    return [int(v) - 1 for v in values if 1 <= v <= NUM_CLASSES]


def read_class_labels(path: str | Path) -> dict[str, list[int]]:
    """Read cls_labels.txt into {name: [class ids]}."""
    labels = {}
    for line in Path(path).read_text().splitlines():
        name, *ids = line.split()
        labels[name] = [int(i) for i in ids]
    return labels


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


def build_layout(voc_root: Path, aug_mask_dir: Path, out: Path) -> dict[str, int]:
    """Move an extracted VOC tree and augmented masks into the layout of this module.

    `voc_root` holds JPEGImages, SegmentationClass and ImageSets/Segmentation;
    `aug_mask_dir` holds <name>.png masks. Files are moved, not copied, so both
    must be on the filesystem of `out` (a fresh temporary folder). Returns counts.
    """
    lists = voc_root / LIST_DIR
    train, val = read_names(lists / "train.txt"), read_names(lists / "val.txt")
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

    write_names(out / LIST_DIR / "train.txt", train)
    write_names(out / LIST_DIR / "val.txt", val)
    write_names(out / LIST_DIR / "train_aug.txt", train_aug)
    _write_class_labels(out, train_aug + val)
    return {"train": len(train), "val": len(val), "train_aug": len(train_aug)}


def _require_files(folder: Path, names: Sequence[str], suffix: str, what: str) -> None:
    missing = [n for n in names if not (folder / f"{n}{suffix}").is_file()]
    if missing:
        shown = ", ".join(str(folder / f"{n}{suffix}") for n in missing[:5])
        raise DatasetError(
            f"{len(missing)} {what}(s) named in the image lists are missing, e.g. {shown}"
        )


def _write_class_labels(out: Path, names: Sequence[str]) -> None:
    lines = []
    for name in tqdm(names, desc="labels", unit="img"):
        classes = mask_classes(read_gray(out / AUG_MASK_DIR / f"{name}.png"))
        lines.append(" ".join([name, *map(str, classes)]))
    (out / LABELS_FILE).write_text("".join(f"{line}\n" for line in lines))


def dataset_stats(root: Path) -> dict[str, float | int]:
    """Image counts per list and label statistics of train_aug, for metrics/dataset.json."""
    labels = read_class_labels(root / LABELS_FILE)
    train_aug = read_names(root / LIST_DIR / "train_aug.txt")
    per_image = [len(labels[n]) for n in train_aug]
    stats: dict[str, float | int] = {
        f"{split}_images": len(read_names(root / LIST_DIR / f"{split}.txt"))
        for split in (TRAIN, VAL, TRAIN_AUG)
    }
    stats["train_aug_classes_per_image"] = round(float(np.mean(per_image)), 4) if per_image else 0.0
    return stats
