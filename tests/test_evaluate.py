"""The evaluate stage's library: predictions written, confusions summed, pictures drawn."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mcis_core.common.io import atomic_dir, read_gray, read_rgb, shared_scratch
from mcis_core.common.layout import VAL, fine_mask_path, image_path, read_split, voc_palette
from mcis_core.common.paths import label_path
from mcis_core.dataset.voc import VOC_CLASSES
from mcis_core.evaluate.evaluation import (
    colourise,
    confusion_image,
    evaluate_split,
    overlay,
    predict,
)
from mcis_core.training.process import Process, shared_atomic_dir
from tests.params import section

NUM_SEG_CLASSES = len(VOC_CLASSES) + 1  # the classes and the background
PARAMS = replace(section("evaluate"), scales=(1.0,), window=64, flip=False, examples=2)
CPU = Process(rank=0, world=1, device=torch.device("cpu"))


@dataclass(frozen=True)
class ColourNetConfig:
    """The one config field evaluate_split reads from a network."""

    num_classes: int = NUM_SEG_CLASSES


class ColourNet(nn.Module):
    """A pointwise 'segmenter' at stride 1: class logits from the RGB values."""

    def __init__(self) -> None:
        super().__init__()
        self.config = ColourNetConfig()
        self.conv = nn.Conv2d(3, NUM_SEG_CLASSES, 1)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator))
            self.conv.bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(images)


@pytest.fixture(scope="module")
def voc(tiny_voc: Callable[..., Path]) -> Path:
    return tiny_voc(2, 2, 3, (40, 52))


def test_predictions_are_written_and_scored_against_a_brute_force_count(
    voc: Path, tmp_path: Path
) -> None:
    names = read_split(voc, VAL)
    with atomic_dir(tmp_path / "pred") as out:
        result = evaluate_split(ColourNet(), voc, names, out, PARAMS, with_truth=True, process=CPU)
    expected_plain = np.zeros((NUM_SEG_CLASSES, NUM_SEG_CLASSES), np.int64)
    expected_crf = np.zeros_like(expected_plain)
    for name in names:
        saved = read_gray(label_path(tmp_path / "pred", name))
        plain, refined = predict(ColourNet(), read_rgb(image_path(voc, name)), PARAMS)
        assert np.array_equal(saved, refined)  # the CRF labels are the ones saved
        truth = read_gray(fine_mask_path(voc, name))
        for t, p, r in zip(truth.ravel(), plain.ravel(), refined.ravel(), strict=True):
            if t != 255:
                expected_plain[t, p] += 1
                expected_crf[t, r] += 1
    assert np.array_equal(result.confusion, expected_plain)
    assert np.array_equal(result.confusion_crf, expected_crf)
    assert list(result.overlays) == names[:2]


def test_the_shared_folder_has_a_name_other_processes_know(tmp_path: Path) -> None:
    dest = tmp_path / "pred"
    stale = shared_scratch(dest)
    stale.mkdir()
    (stale / "left_by_a_killed_run.png").touch()
    with shared_atomic_dir(dest, CPU) as out:
        assert out == stale and not any(out.iterdir())
        (out / "a.png").touch()
    assert [p.name for p in tmp_path.iterdir()] == ["pred"]
    assert [p.name for p in dest.iterdir()] == ["a.png"]


def test_without_ground_truth_only_predictions_are_written(voc: Path, tmp_path: Path) -> None:
    names = read_split(voc, VAL)
    with atomic_dir(tmp_path / "pred") as out:
        result = evaluate_split(ColourNet(), voc, names, out, PARAMS, with_truth=False, process=CPU)
    assert result.confusion is None and result.confusion_crf is None and not result.overlays
    assert sorted(p.stem for p in (tmp_path / "pred").iterdir()) == sorted(names)


def test_a_crf_without_iterations_changes_nothing(voc: Path) -> None:
    rgb = read_rgb(image_path(voc, read_split(voc, VAL)[0]))
    plain, refined = predict(
        ColourNet(), rgb, replace(PARAMS, crf=replace(PARAMS.crf, iterations=0))
    )
    assert np.array_equal(plain, refined)


def test_overlay_puts_image_truth_and_prediction_side_by_side() -> None:
    rgb = np.full((2, 3, 3), 7, np.uint8)
    truth = np.array([[0, 1, 255], [15, 0, 0]], np.uint8)
    pred = np.array([[1, 1, 1], [0, 0, 20]], np.uint8)
    picture = overlay(rgb, truth, pred)
    palette = np.array(voc_palette(), np.uint8).reshape(-1, 3)
    assert picture.shape == (2, 9, 3)
    assert np.array_equal(picture[:, :3], rgb)
    assert np.array_equal(picture[0, 3:6], palette[[0, 1, 255]])
    assert np.array_equal(picture[1, 6:], palette[[0, 0, 20]])
    assert np.array_equal(colourise(truth)[1, 0], [192, 128, 128])  # person


def test_confusion_image_shows_row_shares() -> None:
    confusion = np.zeros((21, 21), np.int64)
    confusion[0, 0], confusion[0, 1], confusion[2, 2] = 3, 1, 5  # row 1 has no pixels
    cells = np.asarray(confusion_image(confusion))[::16, ::16]
    assert cells.shape == (21, 21)
    assert cells[0, 0] == 191 and cells[0, 1] == 64 and cells[2, 2] == 255
    assert cells[1].max() == 0
