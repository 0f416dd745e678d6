"""Training of the segmentation network: poly lr, the loss, resume, determinism."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mcis_core.common.layout import (
    AUG_MASK_DIR,
    IGNORE_INDEX,
    TRAIN_AUG,
    VAL,
    read_classes,
    read_split,
)
from mcis_core.segmentation import train as segmentation_training
from mcis_core.segmentation.params import SegmentationParams
from mcis_core.segmentation.train import (
    export_segmentation,
    segmentation_loss,
    train_segmentation,
    training_fingerprint,
)
from mcis_core.training.checkpoints import Checkpoints
from mcis_core.training.optim import poly_lr
from mcis_core.training.process import Process
from tests.params import section

SEED = 0
CPU = Process(rank=0, world=1, device=torch.device("cpu"))
PARAMS = replace(
    section("segmentation"),
    backbone="narrow",
    width=0.0625,
    batch_norm=True,
    pretrained="none",
    crop_size=32,
    batch_size=4,
    accumulation=2,
    epochs=2,
    lr=0.01,
)
TRAIN_EPOCH = segmentation_training.train_epoch


@pytest.fixture(scope="module")
def voc(tiny_voc: Callable[..., Path]) -> Path:
    return tiny_voc(4, 6, 3, (40, 52))


def train(params: SegmentationParams, voc: Path, folder: Path) -> tuple[list, Checkpoints]:
    labels = voc / AUG_MASK_DIR
    fingerprint = training_fingerprint(params, SEED, voc, labels, voc / "no-classifier")
    checkpoints = Checkpoints(folder, fingerprint)
    names, val = read_split(voc, TRAIN_AUG), read_split(voc, VAL)
    num_classes = len(read_classes(voc))
    history = train_segmentation(
        params, SEED, voc, names, labels, val, num_classes, checkpoints, CPU
    )
    return history, checkpoints


@pytest.mark.parametrize(
    ("step", "expected"), [(0, 0.01), (50, 0.01 * 0.5**0.9), (100, 0.0), (75, 0.01 * 0.25**0.9)]
)
def test_poly_lr_by_hand(step: int, expected: float) -> None:
    assert poly_lr(0.01, step, 100, 0.9) == pytest.approx(expected)


def test_loss_is_the_mean_over_labelled_pixels() -> None:
    logits = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 3, (2, 4, 4), generator=torch.Generator().manual_seed(1))
    labels[0, :2] = IGNORE_INDEX
    by_pixel = [
        -F.log_softmax(logits[b, :, y, x], dim=0)[labels[b, y, x]]
        for b in range(2)
        for y in range(4)
        for x in range(4)
        if labels[b, y, x] != IGNORE_INDEX
    ]
    # float32 means of 24 terms summed in another order: a few ulps per term, relative
    assert float(segmentation_loss(logits, labels)) == pytest.approx(
        float(torch.stack(by_pixel).mean()), rel=1e-5
    )


def test_a_wholly_ignored_batch_gives_zero_loss_and_gradient() -> None:
    logits = torch.randn(2, 21, 3, 3, requires_grad=True)
    loss = segmentation_loss(logits, torch.full((2, 24, 24), IGNORE_INDEX))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_interrupted_run_resumes_to_the_same_weights(
    voc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history_a, checkpoints_a = train(PARAMS, voc, tmp_path / "a")

    def interrupt_in_epoch_1(*args: object, **kwargs: object) -> dict[str, float]:
        if kwargs.get("epoch", args[5]) == 1:
            raise KeyboardInterrupt
        return TRAIN_EPOCH(*args, **kwargs)

    monkeypatch.setattr(segmentation_training, "train_epoch", interrupt_in_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        train(PARAMS, voc, tmp_path / "b")
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["epoch_000.pt"]
    monkeypatch.setattr(segmentation_training, "train_epoch", TRAIN_EPOCH)
    history_b, checkpoints_b = train(PARAMS, voc, tmp_path / "b")

    assert history_b == history_a and [r["epoch"] for r in history_b] == [0, 1]
    state_a, state_b = checkpoints_a.load(1)["model"], checkpoints_b.load(1)["model"]
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert history_a[0]["train_loss"] > 0 and 0.0 <= history_a[1]["val_miou"] <= 1.0


def test_same_params_export_identical_model_files(voc: Path, tmp_path: Path) -> None:
    params = replace(PARAMS, epochs=1)
    exported = []
    for name in ("first", "second"):
        _, checkpoints = train(params, voc, tmp_path / name / "checkpoints")
        export_segmentation(params, checkpoints, read_classes(voc), tmp_path / name / "model.pt")
        exported.append((tmp_path / name / "model.pt").read_bytes())
    assert exported[0] == exported[1]
