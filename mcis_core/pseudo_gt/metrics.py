"""Quality of the pseudo labels against the fine masks, as the WSSS literature reports it
(docs/method.md §8): mIoU with the ignored (255) pixels left out and with them counted as
background, precision and recall of the labelled pixels, the fraction of ignored pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcis_core.common.errors import DatasetError
from mcis_core.common.io import read_gray
from mcis_core.common.layout import BACKGROUND, IGNORE_INDEX, fine_mask_path
from mcis_core.common.paths import label_path
from mcis_core.scoring.segmentation import (
    check_label_maps,
    confusion_matrix,
    segmentation_scores,
)


def evaluate_pseudo_labels(
    voc_dir: Path, pseudo_dir: Path, names: Sequence[str], num_classes: int
) -> dict:
    """mIoU (ignored pixels left out, and counted as background), precision, recall.

    Scores without a single counted pixel behind them are None (precision: NaN).
    """
    confusion = confusion_as_background = 0
    counts = LabelledCounts()
    for name in names:
        path = label_path(pseudo_dir, name)
        if not path.is_file():  # skipped for a missing input
            continue
        pred = read_gray(path)
        truth = read_gray(fine_mask_path(voc_dir, name))
        confusion = confusion + confusion_matrix(pred, truth, num_classes + 1)
        as_background = np.where(pred == IGNORE_INDEX, BACKGROUND, pred)
        confusion_as_background = confusion_as_background + confusion_matrix(
            as_background, truth, num_classes + 1
        )
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


@dataclass(frozen=True)
class LabelledCounts:
    """Pixel counts of a pseudo label map against ground truth; add them up over images."""

    correct: int = 0  # labelled pixels equal to a valid truth
    labelled: int = 0  # pixels with a label (not 255) where the truth is valid
    valid: int = 0  # pixels where the truth is valid (not 255)
    ignored: int = 0  # pixels labelled 255, wherever the truth is
    pixels: int = 0  # all pixels

    def __add__(self, other: LabelledCounts) -> LabelledCounts:
        """Field-wise sum."""
        return LabelledCounts(
            correct=self.correct + other.correct,
            labelled=self.labelled + other.labelled,
            valid=self.valid + other.valid,
            ignored=self.ignored + other.ignored,
            pixels=self.pixels + other.pixels,
        )


def labelled_counts(pred: np.ndarray, truth: np.ndarray) -> LabelledCounts:
    """The LabelledCounts of one pseudo label map pred (255 = ignored) against truth."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    check_label_maps(pred, truth)
    valid = truth != IGNORE_INDEX
    labelled = valid & (pred != IGNORE_INDEX)
    return LabelledCounts(
        correct=int(np.count_nonzero(labelled & (pred == truth))),
        labelled=int(np.count_nonzero(labelled)),
        valid=int(np.count_nonzero(valid)),
        ignored=int(np.count_nonzero(pred == IGNORE_INDEX)),
        pixels=int(pred.size),
    )


def labelled_precision_recall(counts: LabelledCounts) -> dict[str, float]:
    """precision = correct / labelled, recall = correct / valid, ignored_fraction = ignored / all.

    A ratio with a zero denominator is NaN.
    """
    return {
        "precision": _ratio(counts.correct, counts.labelled),
        "recall": _ratio(counts.correct, counts.valid),
        "ignored_fraction": _ratio(counts.ignored, counts.pixels),
    }


def _ratio(numerator: int, denominator: int) -> float:
    """numerator / denominator, NaN when the denominator is 0."""
    return numerator / denominator if denominator else float("nan")
