"""Tests of the MCIS pseudo-label rules (mcis_core.pseudo_gt.rules, docs/method.md §5).

Every expected label map is written out by hand; the comments give the scores behind it:
background = 1 - sal/255 (sal 200 -> 0.22, floored to 0; sal 5 -> 0.98), class k at k + 1.
"""

from __future__ import annotations

from dataclasses import astuple, replace

import pytest
import torch

from mcis_core.dataset.voc import VOC_CLASSES
from mcis_core.pseudo_gt.params import PseudoLabelRules
from mcis_core.pseudo_gt.rules import minmax_scale, pseudo_label
from tests.params import section

RULES = section("pseudo_gt").rules
NUM_CLASSES = len(VOC_CLASSES)
X = 255  # ignored


def labels(
    sal: list, maps: list, classes: list[int], rules: PseudoLabelRules = RULES
) -> list[list[int]]:
    """pseudo_label on uint8 tensors built from nested lists, back as nested lists."""
    sal_t = torch.tensor(sal, dtype=torch.uint8)
    maps_t = torch.tensor(maps, dtype=torch.uint8).reshape(len(classes), *sal_t.shape)
    return pseudo_label(sal_t, maps_t, classes, NUM_CLASSES, rules).tolist()


def test_params_yaml_holds_the_spec_values() -> None:
    assert astuple(section("pseudo_gt").rules) == (0.3, 0.99, 0.95, 32, 0.01)


def test_low_saliency_gives_background() -> None:
    # class 0 normalised: [[0, .4], [.8, 1]]; background [[1, .92], [.96, .22 -> 0]]
    sal = [[0, 20], [10, 200]]
    maps = [[[0, 40], [80, 100]]]
    assert labels(sal, maps, [0]) == [[0, 0], [0, 1]]


def test_highest_score_wins() -> None:
    # background floored; class 3 [[0, 1], [.5, 0]], class 7 [[1, 0], [.6, 0]];
    # (1, 1): every score 0 -> background, sal_att 200 -> ignored
    sal = [[200, 200], [200, 200]]
    maps = [[[0, 100], [50, 0]], [[100, 0], [60, 0]]]
    assert labels(sal, maps, [3, 7]) == [[8, 4], [8, X]]


def test_ties_go_to_the_lowest_label() -> None:
    # class 7 [0, .5, 1] listed first, class 3 [1, .5, 0]: the .5 tie goes to class 3
    sal = [[200, 200, 200]]
    maps = [[[0, 50, 100]], [[100, 50, 0]]]
    assert labels(sal, maps, [7, 3]) == [[4, 4, 8]]


def test_score_floor() -> None:
    # background 0.2 and class 0 at [0, .25, .3, 1]: .25 is floored, so (0, 1) becomes
    # background (ignored: sal_att 204 >= 32) instead of class 0; .3 is kept
    sal = [[204, 204, 204, 204]]
    maps = [[[0, 25, 30, 100]]]
    assert labels(sal, maps, [0]) == [[X, X, 1, 1]]
    lenient = replace(RULES, salient_background=256)
    assert labels(sal, maps, [0], lenient) == [[0, 0, 1, 1]]


def test_more_than_one_score_above_conflict_is_ignored() -> None:
    # class 0 [[1, 0, 0], [0, .5, .98]], class 1 [[1, 1, 1], [0, 0, 1]];
    # (0, 2): background 1 and class 1 at 1 conflict; (1, 2): .98 is no conflict;
    # (1, 0): background with sal_att 200
    sal = [[200, 200, 0], [200, 200, 200]]
    maps = [[[100, 0, 0], [0, 50, 98]], [[100, 100, 100], [0, 0, 100]]]
    assert labels(sal, maps, [0, 1]) == [[X, 2, X], [X, 1, 2]]


def test_conflict_needs_scores_strictly_above_the_threshold() -> None:
    # classes 3 and 7 both exactly .5 at (0, 1): not above conflict .5, the tie goes to 3
    sal = [[200, 200, 200]]
    maps = [[[0, 50, 100]], [[100, 50, 0]]]
    assert labels(sal, maps, [7, 3], replace(RULES, conflict=0.5)) == [[4, 4, 8]]
    assert labels(sal, maps, [7, 3], replace(RULES, conflict=0.49)) == [[4, X, 8]]


def test_salient_background_is_ignored() -> None:
    # top row: background with sal 40, 31, 32 against the threshold 32;
    # class 0 bottom row [.97, 1, .9]: at sal 5 background (.98) wins both .97 and .9,
    # but .97 > .95 raises sal_att to 255 while .9 leaves it at 5
    sal = [[40, 31, 32], [5, 200, 5]]
    maps = [[[0, 0, 0], [97, 100, 90]]]
    assert labels(sal, maps, [0]) == [[X, 0, X], [X, 1, 0]]


def test_sal_att_takes_the_maximum_over_the_image_classes() -> None:
    # class 2 [0, 1, 0, 0], class 5 [0, 0, .97, 1]: class 5 raises sal_att at (0, 2)
    sal = [[0, 200, 5, 200]]
    maps = [[[0, 100, 0, 0]], [[0, 0, 97, 100]]]
    assert labels(sal, maps, [2, 5]) == [[0, 3, X, 6]]


def one_object_pixel(width: int) -> tuple[list, list]:
    """A 10 x width image of background (sal 0) with one class-0 pixel at (3, 4)."""
    sal = [[0] * width for _ in range(10)]
    maps = [[[0] * width for _ in range(10)]]
    sal[3][4] = 200
    maps[0][3][4] = 100
    return sal, maps


def test_whole_image_ignored_under_min_foreground() -> None:
    sal, maps = one_object_pixel(11)  # 1 / 110 < 1%
    assert labels(sal, maps, [0]) == [[X] * 11 for _ in range(10)]
    sal, maps = one_object_pixel(10)  # 1 / 100 = 1% is enough
    expected = [[0] * 10 for _ in range(10)]
    expected[3][4] = 1
    assert labels(sal, maps, [0]) == expected


def test_foreground_fraction_is_counted_after_the_ignores() -> None:
    # class 0 [[1, .5], [0, 0]], class 1 [[1, 0], [0, 0]]: (0, 0) is a conflict, so one
    # object pixel of four remains (two before the conflict rule)
    sal = [[200, 200], [200, 200]]
    maps = [[[100, 50], [0, 0]], [[100, 0], [0, 0]]]
    assert labels(sal, maps, [0, 1], replace(RULES, min_foreground=0.5)) == [[X, X], [X, X]]
    assert labels(sal, maps, [0, 1], replace(RULES, min_foreground=0.25)) == [[X, 1], [X, X]]


def test_min_max_normalisation() -> None:
    # 10..110 acts as 0..1: 60 -> .5 (not 60/255 = .24, floored) and 107 -> .97 (> .95)
    sal = [[0, 200, 5, 200]]
    maps = [[[10, 60, 107, 110]]]
    assert labels(sal, maps, [0]) == [[0, 1, X, 1]]


def test_minmax_scale() -> None:
    maps = torch.tensor([[[10.0, 60.0, 110.0]], [[7.0, 7.0, 7.0]]])
    expected = torch.tensor([[[0.0, 0.5, 1.0]], [[0.0, 0.0, 0.0]]])
    assert torch.equal(minmax_scale(maps), expected)  # exact: 50 / 100 and 100 / 100 do not round


def test_constant_map_scores_zero() -> None:
    # class 0 constant -> 0: no conflict with background 1 at (0, 0), no tie at (0, 1)
    sal = [[0, 200]]
    maps = [[[50, 50]], [[0, 100]]]
    assert labels(sal, maps, [0, 1]) == [[0, 2]]


@pytest.mark.parametrize(("cls", "label"), [(0, 1), (14, 15), (19, 20)])
def test_class_k_gets_label_k_plus_one(cls: int, label: int) -> None:
    assert labels([[200, 0]], [[[100, 0]]], [cls]) == [[label, 0]]


def test_image_without_classes() -> None:
    sal = [[0, 100]]
    assert labels(sal, [], []) == [[X, X]]  # no object pixel at all
    assert labels(sal, [], [], replace(RULES, min_foreground=0.0)) == [[0, X]]


def test_output_dtype_shape_and_inputs_untouched() -> None:
    sal = torch.tensor([[0, 200, 5], [200, 200, 0]], dtype=torch.uint8)
    maps = torch.tensor([[[0, 100, 0], [50, 20, 0]]], dtype=torch.uint8)
    sal_copy, maps_copy = sal.clone(), maps.clone()
    out = pseudo_label(sal, maps, [4], NUM_CLASSES, RULES)
    assert out.dtype == torch.uint8
    assert out.shape == (2, 3)
    assert out.device == sal.device
    assert torch.equal(sal, sal_copy) and torch.equal(maps, maps_copy)


def test_float_and_uint8_inputs_agree() -> None:
    gen = torch.Generator().manual_seed(0)
    sal = torch.randint(0, 256, (16, 16), generator=gen, dtype=torch.uint8)
    maps = torch.randint(0, 256, (3, 16, 16), generator=gen, dtype=torch.uint8)
    expected = pseudo_label(sal, maps, [1, 8, 14], NUM_CLASSES, RULES)
    for dtype in (torch.float32, torch.float64):
        out = pseudo_label(sal.to(dtype), maps.to(dtype), [1, 8, 14], NUM_CLASSES, RULES)
        assert torch.equal(out, expected)


@pytest.mark.parametrize(
    ("sal_shape", "maps_shape", "classes", "message"),
    [
        ((2, 2), (2, 2, 2), [0], "2 localization maps for 1 classes"),
        ((2, 3), (1, 2, 2), [0], r"locmaps are \(2, 2\) but saliency is \(2, 3\)"),
        ((2, 2), (1, 2, 2), [20], "class indices must be in 0..19"),
        ((2, 2), (1, 2, 2), [-1], "class indices must be in 0..19"),
        ((2, 2), (2, 2, 2), [3, 3], "class indices repeat"),
        ((1, 2, 2), (1, 2, 2), [0], "saliency must be a non-empty"),
        ((0, 2), (1, 0, 2), [0], "saliency must be a non-empty"),
        ((2, 2), (2, 2), [0], r"locmaps must be \(P, H, W\)"),
    ],
)
def test_invalid_inputs_raise(
    sal_shape: tuple, maps_shape: tuple, classes: list[int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        pseudo_label(torch.zeros(sal_shape), torch.zeros(maps_shape), classes, NUM_CLASSES, RULES)


def test_maps_on_another_device_raise() -> None:
    maps = torch.zeros((1, 2, 2), device="meta")
    with pytest.raises(ValueError, match="locmaps on meta but saliency on cpu"):
        pseudo_label(torch.zeros((2, 2)), maps, [0], NUM_CLASSES, RULES)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    gen = torch.Generator().manual_seed(1)
    sal = torch.randint(0, 256, (32, 24), generator=gen, dtype=torch.uint8)
    maps = torch.randint(0, 256, (2, 32, 24), generator=gen, dtype=torch.uint8)
    out = pseudo_label(sal.cuda(), maps.cuda(), [6, 11], NUM_CLASSES, RULES)
    assert out.is_cuda
    assert torch.equal(out.cpu(), pseudo_label(sal, maps, [6, 11], NUM_CLASSES, RULES))
