"""Tests of the pseudo_gt stage library (mcis_core.pseudo_gt, docs/method.md §5): labelling
a folder of saliency and localization maps, missing inputs, and the quality of the labels.

The inputs are 6 x 8 maps written by hand; the comments give the scores behind each label
(background = 1 - sal/255, class k at label k + 1, maps min-max normalised).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mcis_core.common.errors import DatasetError
from mcis_core.common.io import atomic_dir, read_gray, read_names, save_gray
from mcis_core.common.layout import FINE_MASK_DIR, IGNORE_INDEX, save_mask, voc_palette
from mcis_core.common.paths import locmap_path
from mcis_core.dataset.voc import VOC_CLASSES
from mcis_core.pseudo_gt.labels import label_image, make_pseudo_labels, missing_inputs
from mcis_core.pseudo_gt.metrics import evaluate_pseudo_labels
from mcis_core.pseudo_gt.rules import pseudo_label
from tests.params import section

RULES = section("pseudo_gt").rules
NUM_CLASSES = len(VOC_CLASSES)
X = IGNORE_INDEX
H, W = 6, 8
PIXELS = H * W


def columns(values: list[int]) -> np.ndarray:
    """(H, W) uint8 map whose column x holds values[x]."""
    return np.tile(np.array(values, dtype=np.uint8), (H, 1))


# name -> (classes, saliency, {class: localization map})
INPUTS = {
    # salient left half, class 2 there: labels 3 | background; nothing ignored
    "img_a": ([2], columns([255] * 4 + [0] * 4), {2: columns([255] * 4 + [0] * 4)}),
    # all salient, a constant map (normalised to 0): every score 0 -> background, sal_att 255
    # -> every pixel ignored
    "img_b": ([5], columns([255] * 8), {5: columns([80] * 8)}),
    # classes 4 and 7 both 1 at column 3 -> conflict, ignored; column 7: background 0.61 with
    # saliency 100 >= 32 -> ignored; columns 0-2 class 4 (label 5), 4-6 background
    "img_c": (
        [4, 7],
        columns([255] * 4 + [0] * 3 + [100]),
        {4: columns([255] * 4 + [0] * 4), 7: columns([0, 0, 0, 255, 0, 0, 0, 0])},
    ),
    # no class: all background, no object pixel -> the whole image ignored
    "img_d": ([], columns([0] * 8), {}),
}
EXPECTED = {
    "img_a": columns([3] * 4 + [0] * 4),
    "img_b": columns([X] * 8),
    "img_c": columns([5, 5, 5, X, 0, 0, 0, X]),
    "img_d": columns([X] * 8),
}
NAMES = list(INPUTS)
LABELS = {name: classes for name, (classes, _, _) in INPUTS.items()}


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """(saliency folder, localization map folder) holding INPUTS."""
    sal_dir, maps_dir = tmp_path / "saliency", tmp_path / "locmaps"
    sal_dir.mkdir()
    maps_dir.mkdir()
    for name, (_, saliency, maps) in INPUTS.items():
        save_gray(sal_dir / f"{name}.png", saliency)
        for c, plane in maps.items():
            save_gray(locmap_path(maps_dir, name, c), plane)
    return sal_dir, maps_dir


def direct_label(name: str) -> np.ndarray:
    """pseudo_label applied to the in-memory inputs of `name`."""
    classes, saliency, maps = INPUTS[name]
    planes = [torch.from_numpy(maps[c]) for c in classes]
    stacked = torch.stack(planes) if planes else torch.zeros((0, H, W), dtype=torch.uint8)
    return pseudo_label(torch.from_numpy(saliency), stacked, classes, NUM_CLASSES, RULES).numpy()


def test_hand_expectations_agree_with_the_rules() -> None:
    for name in NAMES:
        assert np.array_equal(direct_label(name), EXPECTED[name]), name


@pytest.mark.parametrize("workers", [1, 2])
def test_make_pseudo_labels_writes_palette_pngs(
    folders: tuple[Path, Path], tmp_path: Path, workers: int
) -> None:
    sal_dir, maps_dir = folders
    out = tmp_path / "pseudo_gt"
    with atomic_dir(out) as tmp:
        summary = make_pseudo_labels(
            NAMES, LABELS, NUM_CLASSES, sal_dir, maps_dir, tmp, RULES, False, workers
        )

    assert sorted(p.name for p in out.iterdir()) == [f"{n}.png" for n in NAMES] + ["skipped.txt"]
    assert (out / "skipped.txt").read_text() == ""
    for name in NAMES:
        with Image.open(out / f"{name}.png") as img:
            assert img.format == "PNG"
            assert img.mode == "P"
            assert img.getpalette() == voc_palette()
            label = np.asarray(img)
        assert np.array_equal(label, direct_label(name)), name
        assert np.array_equal(label, EXPECTED[name]), name
    assert summary.skipped == []
    assert summary.fully_ignored == 2  # img_b and img_d
    assert summary.ignored_pixels == 0 + PIXELS + 2 * H + PIXELS
    assert summary.pixels == 4 * PIXELS


def test_make_pseudo_labels_replaces_an_old_output(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    sal_dir, maps_dir = folders
    out = tmp_path / "pseudo_gt"
    out.mkdir()
    (out / "stale.png").write_bytes(b"old")
    with atomic_dir(out) as tmp:
        make_pseudo_labels(
            NAMES[:1], LABELS, NUM_CLASSES, sal_dir, maps_dir, tmp, RULES, False, workers=1
        )
    assert sorted(p.name for p in out.iterdir()) == ["img_a.png", "skipped.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locmaps", "pseudo_gt", "saliency"]


def test_missing_inputs_lists_the_absent_files(folders: tuple[Path, Path]) -> None:
    sal_dir, maps_dir = folders
    assert missing_inputs("img_c", [4, 7], sal_dir, maps_dir) == []
    (maps_dir / "img_c_7.png").unlink()
    (sal_dir / "img_c.png").unlink()
    assert missing_inputs("img_c", [4, 7], sal_dir, maps_dir) == [
        sal_dir / "img_c.png",
        maps_dir / "img_c_7.png",
    ]
    assert missing_inputs("img_c", [4], sal_dir, maps_dir) == [sal_dir / "img_c.png"]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("missing", ["saliency/img_c.png", "locmaps/img_c_7.png"])
def test_a_missing_input_raises_and_writes_nothing(
    folders: tuple[Path, Path], tmp_path: Path, missing: str, workers: int
) -> None:
    sal_dir, maps_dir = folders
    (tmp_path / missing).unlink()
    out = tmp_path / "pseudo_gt"
    with pytest.raises(DatasetError) as raised, atomic_dir(out) as tmp:
        make_pseudo_labels(
            NAMES, LABELS, NUM_CLASSES, sal_dir, maps_dir, tmp, RULES, False, workers
        )
    message = str(raised.value)
    assert str(tmp_path / missing) in message  # the missing file
    assert "img_c" in message.replace(str(tmp_path / missing), "")  # and the image, apart
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locmaps", "saliency"]  # no temporary


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("missing", ["saliency/img_c.png", "locmaps/img_c_7.png"])
def test_skip_missing_skips_the_image(
    folders: tuple[Path, Path], tmp_path: Path, missing: str, workers: int
) -> None:
    sal_dir, maps_dir = folders
    (tmp_path / missing).unlink()
    out = tmp_path / "pseudo_gt"
    with atomic_dir(out) as tmp:
        summary = make_pseudo_labels(
            NAMES, LABELS, NUM_CLASSES, sal_dir, maps_dir, tmp, RULES, True, workers
        )

    assert summary.skipped == ["img_c"]
    assert read_names(out / "skipped.txt") == ["img_c"]
    assert sorted(p.name for p in out.iterdir()) == [
        "img_a.png", "img_b.png", "img_d.png", "skipped.txt"
    ]  # fmt: skip
    for name in ("img_a", "img_b", "img_d"):
        assert np.array_equal(read_gray(out / f"{name}.png"), EXPECTED[name]), name
    assert summary.fully_ignored == 2
    assert summary.ignored_pixels == 2 * PIXELS
    assert summary.pixels == 3 * PIXELS


def test_a_map_of_another_size_than_the_saliency_raises(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    sal_dir, maps_dir = folders
    save_gray(maps_dir / "img_a_2.png", np.zeros((H, W + 1), dtype=np.uint8))
    out = tmp_path / "pseudo_gt"
    with pytest.raises(DatasetError, match="img_a_2.png"), atomic_dir(out) as tmp:
        make_pseudo_labels(
            NAMES, LABELS, NUM_CLASSES, sal_dir, maps_dir, tmp, RULES, False, workers=1
        )
    assert not out.exists()


def test_the_size_error_names_the_map_of_the_wrong_size(folders: tuple[Path, Path]) -> None:
    sal_dir, maps_dir = folders
    save_gray(maps_dir / "img_c_7.png", np.zeros((H, W + 1), dtype=np.uint8))
    with pytest.raises(DatasetError, match="img_c_7.png"):
        label_image("img_c", [4, 7], NUM_CLASSES, sal_dir, maps_dir, RULES)


# --- evaluate_pseudo_labels --------------------------------------------------------------------


def brute_force_quality(preds: list[np.ndarray], truths: list[np.ndarray]) -> dict:
    """mIoU (255 left out, and 255 as background), class IoU, precision, recall by pixel loops."""

    def ious(as_background: bool) -> list[float]:
        tp, in_truth, in_pred = [0] * 21, [0] * 21, [0] * 21
        for pred, truth in zip(preds, truths, strict=True):
            for p, t in zip(pred.ravel().tolist(), truth.ravel().tolist(), strict=True):
                if p == X and as_background:
                    p = 0
                if X in (p, t):
                    continue
                in_truth[t] += 1
                in_pred[p] += 1
                tp[t] += p == t
        return [
            tp[k] / (in_truth[k] + in_pred[k] - tp[k]) if in_truth[k] + in_pred[k] else math.nan
            for k in range(21)
        ]

    correct = labelled = valid = 0
    for pred, truth in zip(preds, truths, strict=True):
        for p, t in zip(pred.ravel().tolist(), truth.ravel().tolist(), strict=True):
            if t == X:
                continue
            valid += 1
            if p != X:
                labelled += 1
                correct += p == t
    class_iou = ious(as_background=False)
    present = [iou for iou in class_iou if not math.isnan(iou)]
    present_bg = [iou for iou in ious(as_background=True) if not math.isnan(iou)]
    return {
        "miou": sum(present) / len(present),
        "miou_ignored_as_background": sum(present_bg) / len(present_bg),
        "precision": correct / labelled,
        "recall": correct / valid,
        "class_iou": class_iou,
    }


def test_evaluate_pseudo_labels_against_brute_force(tmp_path: Path) -> None:
    voc, pseudo_dir = tmp_path / "voc", tmp_path / "pseudo_gt"
    (voc / FINE_MASK_DIR).mkdir(parents=True)
    pseudo_dir.mkdir()
    preds = {
        "p1": np.array([[0, 0, 3, 3], [0, X, 3, 3], [X, 0, 0, 8]], dtype=np.uint8),
        "p2": np.array([[1, 1, 0, 0], [1, 1, X, 0], [0, 0, 0, 0]], dtype=np.uint8),
    }
    truths = {
        "p1": np.array([[0, 0, 3, 3], [0, 3, 3, X], [0, 0, 8, 8]], dtype=np.uint8),
        "p2": np.array([[1, 1, 1, 0], [1, 0, 0, 0], [X, 0, 0, 0]], dtype=np.uint8),
        # skipped (no pseudo label): counting it would add class 12 with IoU 0
        "p3": np.array([[12, 12, 12, 12], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=np.uint8),
    }
    for name, truth in truths.items():
        save_mask(voc / FINE_MASK_DIR / f"{name}.png", truth)
    for name, pred in preds.items():
        save_mask(pseudo_dir / f"{name}.png", pred)

    quality = evaluate_pseudo_labels(voc, pseudo_dir, ["p1", "p2", "p3"], NUM_CLASSES)

    expected = brute_force_quality(list(preds.values()), [truths["p1"], truths["p2"]])
    for key in ("miou", "miou_ignored_as_background", "precision", "recall"):
        assert math.isclose(quality[key], expected[key], rel_tol=1e-12), key
    assert len(quality["class_iou"]) == 21
    for got, want in zip(quality["class_iou"], expected["class_iou"], strict=True):
        assert (math.isnan(got) and math.isnan(want)) or math.isclose(got, want, rel_tol=1e-12)
    assert math.isnan(quality["class_iou"][13])  # class 12 (label 13) was never counted
    assert quality["miou"] != quality["miou_ignored_as_background"]
    # by hand: 22 pixels with a valid truth, 19 of them labelled, 16 correct
    assert quality["precision"] == pytest.approx(16 / 19)
    assert quality["recall"] == pytest.approx(16 / 22)
