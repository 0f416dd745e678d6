"""MCIS pseudo ground truth: one image's saliency and localization maps -> a label map.

Sun et al., "Mining Cross-Image Semantics for Weakly Supervised Semantic Segmentation",
ECCV 2020; the rules and thresholds are those of the public code (docs/method.md §5):

- scores: background 1 - sal/255; class k (mask label k + 1) its min-max normalised
  localization map; the classes the image lacks score 0;
- sal_att: the saliency raised to 255 wherever one of the image's normalised maps > 0.95;
- scores below 0.3 are zeroed (background too); label = argmax of the C + 1 scores;
- ignored (255): a pixel where more than one score exceeds 0.99; a background pixel whose
  sal_att >= 32; the whole image when under 1% of its pixels end up with an object class.

Where the rules leave room, this module decides:
- ties go to the lowest label (torch.argmax returns the first maximum): background beats a
  class of equal score, class i beats class j > i whatever the order of `classes`, and a
  pixel whose scores were all floored to 0 is background;
- the conflict count uses the floored scores (the rules' order; no difference while the
  floor is below the conflict threshold);
- the foreground fraction is taken after the conflict and salient-background ignores, over
  all H * W pixels, and a fraction of exactly `min_foreground` keeps the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mcis_core.common.layout import BACKGROUND, IGNORE_INDEX
from mcis_core.pseudo_gt.params import PseudoLabelRules

SALIENCY_MAX = 255.0  # 8-bit saliency, 255 = salient
SCORE_DTYPE = torch.float32


def minmax_scale(maps: torch.Tensor) -> torch.Tensor:
    """(P, H, W) maps min-max scaled to 0..1 each, as float32; a constant map becomes 0."""
    flat = maps.to(SCORE_DTYPE).flatten(1)  # (P, H*W)
    low = flat.amin(dim=1, keepdim=True)  # (P, 1)
    span = flat.amax(dim=1, keepdim=True) - low  # (P, 1)
    span = torch.where(span > 0, span, 1.0)  # constant map: 0 / 1 = 0
    return ((flat - low) / span).view_as(maps)


def class_scores(
    saliency: torch.Tensor, norm_maps: torch.Tensor, classes: Sequence[int], num_classes: int
) -> torch.Tensor:
    """(num_classes + 1, H, W) scores: background 1 - sal/255, class k's map at k + 1."""
    scores = norm_maps.new_zeros((num_classes + 1, *saliency.shape))
    scores[BACKGROUND] = 1 - saliency / SALIENCY_MAX
    labels = torch.as_tensor(classes, dtype=torch.long, device=scores.device) + 1  # (P,)
    scores[labels] = norm_maps
    return scores


def salient_attention(
    saliency: torch.Tensor, norm_maps: torch.Tensor, threshold: float
) -> torch.Tensor:
    """(H, W) sal_att: the saliency, 255 wherever some normalised map exceeds threshold."""
    located = (norm_maps > threshold).any(dim=0)  # (H, W), all False when P = 0
    return torch.maximum(saliency, located * SALIENCY_MAX)


def check_inputs(
    saliency: torch.Tensor, locmaps: torch.Tensor, classes: Sequence[int], num_classes: int
) -> None:
    """Raise ValueError unless saliency, locmaps and classes describe one image."""
    if saliency.dim() != 2 or saliency.numel() == 0:
        raise ValueError(f"saliency must be a non-empty (H, W) map, got {tuple(saliency.shape)}")
    if locmaps.dim() != 3:
        raise ValueError(f"locmaps must be (P, H, W), got shape {tuple(locmaps.shape)}")
    if locmaps.shape[0] != len(classes):
        raise ValueError(f"{locmaps.shape[0]} localization maps for {len(classes)} classes")
    if locmaps.shape[1:] != saliency.shape:
        raise ValueError(
            f"locmaps are {tuple(locmaps.shape[1:])} but saliency is {tuple(saliency.shape)}"
        )
    if locmaps.device != saliency.device:
        raise ValueError(f"locmaps on {locmaps.device} but saliency on {saliency.device}")
    outside = [c for c in classes if not 0 <= c < num_classes]
    if outside:
        raise ValueError(f"class indices must be in 0..{num_classes - 1}, got {outside}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"class indices repeat: {list(classes)}")


def pseudo_label(
    saliency: torch.Tensor,
    locmaps: torch.Tensor,
    classes: Sequence[int],
    num_classes: int,
    rules: PseudoLabelRules,
) -> torch.Tensor:
    """(H, W) uint8 label map: 0 background, k + 1 class k, 255 ignored."""
    check_inputs(saliency, locmaps, classes, num_classes)
    sal = saliency.to(SCORE_DTYPE)  # (H, W)
    norm_maps = minmax_scale(locmaps)  # (P, H, W)
    scores = class_scores(sal, norm_maps, classes, num_classes)  # (C + 1, H, W)
    scores = scores.where(scores >= rules.score_floor, 0.0)
    label = scores.argmax(dim=0)  # (H, W), ties to the lowest label
    conflict = (scores > rules.conflict).sum(dim=0) > 1  # (H, W)
    sal_att = salient_attention(sal, norm_maps, rules.salient_locmap)  # (H, W)
    salient_background = (label == BACKGROUND) & (sal_att >= rules.salient_background)
    label[conflict | salient_background] = IGNORE_INDEX
    objects = ((label != BACKGROUND) & (label != IGNORE_INDEX)).sum()
    # a tensor comparison, not a Python branch: no host sync on CUDA
    keep = objects >= rules.min_foreground * label.numel()
    return torch.where(keep, label, IGNORE_INDEX).to(torch.uint8)
