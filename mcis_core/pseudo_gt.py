"""The pseudo_gt stage's work: a pseudo label per training image, and its quality.

Reads each train_aug image's saliency map (<saliency>/<name>.png) and the 8-bit
localization maps of its classes (<locmaps>/<name>_<class>.png), applies the
rules of `mcis_core.pseudo_labels` and saves a VOC palette PNG per image. Quality
is measured on the images with fine masks (VOC train) as the literature does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mcis_core.config import PseudoLabelRules
from mcis_core.device import default_device
from mcis_core.io import atomic_dir, read_gray
from mcis_core.localization import map_name
from mcis_core.pseudo_labels import pseudo_label
from mcis_core.segmentation_metrics import (
    LabelledCounts,
    confusion_matrix,
    labelled_counts,
    labelled_precision_recall,
    segmentation_scores,
)
from mcis_core.voc import BACKGROUND, FINE_MASK_DIR, IGNORE_INDEX, DatasetError, save_mask


@dataclass
class PseudoGtSummary:
    """What the labelling pass saw: skipped and wholly ignored images, ignored pixels."""

    skipped: list[str] = field(default_factory=list)
    fully_ignored: int = 0
    ignored_pixels: int = 0
    pixels: int = 0


def missing_inputs(name: str, classes: Sequence[int], sal_dir: Path, maps_dir: Path) -> list[Path]:
    """The saliency map and localization maps of image `name` that do not exist."""
    needed = [sal_dir / f"{name}.png"] + [maps_dir / map_name(name, c) for c in classes]
    return [p for p in needed if not p.is_file()]


def label_image(
    name: str, classes: Sequence[int], sal_dir: Path, maps_dir: Path, rules: PseudoLabelRules
) -> np.ndarray:
    """(H, W) uint8 pseudo label of one image."""
    device = default_device()
    saliency = torch.tensor(read_gray(sal_dir / f"{name}.png"), device=device)
    planes = [read_gray(maps_dir / map_name(name, c)) for c in classes]
    for c, plane in zip(classes, planes, strict=True):
        if plane.shape != saliency.shape:
            raise DatasetError(
                f"{maps_dir / map_name(name, c)}: {plane.shape} but the saliency map of {name} "
                f"is {tuple(saliency.shape)}"
            )
    maps = torch.from_numpy(np.stack(planes)) if planes else torch.zeros((0, *saliency.shape))
    return pseudo_label(saliency, maps.to(device), classes, rules).cpu().numpy()


def make_pseudo_labels(
    names: Sequence[str],
    labels: dict[str, list[int]],
    sal_dir: Path,
    maps_dir: Path,
    out: Path,
    rules: PseudoLabelRules,
    skip_missing: bool,
) -> PseudoGtSummary:
    """Write out/<name>.png for every image, atomically; missing inputs raise or are skipped."""
    summary = PseudoGtSummary()
    with atomic_dir(out) as tmp:
        for name in tqdm(names, desc="pseudo labels", unit="img"):
            missing = missing_inputs(name, labels[name], sal_dir, maps_dir)
            if missing and not skip_missing:
                raise DatasetError(
                    f"{missing[0]}: missing for image {name} (pseudo_gt.on_missing: skip skips it)"
                )
            if missing:
                summary.skipped.append(name)
                continue
            label = label_image(name, labels[name], sal_dir, maps_dir, rules)
            save_mask(tmp / f"{name}.png", label)
            ignored = int((label == IGNORE_INDEX).sum())
            summary.fully_ignored += ignored == label.size
            summary.ignored_pixels += ignored
            summary.pixels += label.size
    return summary


def evaluate_pseudo_labels(voc_dir: Path, pseudo_dir: Path, names: Sequence[str]) -> dict:
    """mIoU (ignored pixels left out, and counted as background), precision, recall.

    Scores without a single counted pixel behind them are None (precision: NaN).
    """
    confusion = confusion_as_background = 0
    counts = LabelledCounts()
    for name in names:
        path = pseudo_dir / f"{name}.png"
        if not path.is_file():  # skipped for a missing input
            continue
        pred = read_gray(path)
        truth = read_gray(voc_dir / FINE_MASK_DIR / f"{name}.png")
        confusion = confusion + confusion_matrix(pred, truth)
        as_background = np.where(pred == IGNORE_INDEX, BACKGROUND, pred)
        confusion_as_background = confusion_as_background + confusion_matrix(as_background, truth)
        counts = counts + labelled_counts(pred, truth)
    if counts.pixels == 0:
        raise DatasetError(f"{pseudo_dir}: no pseudo labels of images with fine masks")
    # every pixel ignored (a weak classifier can get there): no mIoU over labelled pixels
    scores = (
        segmentation_scores(confusion) if confusion.sum() else {"miou": None, "class_iou": None}
    )
    quality = labelled_precision_recall(counts)
    return {
        "miou": scores["miou"],
        "miou_ignored_as_background": segmentation_scores(confusion_as_background)["miou"],
        "precision": quality["precision"],
        "recall": quality["recall"],
        "class_iou": scores["class_iou"],
    }
