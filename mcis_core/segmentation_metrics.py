"""Semantic segmentation metrics: confusion matrices, mIoU and the per-stage quality scores.

The per-stage quality measures of the WSSS literature (as reported for MCIS, Sun et al.,
"Mining Cross-Image Semantics for Weakly Supervised Semantic Segmentation", ECCV 2020):
- final segmentation: mIoU, pixel accuracy, mean class accuracy, frequency weighted IoU and
  per-class IoU from one confusion matrix summed over all images;
- localization maps: mIoU when background is every pixel where no class map exceeds a
  threshold (the evaluation of IRN's eval_cam), reported at the best threshold;
- pseudo labels: mIoU with the ignored (255) pixels left out, precision and recall of the
  labelled pixels and the fraction of ignored pixels.

Conventions: label maps are integer arrays with background 0, class k (0..19) as k + 1 and
255 "ignore". Confusion matrices are (C, C) int64, rows = ground truth, columns = prediction;
they are per image and are summed over images before scoring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcis_core.voc import BACKGROUND, IGNORE_INDEX, NUM_CLASSES

NUM_SEG_CLASSES = NUM_CLASSES + 1  # background + the 20 object classes


def confusion_matrix(
    pred: np.ndarray, truth: np.ndarray, num_classes: int = NUM_SEG_CLASSES
) -> np.ndarray:
    """(C, C) int64 pixel counts, rows = truth, cols = pred; pixels where either is 255 skipped.

    A 255 in pred (an ignored pseudo label) is left out like a 255 in truth; to count ignored
    predictions as background instead, map them to 0 before calling.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    _check_label_maps(pred, truth)
    _check_values(pred, num_classes, "pred")
    _check_values(truth, num_classes, "truth")
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


def threshold_confusions(
    class_scores: np.ndarray,
    labels: np.ndarray,
    truth: np.ndarray,
    thresholds: np.ndarray,
    num_classes: int = NUM_SEG_CLASSES,
) -> np.ndarray:
    """(T, C, C) confusion matrices of one image's localization maps at each threshold.

    class_scores (P, H, W) holds the maps of the image's P positive classes (in [0, 1]) and
    labels their P segmentation labels (class id + 1). At threshold t a pixel is predicted
    labels[argmax_p score] (the first map on ties) where max_p score > t, else background.
    With P = 0 every pixel is background. Pixels where truth is 255 are skipped.
    """
    class_scores, truth = np.asarray(class_scores), np.asarray(truth)
    labels = np.asarray(labels, dtype=np.int64)  # (P,)
    thresholds = np.asarray(thresholds, dtype=np.float64)  # (T,)
    _check_maps(class_scores, labels, truth, thresholds, num_classes)
    valid = truth != IGNORE_INDEX  # (H, W)
    truth_valid = truth[valid].astype(np.int64)  # (N,)
    truth_pixels = np.bincount(truth_valid, minlength=num_classes)  # (C,)
    top_score, top_label = _top_class(class_scores, labels, valid)
    foreground = _foreground_confusions(top_score, top_label, truth_valid, thresholds, num_classes)
    confusions = foreground.copy()  # (T, C, C)
    # every valid pixel not foreground at a threshold is predicted background there
    confusions[:, :, BACKGROUND] += truth_pixels[None, :] - foreground.sum(2)
    return confusions


def best_threshold(confusions: np.ndarray, thresholds: np.ndarray) -> tuple[float, dict]:
    """The threshold with the highest mIoU (the lowest such on ties) and its scores."""
    miou = [segmentation_scores(confusion)["miou"] for confusion in confusions]
    thresholds = np.asarray(thresholds, dtype=np.float64)
    ties_lowest = np.lexsort((thresholds, -np.asarray(miou)))
    best = int(ties_lowest[0])
    return float(thresholds[best]), segmentation_scores(confusions[best])


def threshold_curve(confusions: np.ndarray, thresholds: np.ndarray) -> list[dict]:
    """Rows {"threshold", "miou"}, one per threshold in the given order, for a plot."""
    return [
        {"threshold": float(threshold), "miou": segmentation_scores(confusion)["miou"]}
        for threshold, confusion in zip(thresholds, confusions, strict=True)
    ]


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
    _check_label_maps(pred, truth)
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


def _top_class(
    class_scores: np.ndarray, labels: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Highest score (N,) and its label (N,) at the N valid pixels; -inf and 0 when P = 0."""
    scores = class_scores[:, valid]  # (P, N)
    if len(labels) == 0:
        return np.full(scores.shape[1], -np.inf), np.full(scores.shape[1], BACKGROUND)
    return scores.max(0), labels[scores.argmax(0)]


def _foreground_confusions(
    top_score: np.ndarray,
    top_label: np.ndarray,
    truth_valid: np.ndarray,
    thresholds: np.ndarray,
    num_classes: int,
) -> np.ndarray:
    """(T, C, C) counts of the valid pixels predicted as an object at each threshold."""
    num_thresholds = len(thresholds)
    order = np.argsort(thresholds, kind="stable")
    # a pixel is foreground at the `passed` lowest thresholds: those strictly below its score
    passed = np.searchsorted(thresholds[order], top_score, side="left")  # (N,) in 0..T
    triples = (passed * num_classes + truth_valid) * num_classes + top_label  # (N,)
    histogram = np.bincount(triples, minlength=(num_thresholds + 1) * num_classes**2)
    histogram = histogram.reshape(num_thresholds + 1, num_classes, num_classes)
    # foreground at the k-th lowest threshold = pixels that passed more than k thresholds
    passed_more = np.cumsum(histogram[::-1], axis=0)[::-1][1:]  # (T, C, C)
    foreground = np.empty_like(passed_more)
    foreground[order] = passed_more
    return foreground


def _check_label_maps(pred: np.ndarray, truth: np.ndarray) -> None:
    """Raise ValueError unless pred and truth are integer label maps of one shape."""
    if pred.shape != truth.shape:
        raise ValueError(f"pred shape {pred.shape} differs from truth shape {truth.shape}")
    for name, array in (("pred", pred), ("truth", truth)):
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must hold integer labels, got dtype {array.dtype}")


def _check_values(labels: np.ndarray, num_classes: int, name: str) -> None:
    """Raise ValueError unless every label is in 0..num_classes - 1 or is 255."""
    if not 0 < num_classes <= IGNORE_INDEX:
        raise ValueError(f"num_classes must be in 1..{IGNORE_INDEX}, got {num_classes}")
    outside = (labels < 0) | ((labels >= num_classes) & (labels != IGNORE_INDEX))
    if outside.any():
        raise ValueError(
            f"{name} holds {labels[outside].flat[0]}, outside 0..{num_classes - 1} and "
            f"{IGNORE_INDEX}"
        )


def _check_maps(
    class_scores: np.ndarray,
    labels: np.ndarray,
    truth: np.ndarray,
    thresholds: np.ndarray,
    num_classes: int,
) -> None:
    """Raise ValueError unless the inputs of threshold_confusions fit together."""
    if class_scores.ndim != 3 or class_scores.shape[1:] != truth.shape:
        raise ValueError(
            f"class_scores shape {class_scores.shape} is not (P, *truth shape {truth.shape})"
        )
    if labels.shape != class_scores.shape[:1]:
        raise ValueError(f"labels shape {labels.shape} does not fit {len(class_scores)} class maps")
    if thresholds.ndim != 1 or thresholds.size == 0:
        raise ValueError(f"thresholds must be a non-empty 1-D array, got shape {thresholds.shape}")
    if ((labels <= BACKGROUND) | (labels >= num_classes)).any():
        raise ValueError(f"labels {labels.tolist()} must be object labels in 1..{num_classes - 1}")
    if not np.issubdtype(truth.dtype, np.integer):
        raise ValueError(f"truth must hold integer labels, got dtype {truth.dtype}")
    _check_values(truth, num_classes, "truth")


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


def _ratio(numerator: int, denominator: int) -> float:
    """numerator / denominator, NaN when the denominator is 0."""
    return numerator / denominator if denominator else float("nan")
