"""Salient object detection metrics: mean absolute error and maximum F-beta.

Conventions (those of the salient object detection benchmarks):
- Saliency maps are uint8, 255 = salient; ground truth is a boolean foreground mask with an
  optional boolean valid mask (e.g. VOC's 255 "ignore" pixels are not valid) and only valid
  pixels count anywhere.
- MAE: per image, the mean of |saliency / 255 - foreground| over valid pixels; then the mean
  over images that have any valid pixel.
- Precision-recall: at threshold t in 0..255 a pixel is predicted salient when saliency >= t
  (so t = 0 predicts everything). Per image, precision with no predicted pixel is 0. Curves
  are averaged over the images that have valid foreground (recall is undefined without it);
  F-beta (beta^2 = 0.3) is computed from the averaged precision and recall at each threshold,
  and the maximum over thresholds is reported with the threshold that first attains it.
Each image is reduced to two 256-bin histograms (foreground and background saliency values),
so all thresholds are evaluated at once by cumulative sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BETA_SQUARED = 0.3
LEVELS = 256  # uint8 saliency values, and so thresholds
SALIENCY_MAX = LEVELS - 1


@dataclass(frozen=True)
class SaliencyScores:
    """Dataset-level saliency scores and the precision-recall curve behind max F-beta."""

    mae: float  # mean over images of the mean |saliency / 255 - foreground|
    max_fbeta: float  # max over thresholds of F-beta of image-averaged precision and recall
    best_threshold: int  # the threshold t (salient when saliency >= t) attaining max_fbeta
    precision: list[float]  # image-averaged precision at t = 0..255
    recall: list[float]  # image-averaged recall at t = 0..255


class SaliencyAccumulator:
    """Streaming MAE and precision-recall over images: update() per image, result() at the end."""

    def __init__(self) -> None:
        self._absolute_error = 0.0
        self._mae_images = 0
        self._precision = np.zeros(LEVELS)
        self._recall = np.zeros(LEVELS)
        self._curve_images = 0

    def update(
        self, saliency: np.ndarray, foreground: np.ndarray, valid: np.ndarray | None = None
    ) -> None:
        """Add one image: saliency (H, W) uint8, foreground (H, W) bool, valid (H, W) bool."""
        foreground_hist, background_hist = _histograms(saliency, foreground, valid)
        pixels = foreground_hist.sum() + background_hist.sum()
        if pixels == 0:
            return
        levels = np.arange(LEVELS) / SALIENCY_MAX
        error = foreground_hist @ (1.0 - levels) + background_hist @ levels
        self._absolute_error += error / pixels
        self._mae_images += 1
        if foreground_hist.sum() == 0:
            return
        precision, recall = _precision_recall(foreground_hist, background_hist)
        self._precision += precision
        self._recall += recall
        self._curve_images += 1

    def result(self) -> SaliencyScores:
        """Scores over all images added so far."""
        if self._mae_images == 0:
            raise ValueError("no image with valid pixels was added")
        curve_images = max(self._curve_images, 1)
        precision = self._precision / curve_images
        recall = self._recall / curve_images
        fbeta = _fbeta(precision, recall)
        best = int(np.argmax(fbeta))
        return SaliencyScores(
            mae=self._absolute_error / self._mae_images,
            max_fbeta=float(fbeta[best]),
            best_threshold=best,
            precision=precision.tolist(),
            recall=recall.tolist(),
        )


def _histograms(
    saliency: np.ndarray, foreground: np.ndarray, valid: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Counts (256,) of saliency values over valid foreground and valid background pixels."""
    saliency = np.asarray(saliency)
    foreground = np.asarray(foreground, dtype=bool)
    if saliency.dtype != np.uint8:
        raise ValueError(f"saliency must be uint8, got {saliency.dtype}")
    if foreground.shape != saliency.shape:
        raise ValueError(f"foreground {foreground.shape} != saliency {saliency.shape}")
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != saliency.shape:
            raise ValueError(f"valid {valid.shape} != saliency {saliency.shape}")
        saliency, foreground = saliency[valid], foreground[valid]
    values = saliency.ravel()
    truth = foreground.ravel()
    return (
        np.bincount(values[truth], minlength=LEVELS),
        np.bincount(values[~truth], minlength=LEVELS),
    )


def _precision_recall(
    foreground_hist: np.ndarray, background_hist: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall (256,) at every threshold, predicting salient when value >= t."""
    true_positives = _at_or_above(foreground_hist)
    predicted = true_positives + _at_or_above(background_hist)
    precision = np.divide(true_positives, predicted, out=np.zeros(LEVELS), where=predicted > 0)
    # At t = 0 every pixel is predicted, so true_positives[0] is the foreground size
    return precision, true_positives / true_positives[0]


def _at_or_above(hist: np.ndarray) -> np.ndarray:
    """Entry t: the count of values >= t."""
    return np.cumsum(hist[::-1])[::-1].astype(np.float64)


def _fbeta(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """F-beta at every threshold; 0 where precision and recall are both 0."""
    denominator = BETA_SQUARED * precision + recall
    numerator = (1.0 + BETA_SQUARED) * precision * recall
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
