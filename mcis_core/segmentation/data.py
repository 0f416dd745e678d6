"""Training data of the DeepLab-LargeFOV segmentation network (docs/method.md §6.2; the
augmentation of Chen et al., ICLR 2015, as MCIS (Sun et al., ECCV 2020) trained it).

Each item is an image and its label map (pseudo labels or ground truth) scaled by a random
factor, mirrored at random, and cut to a square crop at a random position; where the scaled
image is smaller than the crop, the image is padded with the ImageNet mean and the label
with "ignore". Every random choice of item i in epoch e comes from a generator seeded with
(seed, e, i) (`training.batches.EpochDataset`), so the data do not depend on the process,
worker or batch that loads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from mcis_core.common.errors import DatasetError
from mcis_core.common.io import read_gray, read_names, read_rgb
from mcis_core.common.layout import IGNORE_INDEX, image_path
from mcis_core.common.paths import label_path, skipped_list_path
from mcis_core.models.inputs import imagenet_normalize
from mcis_core.training.batches import EpochDataset

MIRROR_PROB = 0.5


def training_names(label_dir: Path, names: Sequence[str]) -> list[str]:
    """The images of `names` to train on: all but those the labelling stage skipped on purpose
    (listed in label_dir/skipped.txt); any other missing label map is an error."""
    skipped_file = skipped_list_path(label_dir)
    skipped = set(read_names(skipped_file)) if skipped_file.is_file() else set()
    kept = [n for n in names if n not in skipped]
    missing = [n for n in kept if not label_path(label_dir, n).is_file()]
    if missing:
        raise DatasetError(
            f"{label_path(label_dir, missing[0])}: label map missing ({len(missing)} in all), "
            f"and {skipped_file} does not list it as skipped"
        )
    return kept


def require_labelled_pixels(label_dir: Path, names: Sequence[str]) -> None:
    """Raise DatasetError unless some label map has a pixel that is not ignored."""
    for name in names:
        if (read_gray(label_path(label_dir, name)) != IGNORE_INDEX).any():
            return
    raise DatasetError(
        f"{label_dir}: every pixel of all {len(names)} label maps is ignored (255): "
        "nothing to train on"
    )


def rescale(image: np.ndarray, label: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) image (bilinear) and (H, W) label (nearest) resized by `scale`."""
    height, width = label.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # PIL wants (W, H)
    scaled_image = Image.fromarray(image).resize(size, Image.Resampling.BILINEAR)
    scaled_label = Image.fromarray(label).resize(size, Image.Resampling.NEAREST)
    return np.array(scaled_image), np.array(scaled_label)  # writable copies, for torch


def pad_to(
    image: torch.Tensor, label: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a normalised (3, h, w) image with 0 (the mean) and an (h, w) label with ignore,
    at the bottom and right, to at least size x size."""
    bottom, right = max(0, size - label.shape[0]), max(0, size - label.shape[1])
    padded_image = F.pad(image, (0, right, 0, bottom), value=0.0)
    padded_label = F.pad(label, (0, right, 0, bottom), value=IGNORE_INDEX)
    return padded_image, padded_label


class SegmentationTrainSet(EpochDataset):
    """Item i of the current epoch: image i and its labels, randomly scaled, mirrored, cropped."""

    def __init__(
        self,
        voc_dir: Path,
        names: Sequence[str],
        label_dir: Path,
        crop_size: int,
        scales: Sequence[float],
        *,
        seed: int,
    ) -> None:
        super().__init__(names, seed)
        self.voc_dir, self.label_dir = Path(voc_dir), Path(label_dir)
        self.crop_size, self.scales = crop_size, tuple(scales)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image `index` as (H, W, 3) uint8 and its label map as (H, W) uint8."""
        name = self.names[index]
        image = read_rgb(image_path(self.voc_dir, name))
        label = read_gray(label_path(self.label_dir, name))
        if image.shape[:2] != label.shape:
            raise DatasetError(
                f"{label_path(self.label_dir, name)}: label map {label.shape} differs from "
                f"its image {image.shape[:2]}"
            )
        return image, label

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.rng(index)
        image, label = rescale(*self.load(index), float(rng.choice(self.scales)))
        image_t = imagenet_normalize(TF.to_tensor(image))  # (3, h, w)
        label_t = torch.from_numpy(label.astype(np.int64))  # (h, w)
        if rng.random() < MIRROR_PROB:
            image_t, label_t = image_t.flip(-1), label_t.flip(-1)
        image_t, label_t = pad_to(image_t, label_t, self.crop_size)
        size = self.crop_size
        top = int(rng.integers(label_t.shape[0] - size + 1))
        left = int(rng.integers(label_t.shape[1] - size + 1))
        return {
            "image": image_t[:, top : top + size, left : left + size].contiguous(),
            "label": label_t[top : top + size, left : left + size].contiguous(),
        }
