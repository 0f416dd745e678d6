"""The pseudo_gt stage's work: a pseudo label per training image.

Reads each train_aug image's saliency map (<saliency>/<name>.png) and the 8-bit
localization maps of its classes (<locmaps>/<name>_<class>.png), applies the
rules of `mcis_core.pseudo_gt.rules` and saves a VOC palette PNG per image.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mcis_core.common.device import default_device
from mcis_core.common.errors import DatasetError
from mcis_core.common.io import read_gray, write_names
from mcis_core.common.layout import IGNORE_INDEX, save_mask
from mcis_core.common.parallel import ordered_map
from mcis_core.common.paths import label_path, locmap_path, saliency_map_path, skipped_list_path
from mcis_core.pseudo_gt.params import PseudoLabelRules
from mcis_core.pseudo_gt.rules import pseudo_label


@dataclass
class PseudoGtSummary:
    """What the labelling pass saw: skipped and wholly ignored images, ignored pixels."""

    skipped: list[str] = field(default_factory=list)
    fully_ignored: int = 0
    ignored_pixels: int = 0
    pixels: int = 0


def missing_inputs(name: str, classes: Sequence[int], sal_dir: Path, maps_dir: Path) -> list[Path]:
    """The saliency map and localization maps of image `name` that do not exist."""
    needed = [saliency_map_path(sal_dir, name)]
    needed += [locmap_path(maps_dir, name, c) for c in classes]
    return [p for p in needed if not p.is_file()]


def label_image(
    name: str,
    classes: Sequence[int],
    num_classes: int,
    sal_dir: Path,
    maps_dir: Path,
    rules: PseudoLabelRules,
) -> np.ndarray:
    """(H, W) uint8 pseudo label of one image."""
    device = default_device()
    saliency = torch.tensor(read_gray(saliency_map_path(sal_dir, name)), device=device)
    planes = [read_gray(locmap_path(maps_dir, name, c)) for c in classes]
    for c, plane in zip(classes, planes, strict=True):
        if plane.shape != saliency.shape:
            raise DatasetError(
                f"{locmap_path(maps_dir, name, c)}: {plane.shape} but the saliency map of {name} "
                f"is {tuple(saliency.shape)}"
            )
    maps = torch.from_numpy(np.stack(planes)) if planes else torch.zeros((0, *saliency.shape))
    return pseudo_label(saliency, maps.to(device), classes, num_classes, rules).cpu().numpy()


def make_pseudo_labels(
    names: Sequence[str],
    labels: dict[str, list[int]],
    num_classes: int,
    sal_dir: Path,
    maps_dir: Path,
    out: Path,
    rules: PseudoLabelRules,
    skip_missing: bool,
    workers: int,
) -> PseudoGtSummary:
    """Write out/<name>.png for every image (in `workers` processes); missing inputs raise or
    are skipped (and listed in out/skipped.txt, so that the segmentation stage tells them
    from lost labels)."""
    write_one = functools.partial(
        write_pseudo_label,
        num_classes=num_classes,
        sal_dir=sal_dir,
        maps_dir=maps_dir,
        out=out,
        rules=rules,
        skip_missing=skip_missing,
    )
    items = [(name, tuple(labels[name])) for name in names]
    summary = PseudoGtSummary()
    for name, ignored, pixels in ordered_map(write_one, items, workers, desc="pseudo labels"):
        if pixels == 0:
            summary.skipped.append(name)
            continue
        summary.fully_ignored += ignored == pixels
        summary.ignored_pixels += ignored
        summary.pixels += pixels
    write_names(skipped_list_path(out), summary.skipped)
    return summary


def write_pseudo_label(
    item: tuple[str, tuple[int, ...]],
    *,
    num_classes: int,
    sal_dir: Path,
    maps_dir: Path,
    out: Path,
    rules: PseudoLabelRules,
    skip_missing: bool,
) -> tuple[str, int, int]:
    """Save the pseudo label of image (name, classes); return (name, ignored pixels, pixels),
    pixels 0 for an image skipped for missing inputs."""
    name, classes = item
    missing = missing_inputs(name, classes, sal_dir, maps_dir)
    if missing and not skip_missing:
        raise DatasetError(
            f"{missing[0]}: missing for image {name} (pseudo_gt.on_missing: skip skips it)"
        )
    if missing:
        return name, 0, 0
    label = label_image(name, classes, num_classes, sal_dir, maps_dir, rules)
    save_mask(label_path(out, name), label)
    return name, int((label == IGNORE_INDEX).sum()), label.size
