"""Tests of the segmentation metrics (mcis_core.scoring.segmentation), of the localization
maps' threshold confusions (mcis_core.locmaps.metrics) and of the pseudo labels' labelled
pixel counts (mcis_core.pseudo_gt.metrics) against hand-computed values and brute-force pixel
loops written here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mcis_core.common.layout import IGNORE_INDEX
from mcis_core.dataset.voc import VOC_CLASSES
from mcis_core.locmaps.metrics import best_threshold, threshold_confusions, threshold_curve
from mcis_core.pseudo_gt.metrics import (
    LabelledCounts,
    labelled_counts,
    labelled_precision_recall,
)
from mcis_core.scoring.segmentation import confusion_matrix, segmentation_scores

NUM_SEG_CLASSES = len(VOC_CLASSES) + 1  # background and the VOC classes

# --- brute force -------------------------------------------------------------------------------


def brute_force_scores(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> dict:
    """The scores by counting pixels per class in plain Python loops."""
    tp, in_truth, in_pred, total = [0] * num_classes, [0] * num_classes, [0] * num_classes, 0
    for p, t in zip(pred.ravel().tolist(), truth.ravel().tolist(), strict=True):
        if IGNORE_INDEX in (p, t):
            continue
        total += 1
        in_truth[t] += 1
        in_pred[p] += 1
        tp[t] += p == t
    iou = [
        tp[c] / (in_truth[c] + in_pred[c] - tp[c]) if in_truth[c] + in_pred[c] else math.nan
        for c in range(num_classes)
    ]
    present = [c for c in range(num_classes) if in_truth[c] + in_pred[c]]
    with_truth = [c for c in range(num_classes) if in_truth[c]]
    return {
        "miou": sum(iou[c] for c in present) / len(present),
        "pixel_accuracy": sum(tp) / total,
        "mean_class_accuracy": sum(tp[c] / in_truth[c] for c in with_truth) / len(with_truth),
        "fwiou": sum(in_truth[c] / total * iou[c] for c in with_truth),
        "class_iou": iou,
    }


def brute_force_threshold_confusions(
    scores: np.ndarray, labels: list[int], truth: np.ndarray, thresholds: list[float], c: int
) -> np.ndarray:
    """(T, C, C) by looping over thresholds and pixels."""
    confusions = np.zeros((len(thresholds), c, c), dtype=np.int64)
    height, width = truth.shape
    for k, threshold in enumerate(thresholds):
        for i in range(height):
            for j in range(width):
                if truth[i, j] == IGNORE_INDEX:
                    continue
                pixel_scores = [float(scores[p, i, j]) for p in range(len(labels))]
                pred = 0
                if pixel_scores and max(pixel_scores) > threshold:
                    pred = labels[pixel_scores.index(max(pixel_scores))]
                confusions[k, truth[i, j], pred] += 1
    return confusions


def random_label_map(rng: np.random.Generator, shape: tuple[int, int], c: int) -> np.ndarray:
    """uint8 labels in 0..c-1 with about 15% of pixels 255."""
    labels = rng.integers(0, c, shape).astype(np.uint8)
    labels[rng.random(shape) < 0.15] = IGNORE_INDEX
    return labels


def assert_scores_equal(actual: dict, expected: dict) -> None:
    """Scalar scores approximately equal, class IoU equal with NaN in the same places."""
    for key in ("miou", "pixel_accuracy", "mean_class_accuracy", "fwiou"):
        assert actual[key] == pytest.approx(expected[key], rel=1e-12), key
    np.testing.assert_allclose(actual["class_iou"], expected["class_iou"], rtol=1e-12)


# --- confusion matrix and scores ----------------------------------------------------------------

# 3 classes; the 255 in truth and the 255 in pred leave 7 counted pixels
HAND_TRUTH = np.array([[0, 0, 1], [1, 1, 2], [2, 255, 0]], dtype=np.uint8)
HAND_PRED = np.array([[0, 1, 1], [1, 0, 2], [2, 2, 255]], dtype=np.uint8)


def test_confusion_matrix_by_hand() -> None:
    confusion = confusion_matrix(HAND_PRED, HAND_TRUTH, num_classes=3)
    assert confusion.dtype == np.int64
    np.testing.assert_array_equal(confusion, [[1, 1, 0], [1, 2, 0], [0, 0, 2]])


def test_scores_by_hand() -> None:
    scores = segmentation_scores(confusion_matrix(HAND_PRED, HAND_TRUTH, num_classes=3))
    # TP (1, 2, 2), truth pixels (2, 3, 2), predicted pixels (2, 3, 2)
    assert scores["class_iou"] == pytest.approx([1 / 3, 2 / 4, 2 / 2])
    assert scores["miou"] == pytest.approx((1 / 3 + 1 / 2 + 1) / 3)  # 11/18
    assert scores["pixel_accuracy"] == pytest.approx(5 / 7)
    assert scores["mean_class_accuracy"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)  # 13/18
    assert scores["fwiou"] == pytest.approx(2 / 7 * 1 / 3 + 3 / 7 * 1 / 2 + 2 / 7 * 1)  # 25/42


def test_absent_class_is_nan_and_left_out_of_the_means() -> None:
    scores = segmentation_scores(confusion_matrix(HAND_PRED, HAND_TRUTH, num_classes=5))
    assert math.isnan(scores["class_iou"][3]) and math.isnan(scores["class_iou"][4])
    assert scores["miou"] == pytest.approx(11 / 18)
    assert scores["mean_class_accuracy"] == pytest.approx(13 / 18)
    assert scores["fwiou"] == pytest.approx(25 / 42)


def test_class_only_predicted_counts_zero_in_miou_not_in_class_accuracy() -> None:
    truth = np.array([[0, 0], [1, 1]])
    pred = np.array([[0, 2], [1, 1]])
    scores = segmentation_scores(confusion_matrix(pred, truth, num_classes=3))
    assert scores["class_iou"] == pytest.approx([1 / 2, 1.0, 0.0])
    assert scores["miou"] == pytest.approx(1.5 / 3)
    assert scores["mean_class_accuracy"] == pytest.approx((1 / 2 + 1) / 2)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_scores_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = 7  # the maps use labels 0..5 only: class 6 is absent from both
    truth, pred = random_label_map(rng, (17, 13), c - 1), random_label_map(rng, (17, 13), c - 1)
    truth[truth == 4] = 1  # class 4 only predicted
    pred[pred == 5] = 0  # class 5 only in truth
    scores = segmentation_scores(confusion_matrix(pred, truth, num_classes=c))
    assert math.isnan(scores["class_iou"][6])
    assert_scores_equal(scores, brute_force_scores(pred, truth, c))


def test_confusions_add_up_over_images() -> None:
    rng = np.random.default_rng(7)
    maps = [(random_label_map(rng, (9, 8), 21), random_label_map(rng, (9, 8), 21)) for _ in "ab"]
    summed = sum(confusion_matrix(pred, truth, NUM_SEG_CLASSES) for pred, truth in maps)
    stacked_pred = np.concatenate([pred for pred, _ in maps])
    stacked_truth = np.concatenate([truth for _, truth in maps])
    np.testing.assert_array_equal(
        summed, confusion_matrix(stacked_pred, stacked_truth, NUM_SEG_CLASSES)
    )


def test_confusion_matrix_rejects_bad_input() -> None:
    labels = np.zeros((2, 2), dtype=np.uint8)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(labels, np.zeros((2, 3), dtype=np.uint8), NUM_SEG_CLASSES)
    with pytest.raises(ValueError, match="integer"):
        confusion_matrix(labels.astype(float), labels, NUM_SEG_CLASSES)
    with pytest.raises(ValueError, match="truth holds 21"):
        confusion_matrix(labels, np.full((2, 2), 21), NUM_SEG_CLASSES)
    with pytest.raises(ValueError, match="pred holds -1"):
        confusion_matrix(np.full((2, 2), -1), labels, NUM_SEG_CLASSES)


def test_scores_reject_bad_confusion() -> None:
    with pytest.raises(ValueError, match="square"):
        segmentation_scores(np.ones((2, 3)))
    with pytest.raises(ValueError, match="empty"):
        segmentation_scores(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="negative"):
        segmentation_scores(np.array([[1, -1], [0, 1]]))


# --- localization maps at thresholds -------------------------------------------------------------


def test_threshold_confusions_by_hand() -> None:
    # labels 1 and 3; pixel scores (0.2, 0.6), (0.5, 0.5), (0.9, 0.1), truth 255 at the last
    scores = np.array([[[0.2, 0.5], [0.9, 0.0]], [[0.6, 0.5], [0.1, 0.0]]])
    truth = np.array([[3, 1], [0, 255]])
    confusions = threshold_confusions(scores, [1, 3], truth, [0.5, 0.0], num_classes=4)
    at_half = np.zeros((4, 4), dtype=np.int64)
    at_half[3, 3] = at_half[1, 0] = at_half[0, 1] = 1  # 0.5 is not above 0.5: background
    at_zero = np.zeros((4, 4), dtype=np.int64)
    at_zero[3, 3] = at_zero[1, 1] = at_zero[0, 1] = 1  # tie 0.5 / 0.5: the first map's label
    np.testing.assert_array_equal(confusions, [at_half, at_zero])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_confusions_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    c, labels = 21, [2, 15, 9]
    scores = rng.integers(0, 11, (len(labels), 11, 9)) / 10  # ties with thresholds and maps
    truth = random_label_map(rng, (11, 9), c)
    thresholds = rng.permutation(21) / 20  # unsorted, 0.0 .. 1.0
    expected = brute_force_threshold_confusions(scores, labels, truth, thresholds.tolist(), c)
    np.testing.assert_array_equal(
        threshold_confusions(scores, labels, truth, thresholds, num_classes=c), expected
    )


def test_threshold_confusions_without_positive_classes_is_all_background() -> None:
    truth = np.array([[0, 4], [255, 4]], dtype=np.uint8)
    confusions = threshold_confusions(np.zeros((0, 2, 2)), [], truth, [0.1, 0.5], num_classes=5)
    expected = np.zeros((5, 5), dtype=np.int64)
    expected[0, 0], expected[4, 0] = 1, 2
    np.testing.assert_array_equal(confusions, [expected, expected])


def test_best_threshold_and_curve() -> None:
    rng = np.random.default_rng(3)
    truth = random_label_map(rng, (10, 10), 21)
    scores = rng.random((2, 10, 10)) * (truth[None] == np.array([5, 7])[:, None, None])
    thresholds = np.array([0.6, 0.1, 0.3, 0.9])
    confusions = threshold_confusions(scores, [5, 7], truth, thresholds, NUM_SEG_CLASSES)
    mious = [segmentation_scores(confusion)["miou"] for confusion in confusions]
    threshold, scores_at_best = best_threshold(confusions, thresholds)
    assert threshold == thresholds[int(np.argmax(mious))]
    assert scores_at_best["miou"] == pytest.approx(max(mious))
    curve = threshold_curve(confusions, thresholds)
    assert curve == [{"threshold": t, "miou": m} for t, m in zip(thresholds, mious, strict=True)]


def test_best_threshold_takes_the_lowest_on_ties() -> None:
    confusion = np.eye(3, dtype=np.int64)
    confusions = np.stack([confusion, confusion, np.ones((3, 3), dtype=np.int64)])
    assert best_threshold(confusions, [0.4, 0.2, 0.1])[0] == 0.2


def test_threshold_confusions_reject_bad_input() -> None:
    scores, truth = np.zeros((1, 2, 2)), np.zeros((2, 2), dtype=np.uint8)
    with pytest.raises(ValueError, match="class_scores shape"):
        threshold_confusions(np.zeros((1, 3, 2)), [1], truth, [0.5], NUM_SEG_CLASSES)
    with pytest.raises(ValueError, match="labels shape"):
        threshold_confusions(scores, [1, 2], truth, [0.5], NUM_SEG_CLASSES)
    with pytest.raises(ValueError, match="object labels"):
        threshold_confusions(scores, [0], truth, [0.5], NUM_SEG_CLASSES)
    with pytest.raises(ValueError, match="thresholds"):
        threshold_confusions(scores, [1], truth, [], NUM_SEG_CLASSES)
    with pytest.raises(ValueError, match="truth holds 30"):
        threshold_confusions(scores, [1], np.full((2, 2), 30), [0.5], NUM_SEG_CLASSES)


# --- pseudo labels -------------------------------------------------------------------------------


def test_labelled_precision_recall_by_hand() -> None:
    pred = np.array([[1, 255, 0], [2, 2, 255]], dtype=np.uint8)
    truth = np.array([[1, 1, 255], [2, 0, 0]], dtype=np.uint8)
    counts = labelled_counts(pred, truth)
    assert counts == LabelledCounts(correct=2, labelled=3, valid=5, ignored=2, pixels=6)
    result = labelled_precision_recall(counts)
    assert result == pytest.approx({"precision": 2 / 3, "recall": 2 / 5, "ignored_fraction": 2 / 6})


def test_labelled_counts_add_up_over_images() -> None:
    first = labelled_counts(np.array([[1, 255]]), np.array([[1, 1]]))
    second = labelled_counts(np.array([[0, 3]]), np.array([[0, 255]]))
    total = sum([first, second], LabelledCounts())
    assert total == LabelledCounts(correct=2, labelled=2, valid=3, ignored=1, pixels=4)
    assert labelled_precision_recall(total)["recall"] == pytest.approx(2 / 3)


def test_labelled_precision_without_labelled_pixels_is_nan() -> None:
    result = labelled_precision_recall(
        labelled_counts(np.full((2, 2), 255), np.zeros((2, 2), dtype=int))
    )
    assert math.isnan(result["precision"])
    assert result["recall"] == 0.0 and result["ignored_fraction"] == 1.0
