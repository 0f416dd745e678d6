"""Image-level training data of the co-attention classifier: pairs, views, jitter
(docs/method.md §3.5).

Every random choice of item i in epoch e comes from a generator seeded with (seed, e, i)
(`training.batches.EpochDataset`), so a sample does not depend on the process, worker or
batch that loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from mcis_core.common.layout import image_path
from mcis_core.models.inputs import (
    anchor_views,
    imagenet_normalize,
    open_rgb,
    square,
    square_image,
)
from mcis_core.training.batches import EpochDataset

MIRROR_PROB = 0.5  # warm-up images are mirrored with this probability


def label_vector(classes: Sequence[int], num_classes: int) -> torch.Tensor:
    """Class ids -> (K,) float 0/1 vector."""
    y = torch.zeros(num_classes)
    y[list(classes)] = 1.0
    return y


JITTER_STEPS = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)


def colour_jitter(
    image: Image.Image, strength: Sequence[float], rng: np.random.Generator
) -> Image.Image:
    """Brightness, contrast, saturation and hue jitter with factors drawn from `rng`, applied
    in an order drawn per image, as torchvision's ColorJitter does in the original: on the
    resized 8-bit image, before it becomes a tensor (each step rounds to 8 bits)."""
    brightness, contrast, saturation, hue = strength
    factors = (
        rng.uniform(1 - brightness, 1 + brightness),
        rng.uniform(1 - contrast, 1 + contrast),
        rng.uniform(1 - saturation, 1 + saturation),
        rng.uniform(-hue, hue),
    )
    for step in rng.permutation(len(JITTER_STEPS)):
        image = JITTER_STEPS[step](image, factors[step])
    return image


def jittered(
    image: Image.Image, strength: Sequence[float], rng: np.random.Generator
) -> torch.Tensor:
    """(3, H, W) tensor of the colour-jittered 8-bit `image`, in [0, 1] (not normalised)."""
    return TF.to_tensor(colour_jitter(image, strength, rng))


class LabelledImages(EpochDataset):
    """Named training images with their class ids, read at the network's input size."""

    def __init__(
        self,
        root: Path,
        names: Sequence[str],
        labels: dict[str, list[int]],
        num_classes: int,
        input_size: int,
        seed: int,
    ) -> None:
        super().__init__(names, seed)
        self.root, self.labels = root, [labels[n] for n in self.names]
        self.num_classes, self.input_size = num_classes, input_size

    def original(self, index: int) -> Image.Image:
        """Image `index` at its own resolution."""
        return open_rgb(image_path(self.root, self.names[index]))

    def image(self, index: int) -> torch.Tensor:
        """(3, S, S) image in [0, 1], not yet normalised."""
        return square(self.original(index), self.input_size)

    def target(self, index: int) -> torch.Tensor:
        return label_vector(self.labels[index], self.num_classes)


class PairDataset(LabelledImages):
    """Item i of the current epoch: anchor i, a partner sharing one of its classes, views."""

    def __init__(
        self,
        root: Path,
        names: Sequence[str],
        labels: dict[str, list[int]],
        num_classes: int,
        input_size: int,
        seed: int,
        *,
        view_scales: Sequence[float],
        jitter: Sequence[float],
    ) -> None:
        super().__init__(root, names, labels, num_classes, input_size, seed)
        self.view_scales, self.jitter = tuple(view_scales), jitter
        self.with_class = [
            np.array([i for i, ls in enumerate(self.labels) if c in ls])
            for c in range(self.num_classes)
        ]

    def partner_of(self, index: int, rng: np.random.Generator) -> int:
        """A random image having a random class of image `index`: any such image, the anchor
        itself included, as the original draws it."""
        cls = self.labels[index][int(rng.integers(len(self.labels[index])))]
        return int(rng.choice(self.with_class[cls]))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.rng(index)
        partner = self.partner_of(index, rng)
        original, side = self.original(index), self.input_size
        resized = square_image(original, side)
        partner_resized = square_image(self.original(partner), side)
        item = {
            "anchor": imagenet_normalize(jittered(resized, self.jitter, rng)),
            "partner": imagenet_normalize(jittered(partner_resized, self.jitter, rng)),
            "y_a": self.target(index),
            "y_b": self.target(partner),
        }
        for i, view in enumerate(anchor_views(original, resized, self.view_scales)):
            item[f"view{i}"] = imagenet_normalize(view)
        return item


class WarmupDataset(LabelledImages):
    """Item i of the current epoch: image i colour-jittered and mirrored at random, its labels."""

    def __init__(
        self,
        root: Path,
        names: Sequence[str],
        labels: dict[str, list[int]],
        num_classes: int,
        input_size: int,
        seed: int,
        *,
        jitter: Sequence[float],
    ) -> None:
        super().__init__(root, names, labels, num_classes, input_size, seed)
        self.jitter = jitter

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.rng(index)
        image = jittered(square_image(self.original(index), self.input_size), self.jitter, rng)
        if rng.random() < MIRROR_PROB:
            image = TF.hflip(image)
        return {"anchor": imagenet_normalize(image), "y_a": self.target(index)}


class ValidationImages(LabelledImages):
    """Plain (image, label vector) items for validation: no random choice."""

    def __init__(
        self,
        root: Path,
        names: Sequence[str],
        labels: dict[str, list[int]],
        num_classes: int,
        input_size: int,
    ) -> None:
        super().__init__(root, names, labels, num_classes, input_size, seed=0)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return imagenet_normalize(self.image(index)), self.target(index)
