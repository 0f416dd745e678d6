"""Training data of the DeepLab-LargeFOV segmentation network (MCIS_SPEC section 5; the
augmentation of Chen et al., ICLR 2015, as MCIS (Sun et al., ECCV 2020) trained it).

Each item is an image and its label map (pseudo labels or ground truth) scaled by a random
factor, mirrored at random, and cut to a square crop at a random position; where the scaled
image is smaller than the crop, the image is padded with the ImageNet mean and the label
with "ignore". As in `classification_data`, every random choice of item i in epoch e comes
from a generator seeded with (seed, e, i), so the data do not depend on the process, worker
or batch that loads them (batching: `classification_data.epoch_batches` and `shard`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset

from mcis_core.classification_data import normalize
from mcis_core.io import read_gray, read_rgb
from mcis_core.voc import IGNORE_INDEX, JPEG_DIR

SCALE_RANGE = (0.7, 1.3)
MIRROR_PROB = 0.5


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


class SegmentationTrainSet(Dataset):
    """Item i of the current epoch: image i and its labels, randomly scaled, mirrored, cropped."""

    def __init__(
        self,
        voc_dir: Path,
        names: Sequence[str],
        label_dir: Path,
        crop_size: int,
        scale_range: tuple[float, float] = SCALE_RANGE,
        *,
        seed: int,
    ) -> None:
        self.voc_dir, self.names, self.label_dir = Path(voc_dir), list(names), Path(label_dir)
        self.crop_size, self.scale_range, self.seed, self.epoch = crop_size, scale_range, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image `index` as (H, W, 3) uint8 and its label map as (H, W) uint8."""
        name = self.names[index]
        image = read_rgb(self.voc_dir / JPEG_DIR / f"{name}.jpg")
        label = read_gray(self.label_dir / f"{name}.png")
        if image.shape[:2] != label.shape:
            raise ValueError(f"{name}: image {image.shape[:2]} and label {label.shape} differ")
        return image, label

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, label = rescale(*self.load(index), rng.uniform(*self.scale_range))
        image_t = normalize(TF.to_tensor(image))  # (3, h, w)
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
