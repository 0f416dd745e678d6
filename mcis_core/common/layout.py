"""The dataset layout every stage after `download` reads, and its label conventions.

    JPEGImages/<name>.jpg
    SegmentationClass/<name>.png       fine masks of the train and val lists
    SegmentationClassAug/<name>.png    one mask per train_aug and val image
    ImageSets/Segmentation/{train,val,train_aug}.txt
    classes.txt                        the class names, one per line, in id order
    cls_labels.txt                     "<name> <class id> ..." per train_aug and val image

It is PASCAL VOC 2012's layout as the WSSS literature uses it (built by
`mcis_core.dataset`). Class ids are 0..C-1 in the order of classes.txt (VOC: aeroplane
.. tvmonitor, C = 20); in masks class k is k + 1, background 0 and 255 "ignore".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mcis_core.common.errors import DatasetError
from mcis_core.common.io import read_names

JPEG_DIR = "JPEGImages"
FINE_MASK_DIR = "SegmentationClass"
AUG_MASK_DIR = "SegmentationClassAug"
LIST_DIR = "ImageSets/Segmentation"
CLASSES_FILE = "classes.txt"
LABELS_FILE = "cls_labels.txt"
TRAIN, VAL, TRAIN_AUG = "train", "val", "train_aug"
BACKGROUND = 0
IGNORE_INDEX = 255


def image_path(root: Path, name: str) -> Path:
    return Path(root) / JPEG_DIR / f"{name}.jpg"


def fine_mask_path(root: Path, name: str) -> Path:
    return Path(root) / FINE_MASK_DIR / f"{name}.png"


def aug_mask_path(root: Path, name: str) -> Path:
    return Path(root) / AUG_MASK_DIR / f"{name}.png"


def list_path(root: Path, split: str) -> Path:
    return Path(root) / LIST_DIR / f"{split}.txt"


def read_split(root: Path, split: str) -> list[str]:
    """The image names of list `split` (train, val, train_aug, ...)."""
    path = list_path(root, split)
    if not path.is_file():
        raise DatasetError(f"{path}: no such image list")
    return read_names(path)


def read_classes(root: Path) -> tuple[str, ...]:
    """The dataset's class names in id order, from classes.txt."""
    path = Path(root) / CLASSES_FILE
    if not path.is_file():
        raise DatasetError(f"{path}: missing: the download stage writes the class names there")
    return tuple(read_names(path))


def invalid_class_ids(ids: list[str], num_classes: int) -> list[str]:
    """The entries of a cls_labels.txt line that are not class ids 0..num_classes - 1."""
    return [i for i in ids if not (i.isdigit() and int(i) < num_classes)]


def read_class_labels(root: Path) -> dict[str, list[int]]:
    """cls_labels.txt as {name: [class ids]}; an id that is not a class of classes.txt is an
    error naming the line."""
    path, num_classes = Path(root) / LABELS_FILE, len(read_classes(root))
    labels = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        name, *ids = line.split()
        if invalid_class_ids(ids, num_classes):
            raise DatasetError(
                f"{path}:{number}: class ids {ids} of {name} are not all in 0..{num_classes - 1}"
            )
        labels[name] = [int(i) for i in ids]
    return labels


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
