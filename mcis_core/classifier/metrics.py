"""Multilabel classification metrics: mean average precision and F1 at a threshold."""

from __future__ import annotations

import numpy as np


def average_precisions(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-class AP of (N, K) scores against (N, K) 0/1 targets; NaN for a class without positives.

    AP = mean over the positives of the precision among the items scored at least as high.
    """
    aps = np.full(scores.shape[1], np.nan)
    for k in range(scores.shape[1]):
        positive_scores = scores[targets[:, k] > 0, k]  # (P,)
        if positive_scores.size:
            # ties count as ranked above, so the result does not depend on sort order
            ranked_above = (scores[None, :, k] >= positive_scores[:, None]).sum(1)  # (P,)
            positives_above = (positive_scores[None, :] >= positive_scores[:, None]).sum(1)
            aps[k] = float(np.mean(positives_above / ranked_above))
    return aps


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean of the per-class APs over classes with at least one positive."""
    return float(np.nanmean(average_precisions(scores, targets)))


def macro_f1(probabilities: np.ndarray, targets: np.ndarray, threshold: float = 0.5) -> float:
    """Mean over classes (with a positive or a prediction) of F1 with predictions p > threshold."""
    predicted = probabilities > threshold
    actual = targets > 0
    tp = (predicted & actual).sum(0)
    fp = (predicted & ~actual).sum(0)
    fn = (~predicted & actual).sum(0)
    counted = (tp + fp + fn) > 0
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return float(f1[counted].mean()) if counted.any() else 0.0
