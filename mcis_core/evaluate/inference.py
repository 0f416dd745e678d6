"""Multi-scale, sliding-window, flipped inference of the segmentation network
(docs/method.md §7.1; the test-time protocol of DeepLab, Chen et al., ICLR 2015 / TPAMI 2018,
with which MCIS (Sun et al., ECCV 2020) reports its VOC val mIoU), as the original's
evaluation script does it:

- the image is resized to each scale bicubically;
- at each scale it is cut into overlapping windows (an image smaller than a window is padded
  with the ImageNet mean, or with `pad_to_window` off runs at its own size); each window's
  logits are upsampled (bilinearly) to the window and turned into class probabilities, and
  the probabilities are averaged where windows overlap;
- the probabilities of every scale and of the mirrored image (mirrored back) are resized to
  the image bicubically and averaged.
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


def resize(maps: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """(N, C, h, w) maps resized to (N, C, *size) with `mode` (bilinear or bicubic)."""
    return F.interpolate(maps, size=size, mode=mode, align_corners=False)


def sliding_probs(
    net: nn.Module, images: torch.Tensor, window: int, stride: int, pad_to_window: bool = True
) -> torch.Tensor:
    """(N, 3, h, w) normalised images -> (N, K, h, w) class probabilities, averaged over the
    overlapping windows. A side shorter than the window is padded up to it (`pad_to_window`)
    or taken whole: then the window shrinks to that side."""
    height, width = images.shape[-2:]
    win_h, win_w = (window, window) if pad_to_window else (min(window, height), min(window, width))
    # zero padding of a normalised image is padding with the mean colour
    padded = F.pad(images, (0, max(0, win_w - width), 0, max(0, win_h - height)))
    padded_h, padded_w = padded.shape[-2:]
    total, count = None, torch.zeros(padded_h, padded_w, device=images.device)
    for top in window_starts(padded_h, win_h, stride):
        for left in window_starts(padded_w, win_w, stride):
            crop = padded[:, :, top : top + win_h, left : left + win_w]
            logits = resize(net(crop), (win_h, win_w), "bilinear")  # (N, K, win_h, win_w)
            probs = torch.softmax(logits, dim=1)
            if total is None:
                total = images.new_zeros(len(images), probs.shape[1], padded_h, padded_w)
            total[:, :, top : top + win_h, left : left + win_w] += probs
            count[top : top + win_h, left : left + win_w] += 1
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
    pad_to_window: bool = True,
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
            size = scaled_size(height, width, scale)
            scaled = resize(image[None].to(device), size, "bicubic")  # (1, 3, h, w)
            batch = torch.cat([scaled, scaled.flip(-1)]) if flip else scaled  # (F, 3, h, w)
            probs = sliding_probs(net, batch, window, stride, pad_to_window)  # (F, K, h, w)
            if flip:
                probs[1] = probs[1].flip(-1)
            probs = resize(probs, (height, width), "bicubic").sum(0)  # (K, H, W)
            total = probs if total is None else total + probs
    finally:
        net.train(was_training)
    return (total / (len(scales) * (2 if flip else 1))).cpu()
