"""Network inputs: images as float tensors, normalised with the ImageNet statistics that the
pretrained backbones expect, and the rescaled views of an anchor image (docs/method.md §3.5)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from mcis_core.common.io import opened_image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_VIEW_SIDE = 8  # one feature cell at output stride 8


def load_image(path: Path) -> torch.Tensor:
    """An image at its own size as a (3, H, W) float tensor in [0, 1]."""
    return TF.to_tensor(open_rgb(path))


def open_rgb(path: Path) -> Image.Image:
    """An image file as an RGB PIL image, read into memory."""
    with opened_image(path) as img:
        return img.convert("RGB")


def square_image(image: Image.Image, side: int) -> Image.Image:
    """The image resized bilinearly to a side x side square (8 bits per channel)."""
    return image.resize((side, side), Image.Resampling.BILINEAR)


def square(image: Image.Image, side: int) -> torch.Tensor:
    """A (3, side, side) float tensor in [0, 1]: the image resized bilinearly to a square."""
    return TF.to_tensor(square_image(image, side))


def imagenet_normalize(image: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalisation of a [0, 1] image."""
    return TF.normalize(image, IMAGENET_MEAN, IMAGENET_STD)


def anchor_views(
    image: Image.Image, resized: Image.Image, scales: Sequence[float]
) -> list[torch.Tensor]:
    """The views of an anchor paired with it, each resized from the image at its own
    resolution as the original does: scale 1.0 is the mirror of `resized`, the anchor's
    input-size square (resized once for the anchor and its mirror), any other scale a square
    of side input size * scale."""
    views = []
    for scale in scales:
        if scale == 1.0:
            views.append(TF.hflip(TF.to_tensor(resized)))
        else:
            views.append(square(image, max(MIN_VIEW_SIDE, round(resized.width * scale))))
    return views
