"""Network inputs: images as float tensors, normalised with the ImageNet statistics that the
pretrained backbones expect, and the rescaled views of an anchor image (docs/method.md §3.5)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_image(path: Path) -> torch.Tensor:
    """An image at its own size as a (3, H, W) float tensor in [0, 1]."""
    with Image.open(path) as img:
        return TF.to_tensor(img.convert("RGB"))


def load_resized(path: Path, side: int) -> torch.Tensor:
    """An image as a (3, side, side) float tensor in [0, 1], resized bilinearly."""
    with Image.open(path) as img:
        img = img.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
        return TF.to_tensor(img)


def imagenet_normalize(image: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalisation of a [0, 1] image."""
    return TF.normalize(image, IMAGENET_MEAN, IMAGENET_STD)


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
