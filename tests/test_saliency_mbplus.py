"""Tests of the MB+ saliency detector (mcis_core.saliency) and its metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.color import rgb2lab
from skimage.morphology import reconstruction

from mcis_core.saliency import mbplus as saliency_module
from mcis_core.saliency.mbplus import (
    _dilate,
    _reconstruct_by_dilation,
    compute_saliency,
    iter_saliency,
    minimum_barrier_distance,
    rgb_to_lab,
    working_shape,
)
from mcis_core.saliency.metrics import SaliencyAccumulator

MBPLUS = {"max_side": 300, "sweeps": 3, "boundary_width": 15}  # the MB+ paper's settings

# Whole-number pixel values below 10: the barrier's max / min / subtract are exact in float32,
# so this margin (far below one step of 1) only guards the comparison
FLOAT_TOLERANCE = 1e-4


def exact_barrier_distance(image: np.ndarray) -> np.ndarray:
    """Exact minimum barrier distance (h, w) to the border, by brute force.

    For every lower bound `low` (a pixel value), the best path maximum through pixels >= low is
    a minimax (bottleneck) distance, found by relaxing until nothing changes; the barrier is
    the minimum over `low` of that maximum minus `low`.
    """
    border = np.ones_like(image, dtype=bool)
    border[1:-1, 1:-1] = False
    best = np.full(image.shape, np.inf)
    for low in np.unique(image):
        allowed = image >= low
        peak = np.where(border & allowed, image, np.inf)
        while True:
            neighbour = np.full(image.shape, np.inf)
            neighbour[1:] = np.minimum(neighbour[1:], peak[:-1])
            neighbour[:-1] = np.minimum(neighbour[:-1], peak[1:])
            neighbour[:, 1:] = np.minimum(neighbour[:, 1:], peak[:, :-1])
            neighbour[:, :-1] = np.minimum(neighbour[:, :-1], peak[:, 1:])
            relaxed = np.where(allowed, np.minimum(peak, np.maximum(neighbour, image)), np.inf)
            if np.array_equal(relaxed, peak):
                break
            peak = relaxed
        best = np.minimum(best, peak - low)
    return best


def raster_barrier_distance(image: np.ndarray, sweeps: int) -> np.ndarray:
    """The module's raster-scan barrier distance of one single-channel image."""
    values = torch.from_numpy(image).float()[None, None]
    return minimum_barrier_distance(values, sweeps=sweeps)[0, 0].double().numpy()


def random_shapes(rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
    """Tiny (h, w) sizes."""
    return [tuple(int(v) for v in rng.integers(3, 9, 2)) for _ in range(count)]


def disc_scene(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A bright yellow disc on a textured green-purple background, and its mask."""
    rows, cols = np.mgrid[:height, :width]
    background = np.stack(
        [60 + 40 * np.sin(cols / 7.0), 90 + 30 * np.cos(rows / 5.0), 70 + 0 * cols], axis=-1
    ) + rng.normal(0, 12, (height, width, 3))
    disc = (rows - 0.45 * height) ** 2 + (cols - 0.55 * width) ** 2 < (0.25 * height) ** 2
    colour = np.array([250, 220, 40]) + rng.normal(0, 8, (height, width, 3))
    image = np.where(disc[..., None], colour, background)
    return np.clip(image, 0, 255).astype(np.uint8), disc


def test_rgb_to_lab_matches_skimage() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 41, 3), dtype=np.uint8)
    image[0, :8] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                    [1, 1, 1], [10, 10, 10], [128, 128, 128]]  # fmt: skip
    rgb = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    lab = rgb_to_lab(rgb).permute(1, 2, 0).double().numpy()
    # float32 against skimage's float64: L, a, b span about +-100, and a, b near 0 are differences
    # of values near 1, so the error scales with that range: 1e-3 is about 1e-5 of it
    np.testing.assert_allclose(lab, rgb2lab(image), atol=1e-3)


def test_working_shape_only_shrinks() -> None:
    assert working_shape((128, 160), 300) == (128, 160)
    assert working_shape((600, 400), 300) == (300, 200)
    assert working_shape((1000, 1), 300) == (300, 1)


def test_barrier_is_an_upper_bound_within_the_error_bound() -> None:
    # Raster scans only follow real paths, so they never undercut the exact distance; on
    # random images they may exceed it, but by less than twice the largest neighbour step
    rng = np.random.default_rng(1)
    for height, width in random_shapes(rng, 40):
        image = rng.integers(0, 10, (height, width)).astype(np.float64)
        exact = exact_barrier_distance(image)
        raster = raster_barrier_distance(image, sweeps=3)
        step = max(np.abs(np.diff(image, axis=0)).max(), np.abs(np.diff(image, axis=1)).max())
        assert (raster >= exact - FLOAT_TOLERANCE).all()
        assert (raster - exact < 2 * step).all()


def test_barrier_converges() -> None:
    rng = np.random.default_rng(2)
    for height, width in random_shapes(rng, 20):
        image = rng.integers(0, 10, (height, width)).astype(np.float64)
        assert np.array_equal(  # a fixed point of exact max / min / subtract on whole numbers
            raster_barrier_distance(image, 10), raster_barrier_distance(image, 30)
        )


def test_barrier_exact_on_two_level_images_after_enough_sweeps() -> None:
    # Zero distance must travel along winding same-level paths, which can take several sweeps
    rng = np.random.default_rng(3)
    for height, width in random_shapes(rng, 40):
        image = (rng.random((height, width)) < 0.5) * 5.0
        np.testing.assert_array_equal(
            raster_barrier_distance(image, 10), exact_barrier_distance(image)
        )


def test_barrier_exact_on_overlapping_rectangles() -> None:
    rng = np.random.default_rng(4)
    for height, width in random_shapes(rng, 40):
        image = np.zeros((height, width))
        for _ in range(3):
            top, left = rng.integers(0, height), rng.integers(0, width)
            bottom, right = top + rng.integers(1, 5), left + rng.integers(1, 5)
            image[top:bottom, left:right] = rng.integers(0, 5)
        np.testing.assert_array_equal(
            raster_barrier_distance(image, 3), exact_barrier_distance(image)
        )


def test_barrier_of_padded_batch_equals_each_image_alone() -> None:
    rng = np.random.default_rng(5)
    sizes = [(6, 7), (9, 4), (3, 3)]
    alone = [torch.from_numpy(rng.random((2, h, w))).float() for h, w in sizes]
    canvas = torch.zeros(len(sizes), 2, 9, 7)
    for slot, values in zip(canvas, alone, strict=True):
        slot[:, : values.shape[1], : values.shape[2]] = values
    batched = minimum_barrier_distance(canvas, sizes, sweeps=3)
    for index, values in enumerate(alone):
        height, width = values.shape[1:]
        expected = minimum_barrier_distance(values[None], sweeps=3)[0]
        assert torch.equal(batched[index, :, :height, :width], expected)
        assert torch.isinf(batched[index, :, height:]).all()
        assert torch.isinf(batched[index, :, :, width:]).all()


def test_reconstruction_matches_skimage() -> None:
    rng = np.random.default_rng(6)
    masks = [rng.random(shape).astype(np.float32) for shape in [(20, 30), (33, 17), (1, 5)]]
    markers = [np.minimum(mask, rng.random(mask.shape).astype(np.float32) * 0.6) for mask in masks]
    results = _reconstruct_by_dilation(
        [torch.from_numpy(m) for m in markers], [torch.from_numpy(m) for m in masks]
    )
    for result, marker, mask in zip(results, markers, masks, strict=True):
        expected = reconstruction(marker, mask, method="dilation")
        # exact: reconstruction only selects values (max / min), it computes none
        np.testing.assert_array_equal(result.numpy(), expected.astype(np.float32))


def test_dilation_matches_max_pool() -> None:
    rng = np.random.default_rng(7)
    saliency = torch.from_numpy(rng.random((23, 31)).astype(np.float32))
    for radius in (0, 1, 4, 20):
        pooled = F.max_pool2d(saliency[None, None], 2 * radius + 1, stride=1, padding=radius)
        assert torch.equal(_dilate(saliency, radius), pooled[0, 0])  # max only: exact


def test_disc_is_salient_and_scores_well() -> None:
    rng = np.random.default_rng(8)
    image, disc = disc_scene(96, 120, rng)
    (saliency,) = compute_saliency([image], **MBPLUS)
    assert saliency[disc].mean() > 200
    assert saliency[~disc].mean() < 30
    accumulator = SaliencyAccumulator()
    accumulator.update(saliency, disc)
    scores = accumulator.result()
    assert scores.mae < 0.05
    assert scores.max_fbeta > 0.95


def test_batched_equals_one_at_a_time_and_is_deterministic() -> None:
    rng = np.random.default_rng(9)
    shapes = [(40, 52), (52, 40), (40, 52), (90, 70), (17, 23), (64, 64)]
    images = [disc_scene(h, w, rng)[0] for h, w in shapes[:3]]
    images += [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes[3:]]
    settings = {"max_side": 64, "sweeps": 2, "boundary_width": 5}  # (90, 70) is downscaled
    batched = compute_saliency(images, **settings)
    again = compute_saliency(images, **settings)
    for image, result, repeat in zip(images, batched, again, strict=True):
        assert result.dtype == np.uint8
        assert result.shape == image.shape[:2]
        assert np.array_equal(result, repeat)
        assert np.array_equal(result, compute_saliency([image], **settings)[0])
    streamed = list(iter_saliency(iter(images), batch_size=4, **settings))
    assert all(np.array_equal(a, b) for a, b in zip(streamed, batched, strict=True))


def test_chunking_does_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(30, 40), (40, 30)] * 3]
    whole = compute_saliency(images, **MBPLUS)
    monkeypatch.setattr(saliency_module, "MAX_CHUNK_PIXELS", 2 * 40 * 40)
    chunked = compute_saliency(images, **MBPLUS)
    assert all(np.array_equal(a, b) for a, b in zip(whole, chunked, strict=True))


def test_degenerate_and_invalid_inputs() -> None:
    assert compute_saliency([], **MBPLUS) == []
    tiny = compute_saliency(
        [np.full((1, 1, 3), 7, np.uint8), np.zeros((2, 9, 3), np.uint8)], **MBPLUS
    )
    assert [m.shape for m in tiny] == [(1, 1), (2, 9)]
    with pytest.raises(ValueError):
        compute_saliency([np.zeros((4, 4), np.uint8)], **MBPLUS)
    with pytest.raises(ValueError):
        compute_saliency([np.zeros((4, 4, 3), np.float32)], **MBPLUS)
    with pytest.raises(ValueError):
        compute_saliency([np.zeros((4, 4, 3), np.uint8)], **{**MBPLUS, "sweeps": 0})


def hand_scores(valid: np.ndarray | None = None):
    """Scores of the 2x2 example worked out in the tests below."""
    accumulator = SaliencyAccumulator()
    saliency = np.array([[255, 128], [0, 64]], np.uint8)
    foreground = np.array([[True, False], [True, False]])
    accumulator.update(saliency, foreground, valid)
    return accumulator.result()


def test_metrics_by_hand() -> None:
    # Foreground values {255, 0}, background {128, 64}. Salient when value >= t:
    # t = 0: P 1/2, R 1; t 1..64: P 1/3, R 1/2; t 65..128: P 1/2, R 1/2; t 129..255: P 1, R 1/2
    scores = hand_scores()
    assert scores.mae == pytest.approx((0 + 128 / 255 + 1 + 64 / 255) / 4)
    expected_precision = [1 / 2] + [1 / 3] * 64 + [1 / 2] * 64 + [1.0] * 127
    expected_recall = [1.0] + [1 / 2] * 255
    np.testing.assert_allclose(scores.precision, expected_precision)
    np.testing.assert_allclose(scores.recall, expected_recall)
    # F = 1.3 P R / (0.3 P + R): 0.5652, 0.3611, 0.5, 0.8125
    assert scores.max_fbeta == pytest.approx(1.3 * 0.5 / (0.3 + 0.5))
    assert scores.best_threshold == 129


def test_metrics_exclude_invalid_pixels() -> None:
    # Dropping the missed foreground pixel (value 0) leaves a perfect separation at t = 129
    valid = np.array([[True, True], [False, True]])
    scores = hand_scores(valid)
    assert scores.mae == pytest.approx((0 + 128 / 255 + 64 / 255) / 3)
    assert scores.max_fbeta == pytest.approx(1.0)
    assert scores.best_threshold == 129


def test_metrics_edge_cases() -> None:
    accumulator = SaliencyAccumulator()
    # Nothing predicted above t = 0: precision is 0 there, by definition
    accumulator.update(np.zeros((2, 2), np.uint8), np.array([[True, False], [False, False]]))
    # No foreground: counts for MAE only
    accumulator.update(np.full((2, 2), 51, np.uint8), np.zeros((2, 2), bool))
    # No valid pixel: ignored entirely
    accumulator.update(np.full((2, 2), 9, np.uint8), np.ones((2, 2), bool), np.zeros((2, 2), bool))
    scores = accumulator.result()
    assert scores.mae == pytest.approx((1 / 4 + 0.2) / 2)
    assert scores.precision == [1 / 4] + [0.0] * 255
    assert scores.recall == [1.0] + [0.0] * 255
    with pytest.raises(ValueError):
        SaliencyAccumulator().result()


def test_metrics_match_a_per_threshold_loop() -> None:
    rng = np.random.default_rng(10)
    accumulator = SaliencyAccumulator()
    maes, precisions, recalls = [], [], []
    for _ in range(5):
        saliency = rng.integers(0, 256, (13, 17)).astype(np.uint8)
        foreground = rng.random((13, 17)) < 0.3
        valid = rng.random((13, 17)) < 0.8
        accumulator.update(saliency, foreground, valid)
        values, truth = saliency[valid].astype(float), foreground[valid]
        maes.append(np.abs(values / 255 - truth).mean())
        predicted = [values >= t for t in range(256)]
        precisions.append([(p & truth).sum() / p.sum() if p.any() else 0.0 for p in predicted])
        recalls.append([(p & truth).sum() / truth.sum() for p in predicted])
    precision, recall = np.mean(precisions, axis=0), np.mean(recalls, axis=0)
    pairs = zip(precision, recall, strict=True)
    fbeta = np.array([1.3 * p * r / (0.3 * p + r) if p + r else 0.0 for p, r in pairs])
    scores = accumulator.result()
    assert scores.mae == pytest.approx(np.mean(maes))
    np.testing.assert_allclose(scores.precision, precision)
    np.testing.assert_allclose(scores.recall, recall)
    assert scores.max_fbeta == pytest.approx(fbeta.max())
    assert scores.best_threshold == int(np.argmax(fbeta))
