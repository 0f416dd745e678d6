"""Tests of the multilabel classification metrics (mcis_core.classifier.metrics) against
hand-computed values and a brute-force average precision written here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mcis_core.classifier.metrics import average_precisions, macro_f1, mean_average_precision


def brute_force_ap(scores: np.ndarray, targets: np.ndarray) -> float:
    """AP of one class with distinct scores: walk down the ranking, average the precision
    at the rank of each positive."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    hits, precisions = 0, []
    for rank, item in enumerate(order, start=1):
        if targets[item]:
            hits += 1
            precisions.append(hits / rank)
    return sum(precisions) / len(precisions) if precisions else math.nan


def column(values: list[float]) -> np.ndarray:
    """(N, 1) array: one class."""
    return np.array(values, dtype=float)[:, None]


# --- average precision ---------------------------------------------------------------------


def test_average_precision_by_hand() -> None:
    aps = average_precisions(column([0.9, 0.8, 0.7, 0.6]), column([1, 0, 1, 0]))
    assert aps.shape == (1,)
    assert aps[0] == pytest.approx((1 / 1 + 2 / 3) / 2)


def test_average_precision_ignores_row_order() -> None:
    scores, targets = column([0.6, 0.9, 0.7, 0.8]), column([0, 1, 1, 0])
    assert average_precisions(scores, targets)[0] == pytest.approx((1 / 1 + 2 / 3) / 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precisions_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = 30, 6
    scores = rng.permutation(n * k).reshape(n, k) / (n * k) - 0.3  # distinct scores
    targets = (rng.random((n, k)) < 0.3).astype(int)
    targets[0] = 1  # every class has a positive
    expected = [brute_force_ap(scores[:, c], targets[:, c]) for c in range(k)]
    np.testing.assert_allclose(average_precisions(scores, targets), expected, rtol=1e-12)
    assert mean_average_precision(scores, targets) == pytest.approx(np.mean(expected))


def test_perfect_and_worst_rankings() -> None:
    scores = column([4.0, 3.0, 2.0, 1.0])
    assert average_precisions(scores, column([1, 1, 0, 0]))[0] == pytest.approx(1.0)
    # positives last: (1/3 + 2/4) / 2
    assert average_precisions(scores, column([0, 0, 1, 1]))[0] == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_class_without_positives_is_nan_and_left_out_of_map() -> None:
    scores = np.array([[0.9, 0.1, 0.3], [0.8, 0.9, 0.2], [0.1, 0.5, 0.7]])
    targets = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    aps = average_precisions(scores, targets)
    assert aps[0] == pytest.approx(1.0)
    # class 1: positive (0.5) ranked 2nd of 3 -> 1/2; class 2: positive (0.2) ranked 3rd -> 1/3
    assert aps[1] == pytest.approx(1 / 2)
    assert aps[2] == pytest.approx(1 / 3)

    targets[:, 1] = 0  # now class 1 has no positive
    aps = average_precisions(scores, targets)
    assert np.isnan(aps[1])
    assert not np.isnan(aps[[0, 2]]).any()
    assert mean_average_precision(scores, targets) == pytest.approx((1 + 1 / 3) / 2)


def test_tied_scores_count_as_ranked_above() -> None:
    assert average_precisions(column([0.5, 0.5]), column([1, 0]))[0] == pytest.approx(0.5)
    assert average_precisions(column([0.5, 0.5]), column([0, 1]))[0] == pytest.approx(0.5)
    # two positives tied with a negative, below a negative: each sees 2 positives in 4 items
    scores, targets = column([0.9, 0.5, 0.5, 0.5]), column([0, 1, 1, 0])
    assert average_precisions(scores, targets)[0] == pytest.approx(2 / 4)


# --- macro F1 ------------------------------------------------------------------------------

# 4 images x 3 classes, threshold 0.5 (strictly above predicts):
# class 0: predicted [1, 0, 1, 0] vs actual [1, 1, 0, 0] -> tp 1, fp 1, fn 1 -> F1 2/4
# class 1: predicted [0, 1, 1, 1] vs actual [0, 1, 1, 1] -> F1 1
# class 2: nothing predicted (0.5 is not above 0.5), no positive -> left out
F1_PROBABILITIES = np.array(
    [
        [0.9, 0.2, 0.1],
        [0.4, 0.7, 0.2],
        [0.6, 0.8, 0.3],
        [0.1, 0.55, 0.5],
    ]
)
F1_TARGETS = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 0]])


def test_macro_f1_by_hand() -> None:
    assert macro_f1(F1_PROBABILITIES, F1_TARGETS) == pytest.approx((0.5 + 1.0) / 2)


def test_macro_f1_counts_a_class_predicted_without_positives() -> None:
    probabilities = F1_PROBABILITIES.copy()
    probabilities[3, 2] = 0.51  # a false positive in class 2: its F1 is 0 and it counts
    assert macro_f1(probabilities, F1_TARGETS) == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_macro_f1_threshold() -> None:
    # at 0.3, class 0 predicts [1, 1, 1, 0]: tp 2, fp 1 -> 4/5; class 1 unchanged;
    # class 2 predicts nothing above 0.3 except 0.5: one false positive -> 0
    assert macro_f1(F1_PROBABILITIES, F1_TARGETS, threshold=0.3) == pytest.approx(
        (4 / 5 + 1.0 + 0.0) / 3
    )


def test_macro_f1_with_nothing_to_count_is_zero() -> None:
    assert macro_f1(np.zeros((2, 3)), np.zeros((2, 3))) == 0.0
