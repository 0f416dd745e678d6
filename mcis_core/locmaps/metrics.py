"""Quality of the localization maps, as the WSSS literature measures CAMs (IRN's eval_cam;
docs/method.md §8).

Each map is divided by its maximum; a pixel takes the class of its strongest map
where that exceeds a threshold and is background elsewhere. The confusion against
the fine ground truth is accumulated over images for every threshold at once, and
the threshold with the best mIoU is reported with the whole curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mcis_core.common.errors import DatasetError
from mcis_core.common.io import read_gray
from mcis_core.common.layout import BACKGROUND, IGNORE_INDEX, fine_mask_path
from mcis_core.common.paths import locmap_path
from mcis_core.scoring.segmentation import check_values, segmentation_scores


def scaled_by_peak(maps: np.ndarray) -> np.ndarray:
    """(P, H, W) maps each divided by its maximum (an all-zero map stays zero)."""
    peaks = maps.reshape(len(maps), -1).max(axis=1) if len(maps) else np.zeros(0)
    return maps / np.maximum(peaks, 1e-12)[:, None, None]


def read_maps(maps_dir: Path, name: str, classes: Sequence[int]) -> np.ndarray:
    """(P, H, W) float maps of an image's P >= 1 classes, 0..255."""
    planes = []
    for c in classes:
        path = locmap_path(maps_dir, name, c)
        if not path.is_file():
            raise DatasetError(f"{path}: localization map missing")
        planes.append(read_gray(path).astype(np.float64))
    return np.stack(planes)


def evaluate_locmaps(
    voc_dir: Path,
    maps_dir: Path,
    names: Sequence[str],
    labels: dict[str, list[int]],
    num_classes: int,
    thresholds: np.ndarray,
) -> tuple[float, dict, list[dict]]:
    """(best threshold, its scores, the mIoU curve) of the maps of `names` against fine masks."""
    if not names:
        raise DatasetError(f"{voc_dir}: no images with fine masks to evaluate the maps on")
    total = None
    for name in tqdm(names, desc="locmap quality", unit="img"):
        truth = read_gray(fine_mask_path(voc_dir, name))
        classes = labels[name]
        maps = read_maps(maps_dir, name, classes) if classes else np.zeros((0, *truth.shape))
        confusions = threshold_confusions(
            scaled_by_peak(maps), np.asarray(classes) + 1, truth, thresholds, num_classes + 1
        )
        total = confusions if total is None else total + confusions
    threshold, scores = best_threshold(total, thresholds)
    return threshold, scores, threshold_curve(total, thresholds)


def threshold_confusions(
    class_scores: np.ndarray,
    labels: np.ndarray,
    truth: np.ndarray,
    thresholds: np.ndarray,
    num_classes: int,
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
    check_values(truth, num_classes, "truth")
