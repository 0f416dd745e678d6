"""Segmentation scores from confusion matrices: mIoU, pixel accuracy, mean class accuracy,
frequency weighted IoU and per-class IoU (docs/method.md §7.3), shared by the stages that
score label maps (locmaps, pseudo_gt, train_segmentation, evaluate).

Conventions: label maps are integer arrays with background 0, class k as k + 1 and 255
"ignore". Confusion matrices are (C, C) int64, rows = ground truth, columns = prediction,
C = the number of classes + 1; they are per image and are summed over images before scoring.
"""

from __future__ import annotations

import numpy as np

from mcis_core.common.layout import IGNORE_INDEX


def confusion_matrix(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 pixel counts, rows = truth, cols = pred; pixels where either is 255 skipped.

    A 255 in pred (an ignored pseudo label) is left out like a 255 in truth; to count ignored
    predictions as background instead, map them to 0 before calling.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    check_label_maps(pred, truth)
    check_values(pred, num_classes, "pred")
    check_values(truth, num_classes, "truth")
    counted = (truth != IGNORE_INDEX) & (pred != IGNORE_INDEX)
    pairs = truth[counted].astype(np.int64) * num_classes + pred[counted]  # (N,)
    counts = np.bincount(pairs, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def segmentation_scores(confusion: np.ndarray) -> dict:
    """mIoU, pixel accuracy, mean class accuracy, fwIoU and per-class IoU of a confusion matrix.

    class_iou is NaN for a class absent from both truth and prediction; the means are taken
    over the other classes (mean class accuracy over the classes with truth pixels only).
    """
    confusion = _checked_confusion(confusion)
    true_positives = np.diag(confusion)  # (C,)
    truth_pixels = confusion.sum(1)  # (C,)
    pred_pixels = confusion.sum(0)  # (C,)
    union = truth_pixels + pred_pixels - true_positives
    class_iou = _safe_ratio(true_positives, union)
    in_truth = truth_pixels > 0
    frequency = truth_pixels / truth_pixels.sum()
    return {
        "miou": float(np.nanmean(class_iou)),
        "pixel_accuracy": float(true_positives.sum() / confusion.sum()),
        "mean_class_accuracy": float(np.mean(true_positives[in_truth] / truth_pixels[in_truth])),
        "fwiou": float(np.sum(frequency[in_truth] * class_iou[in_truth])),
        "class_iou": [float(iou) for iou in class_iou],
    }


def check_label_maps(pred: np.ndarray, truth: np.ndarray) -> None:
    """Raise ValueError unless pred and truth are integer label maps of one shape."""
    if pred.shape != truth.shape:
        raise ValueError(f"pred shape {pred.shape} differs from truth shape {truth.shape}")
    for name, array in (("pred", pred), ("truth", truth)):
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must hold integer labels, got dtype {array.dtype}")


def check_values(labels: np.ndarray, num_classes: int, name: str) -> None:
    """Raise ValueError unless every label is in 0..num_classes - 1 or is 255."""
    if not 0 < num_classes <= IGNORE_INDEX:
        raise ValueError(f"num_classes must be in 1..{IGNORE_INDEX}, got {num_classes}")
    outside = (labels < 0) | ((labels >= num_classes) & (labels != IGNORE_INDEX))
    if outside.any():
        raise ValueError(
            f"{name} holds {labels[outside].flat[0]}, outside 0..{num_classes - 1} and "
            f"{IGNORE_INDEX}"
        )


def _checked_confusion(confusion: np.ndarray) -> np.ndarray:
    """The confusion matrix as int64 after checking it is square, non-negative and non-empty."""
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {confusion.shape}")
    if (confusion < 0).any():
        raise ValueError("confusion matrix has negative counts")
    if confusion.sum() == 0:
        raise ValueError("confusion matrix is empty: no pixel was counted")
    return confusion.astype(np.int64)


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator element-wise, NaN where the denominator is 0."""
    ratio = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=ratio, where=denominator > 0)
    return ratio
