"""Image-level training data of the co-attention classifier: pairs, views, jitter.

Every random choice of item i in epoch e comes from a generator seeded with
(seed, e, i), so a sample does not depend on the process, worker or batch that
loads it: DDP with any number of processes sees the same data as one process,
and a resumed run the same as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset

from mcis_core.coattention import NUM_CLASSES
from mcis_core.voc import JPEG_DIR

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def label_vector(classes: Sequence[int]) -> torch.Tensor:
    """Class ids -> (K,) float 0/1 vector."""
    y = torch.zeros(NUM_CLASSES)
    y[list(classes)] = 1.0
    return y


def load_image(path: Path) -> torch.Tensor:
    """An image at its own size as a (3, H, W) float tensor in [0, 1]."""
    with Image.open(path) as img:
        return TF.to_tensor(img.convert("RGB"))


def load_resized(path: Path, side: int) -> torch.Tensor:
    """An image as a (3, side, side) float tensor in [0, 1], resized bilinearly."""
    with Image.open(path) as img:
        img = img.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
        return TF.to_tensor(img)


def normalize(image: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalisation of a [0, 1] image."""
    return TF.normalize(image, IMAGENET_MEAN, IMAGENET_STD)


def colour_jitter(
    image: torch.Tensor, strength: Sequence[float], rng: np.random.Generator
) -> torch.Tensor:
    """Brightness, contrast, saturation and hue jitter with factors drawn from `rng`."""
    brightness, contrast, saturation, hue = strength
    image = TF.adjust_brightness(image, rng.uniform(1 - brightness, 1 + brightness))
    image = TF.adjust_contrast(image, rng.uniform(1 - contrast, 1 + contrast))
    image = TF.adjust_saturation(image, rng.uniform(1 - saturation, 1 + saturation))
    return TF.adjust_hue(image, rng.uniform(-hue, hue))


def anchor_views(image: torch.Tensor, scales: Sequence[float]) -> list[torch.Tensor]:
    """Partner views of an anchor: scale 1.0 is its mirror image, others are resizes."""
    side = image.shape[-1]
    views = []
    for scale in scales:
        if scale == 1.0:
            views.append(TF.hflip(image))
        else:
            size = max(8, round(side * scale))
            views.append(TF.resize(image, [size, size], antialias=True))
    return views


class PairDataset(Dataset):
    """Item i of the current epoch: anchor i, a partner sharing one of its classes, views."""

    def __init__(
        self,
        root: Path,
        names: Sequence[str],
        labels: dict[str, list[int]],
        input_size: int,
        view_scales: Sequence[float],
        jitter: Sequence[float],
        seed: int,
    ) -> None:
        self.root, self.names = root, list(names)
        self.labels = [labels[n] for n in self.names]
        self.input_size, self.view_scales, self.jitter = input_size, tuple(view_scales), jitter
        self.seed, self.epoch = seed, 0
        self.with_class = [
            np.array([i for i, ls in enumerate(self.labels) if c in ls]) for c in range(NUM_CLASSES)
        ]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.names)

    def partner_of(self, index: int, rng: np.random.Generator) -> int:
        """A random image sharing a random class of image `index` (itself only if alone)."""
        cls = self.labels[index][int(rng.integers(len(self.labels[index])))]
        others = self.with_class[cls][self.with_class[cls] != index]
        return int(rng.choice(others)) if len(others) else index

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        partner = self.partner_of(index, rng)
        anchor = load_resized(self.root / JPEG_DIR / f"{self.names[index]}.jpg", self.input_size)
        other = load_resized(self.root / JPEG_DIR / f"{self.names[partner]}.jpg", self.input_size)
        item = {
            "anchor": normalize(colour_jitter(anchor, self.jitter, rng)),
            "partner": normalize(colour_jitter(other, self.jitter, rng)),
            "y_a": label_vector(self.labels[index]),
            "y_b": label_vector(self.labels[partner]),
        }
        for i, view in enumerate(anchor_views(anchor, self.view_scales)):
            item[f"view{i}"] = normalize(view)
        return item


class WarmupDataset(Dataset):
    """Item i of the current epoch: image i colour-jittered and mirrored at random, its labels."""

    def __init__(
        self,
        root: Path,
        names: Sequence[str],
        labels: dict[str, list[int]],
        input_size: int,
        jitter: Sequence[float],
        seed: int,
    ) -> None:
        self.root, self.names, self.labels = root, list(names), labels
        self.input_size, self.jitter, self.seed, self.epoch = input_size, jitter, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        name = self.names[index]
        image = colour_jitter(
            load_resized(self.root / JPEG_DIR / f"{name}.jpg", self.input_size), self.jitter, rng
        )
        if rng.random() < 0.5:
            image = TF.hflip(image)
        return {"anchor": normalize(image), "y_a": label_vector(self.labels[name])}


class ImageLabelDataset(Dataset):
    """Plain (image, label vector) items for validation."""

    def __init__(
        self, root: Path, names: Sequence[str], labels: dict[str, list[int]], input_size: int
    ) -> None:
        self.root, self.names, self.labels, self.input_size = root, list(names), labels, input_size

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        name = self.names[index]
        image = load_resized(self.root / JPEG_DIR / f"{name}.jpg", self.input_size)
        return normalize(image), label_vector(self.labels[name])


def epoch_batches(num_items: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's shuffled full batches of item indices (the incomplete last one dropped)."""
    order = np.random.default_rng([seed, epoch, 2**31]).permutation(num_items)
    return [
        order[i : i + batch_size].tolist() for i in range(0, num_items - batch_size + 1, batch_size)
    ]


def shard(batch: Sequence[int], rank: int, world: int) -> list[int]:
    """This process's contiguous share of a global batch."""
    per = len(batch) // world
    return list(batch[rank * per : (rank + 1) * per])
