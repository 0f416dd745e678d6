"""Multi-scale, sliding-window, flipped inference of the segmentation network
(docs/method.md §7.1; the test-time protocol of DeepLab, Chen et al., ICLR 2015 / TPAMI 2018, with
which MCIS (Sun et al., ECCV 2020) reports its VOC val mIoU).

At each scale the image is cut into overlapping windows (an image smaller than a window is
padded with the ImageNet mean); window logits are upsampled to the window and averaged where
windows overlap. The class probabilities of every scale and of the mirrored image (mirrored
back) are resized to the image and averaged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Offsets of windows that cover [0, length), the last one flush with the end."""
    if length <= window:
        return [0]
    steps = math.ceil((length - window) / stride)
    return [min(i * stride, length - window) for i in range(steps + 1)]


def resize(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (N, C, h, w) maps to (N, C, *size)."""
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def sliding_logits(net: nn.Module, images: torch.Tensor, window: int, stride: int) -> torch.Tensor:
    """(N, 3, h, w) normalised images -> (N, K, h, w) logits averaged over overlapping windows."""
    height, width = images.shape[-2:]
    # zero padding of a normalised image is padding with the mean colour
    padded = F.pad(images, (0, max(0, window - width), 0, max(0, window - height)))
    padded_h, padded_w = padded.shape[-2:]
    total, count = None, torch.zeros(padded_h, padded_w, device=images.device)
    for top in window_starts(padded_h, window, stride):
        for left in window_starts(padded_w, window, stride):
            crop = padded[:, :, top : top + window, left : left + window]
            logits = resize(net(crop), (window, window))  # (N, K, window, window)
            if total is None:
                total = images.new_zeros(len(images), logits.shape[1], padded_h, padded_w)
            total[:, :, top : top + window, left : left + window] += logits
            count[top : top + window, left : left + window] += 1
    return (total / count)[:, :, :height, :width]


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The image size at `scale`, at least one pixel."""
    return max(1, round(height * scale)), max(1, round(width * scale))


@torch.no_grad()
def predict_probs(
    net: nn.Module,
    image: torch.Tensor,
    scales: Sequence[float],
    window: int,
    stride_ratio: float,
    flip: bool,
) -> torch.Tensor:
    """(3, H, W) normalised image -> (K, H, W) class probabilities on the CPU, averaged over
    scales and flips. Runs on the net's device, in eval mode (the net's mode is restored)."""
    device = next(net.parameters()).device
    height, width = image.shape[-2:]
    stride = max(1, round(window * stride_ratio))
    was_training = net.training
    net.eval()
    try:
        total = None
        for scale in scales:
            scaled = resize(
                image[None].to(device), scaled_size(height, width, scale)
            )  # (1, 3, h, w)
            batch = torch.cat([scaled, scaled.flip(-1)]) if flip else scaled  # (F, 3, h, w)
            probs = torch.softmax(sliding_logits(net, batch, window, stride), dim=1)
            if flip:
                probs[1] = probs[1].flip(-1)
            probs = resize(probs, (height, width)).sum(0)  # (K, H, W)
            total = probs if total is None else total + probs
    finally:
        net.train(was_training)
    return (total / (len(scales) * (2 if flip else 1))).cpu()
