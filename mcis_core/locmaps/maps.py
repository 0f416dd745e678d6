"""Co-attention localization maps of the training images (docs/method.md §4).

For image a with positive classes C:
- partners: for each c in C, `partners` training images that contain c (seeded, with
  replacement); a's co-attention CAM against each, averaged, channel c kept -> M_partner;
- self views: pairing a with its mirror image gives a's co-attention CAM (M0) and the
  mirror's, flipped back (M1); pairing it with each rescaled view gives that view's
  co-attention CAM resized (bicubic) to a's feature size (M2, M3 for 0.75x and 2x);
- per class, over [M0, M1, M2, M3, M_partner]: relu(M0) scaled to max 255, plus every
  further relu(m) scaled to max 255 whose sigmoid(mean(m)) > `view_gate` (0.1), divided
  by the list's length; resized (bicubic) to the image size and saved as an 8-bit map.

The cached schedule computes each image's backbone features once per scale: the
input-size features of every training image are computed first and serve as that
image's anchor features and as partner features for every other image. The naive
schedule recomputes both images' features for every pairing, as the original did.
Features are computed one image per call in both schedules, so they are bitwise the
same and so are the maps. The bank's placement and precision are parameters (bank.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from tqdm import tqdm

from mcis_core.classifier.network import CoAttentionNet
from mcis_core.common.io import save_gray
from mcis_core.common.layout import image_path
from mcis_core.common.paths import locmap_path
from mcis_core.locmaps.bank import FeatureBank
from mcis_core.models.inputs import (
    anchor_views,
    imagenet_normalize,
    open_rgb,
    square,
    square_image,
)

MAX_VALUE = 255.0  # the maps are saved as 8-bit images


@dataclass(frozen=True)
class AnchorPlan:
    """One training image to localize: its classes and, per class, its partner images."""

    index: int
    classes: tuple[int, ...]
    partners: dict[int, tuple[int, ...]]  # class -> indices of images containing it


def plan_partners(
    labels: Sequence[Sequence[int]], num_classes: int, partners: int, seed: int
) -> list[AnchorPlan]:
    """Draw, for every image and each of its classes, `partners` other images with that class."""
    with_class = [
        np.array([i for i, ls in enumerate(labels) if c in ls]) for c in range(num_classes)
    ]
    plans = []
    for index, classes in enumerate(labels):
        rng = np.random.default_rng([seed, index])
        drawn = {}
        for c in classes:  # any image with class c, the anchor included, as the original
            drawn[c] = tuple(int(i) for i in rng.choice(with_class[c], size=partners))
        plans.append(AnchorPlan(index, tuple(classes), drawn))
    return plans


def scale_to_max(cam: torch.Tensor) -> torch.Tensor:
    """relu(cam) scaled so its maximum is 255 (an all-zero map stays zero)."""
    positive = cam.clamp(min=0)
    peak = positive.max()
    return positive * (MAX_VALUE / peak) if peak > 0 else positive


def aggregate(
    maps: Sequence[torch.Tensor], classes: Sequence[int], view_gate: float
) -> torch.Tensor:
    """(P, h, w) maps of the image's P classes from a list of (K, h, w) co-attention CAMs."""
    out = []
    for c in classes:
        total = scale_to_max(maps[0][c])
        for cam in maps[1:]:
            if torch.sigmoid(cam[c].mean()) > view_gate:
                total = total + scale_to_max(cam[c])
        out.append(total / len(maps))
    return torch.stack(out) if out else maps[0].new_zeros((0, *maps[0].shape[1:]))


def self_view_maps(
    net: CoAttentionNet,
    anchor_features: Callable[[], torch.Tensor],
    view_features: Sequence[torch.Tensor],
    view_scales: Sequence[float],
) -> list[torch.Tensor]:
    """[M0, M1, ...]: a's co-CAM from its first view pairing, then each view's, aligned to a."""
    maps = []
    for features, scale in zip(view_features, view_scales, strict=True):
        fa = anchor_features()
        out = net.pair(fa, features)
        if not maps:
            maps.append(out.co_cam_a[0])
        view_cam = out.co_cam_b[0]  # (K, hv, wv)
        if scale == 1.0:
            view_cam = view_cam.flip(-1)
        elif view_cam.shape[-2:] != fa.shape[-2:]:
            view_cam = F.interpolate(
                view_cam[None], size=fa.shape[-2:], mode="bicubic", align_corners=False
            )[0]
        maps.append(view_cam)
    return maps


def partner_map(
    net: CoAttentionNet,
    anchor_features: Callable[[], torch.Tensor],
    partner_features: Callable[[int], torch.Tensor],
    plan: AnchorPlan,
) -> torch.Tensor:
    """M_partner (K, h, w): per class, a's co-CAM averaged over that class's partners."""
    result = None
    for c in plan.classes:
        cams = []
        for p in plan.partners[c]:
            cams.append(net.pair(anchor_features(), partner_features(p)).co_cam_a[0])
        mean = torch.stack(cams).mean(dim=0)
        result = torch.zeros_like(mean) if result is None else result
        result[c] = mean[c]
    return result


class ImageSource:
    """Network inputs of the training images: input-size tensor, views, original size."""

    def __init__(self, voc_dir: Path, names: Sequence[str], input_size: int) -> None:
        self.voc_dir, self.names, self.input_size = voc_dir, list(names), input_size

    def path(self, index: int) -> Path:
        return image_path(self.voc_dir, self.names[index])

    def original(self, index: int) -> Image.Image:
        """Image `index` at its own resolution."""
        return open_rgb(self.path(index))

    def image(self, index: int) -> torch.Tensor:
        """(3, S, S) resized, not yet normalised."""
        return square(self.original(index), self.input_size)


class Localizer:
    """Computes the localization maps of training images with one trained network."""

    def __init__(
        self,
        net: CoAttentionNet,
        source: ImageSource,
        view_scales: Sequence[float],
        view_gate: float,
        device: torch.device,
        naive: bool,
    ) -> None:
        self.net, self.source, self.view_scales = net.eval(), source, tuple(view_scales)
        self.view_gate, self.device, self.naive = view_gate, device, naive
        self.bank: FeatureBank | None = None

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """(1, C, h, w) features of one (3, s, s) [0, 1] image."""
        return self.net.features(imagenet_normalize(image)[None].to(self.device))

    def input_features(self, index: int) -> torch.Tensor:
        """Image `index`'s input-size features: from the bank, or recomputed when naive."""
        if self.naive:
            return self.features(self.source.image(index))
        return self.bank[index]

    @torch.no_grad()
    def feature_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of the input-size features."""
        size = self.source.input_size
        return tuple(self.features(torch.zeros(3, size, size)).shape[1:])

    @torch.no_grad()
    def build_bank(self, bank: FeatureBank, indices: Iterable[int], progress: bool = True) -> None:
        """Put images `indices`' input-size features into `bank` (the cached schedule's first
        pass) and use the bank from now on."""
        for i in tqdm(indices, desc="features", unit="img", disable=not progress):
            bank.put(i, self.features(self.source.image(i)))
        self.bank = bank

    @torch.no_grad()
    def maps(self, plan: AnchorPlan) -> torch.Tensor:
        """(P, H, W) uint8 maps of the plan's classes at the original image size."""
        original = self.source.original(plan.index)
        resized = square_image(original, self.source.input_size)
        image = TF.to_tensor(resized)
        views = [self.features(v) for v in anchor_views(original, resized, self.view_scales)]
        cached = None if self.naive else self.input_features(plan.index)

        def anchor() -> torch.Tensor:
            return cached if cached is not None else self.features(image)

        cams = self_view_maps(self.net, anchor, views, self.view_scales)
        if plan.classes:
            cams.append(partner_map(self.net, anchor, self.input_features, plan))
        maps = aggregate(cams, plan.classes, self.view_gate)  # (P, h, w)
        return to_image_size(maps, (original.height, original.width))


def to_image_size(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(P, h, w) maps in 0..255 -> (P, H, W) uint8: truncated to 8 bits at the feature size,
    then resized bicubically and rounded, in the original's order (docs/method.md §4.2)."""
    if maps.shape[0] == 0:
        return torch.zeros((0, *size), dtype=torch.uint8)
    eight_bit = maps.float().cpu().clamp(0, MAX_VALUE).floor()  # as numpy's uint8 cast
    resized = F.interpolate(eight_bit[None], size=size, mode="bicubic", align_corners=False)
    return resized[0].round().clamp(0, MAX_VALUE).to(torch.uint8)


def write_maps(folder: Path, image: str, classes: Sequence[int], maps: torch.Tensor) -> None:
    """Save one grayscale PNG per (image, class)."""
    for cls, plane in zip(classes, maps, strict=True):
        save_gray(locmap_path(folder, image, cls), plane.numpy())
