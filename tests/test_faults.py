"""Fault injection: the real stages on a tiny configuration, each run given one fault. Every
case asserts the exit code, the message and the files left behind."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.test_dataset_prepare import _png, sbd_tgz, voc_tar
from tests.tiny import write_tiny_project

BUILD = ("check_params", "download", "saliency", "train_classifier", "locmaps", "pseudo_gt")
# three classifier epochs, so that two checkpoints are kept: use_epoch (1) and the last (2)
CLASSIFIER = {"classifier": {"epochs": 3, "use_epoch": 1, "lr_steps": [2]}}


def run(project: Path, stage: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m stages.<stage>` in `project`, as dvc.yaml runs it."""
    return subprocess.run(
        [sys.executable, "-m", f"stages.{stage}"],
        cwd=project,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
    )


def ok(project: Path, stage: str, env: dict | None = None) -> str:
    result = run(project, stage, env)
    assert result.returncode == 0, f"{stage}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def fails(project: Path, stage: str) -> str:
    """The one error line of a failing stage (no traceback)."""
    result = run(project, stage)
    assert result.returncode == 1, f"{stage}:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return result.stderr[result.stderr.index("error: ") :]


def set_params(project: Path, changes: dict[str, object]) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = params
        for parent in parents:
            node = node[parent]
        node[key] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Hidden scratch entries an interrupted or failed stage could leave."""
    return sorted(p.name for p in folder.rglob(".*.tmp-*"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project with every stage up to pseudo_gt run once."""
    project = tmp_path_factory.mktemp("built")
    write_tiny_project(project, CLASSIFIER)
    for stage in BUILD:
        ok(project, stage)
    return project


@pytest.fixture
def project(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built project."""
    copy = tmp_path / "project"
    shutil.copytree(built, copy)
    return copy


# --- resuming: what the checkpoints were built from ------------------------------------------


def test_segmentation_retrains_when_its_initial_classifier_changes(project: Path) -> None:
    ok(project, "train_segmentation")
    model = project / "data/segmentation/model.pt"
    before = md5(model)
    set_params(project, {"classifier.lr": 0.02})
    ok(project, "train_classifier")
    out = ok(project, "train_segmentation")
    assert "resuming" not in out
    assert "belongs to another configuration" in out
    assert md5(model) != before


def test_a_param_that_changes_nothing_keeps_the_checkpoints(project: Path) -> None:
    folder = project / "data/classifier/checkpoints"
    before = {p.name: md5(p) for p in folder.iterdir()}
    model = md5(project / "data/classifier/model.pt")
    set_params(project, {"classifier.num_workers": 1, "classifier.nproc": 1})
    out = ok(project, "train_classifier")
    assert "resuming after epoch 2" in out and "epoch 0:" not in out
    assert {p.name: md5(p) for p in folder.iterdir()} == before
    assert md5(project / "data/classifier/model.pt") == model


def test_a_corrupt_newest_checkpoint_is_skipped(project: Path) -> None:
    folder = project / "data/classifier/checkpoints"
    newest = folder / "epoch_002.pt"
    intact = md5(newest)
    newest.write_bytes(newest.read_bytes()[:1000])
    out = ok(project, "train_classifier")
    assert f"warning: skipping unreadable checkpoint {newest.relative_to(project)}" in out
    assert "resuming after epoch 1" in out
    assert md5(newest) == intact  # retrained, bit for bit


def test_equal_training_state_gives_equal_checkpoint_bytes(project: Path) -> None:
    folder = project / "data/classifier/checkpoints"
    before = {p.name: md5(p) for p in folder.iterdir()}
    shutil.rmtree(folder)
    ok(project, "train_classifier")
    assert {p.name: md5(p) for p in folder.iterdir()} == before


# --- values that would make a stage do nothing or nonsense ------------------------------------


def test_a_batch_larger_than_the_training_set_is_refused(project: Path) -> None:
    folder = project / "data/classifier/checkpoints"
    before = {p.name: md5(p) for p in folder.iterdir()}
    set_params(project, {"classifier.batch_size": 64})
    message = fails(project, "train_classifier")
    assert "classifier.batch_size: 64 is more than the 14 training images" in message
    assert {p.name: md5(p) for p in folder.iterdir()} == before  # nothing trained or removed


def test_a_value_out_of_range_stops_check_params(project: Path) -> None:
    set_params(project, {"classifier.lr": 0})
    message = fails(project, "check_params")
    assert message.startswith("error: classifier.lr: 0 is not allowed: must be > 0")


# --- bad data, found where it enters ----------------------------------------------------------


def voc_project(project: Path, replace: dict[str, bytes]) -> None:
    """Point the project's download stage at a local VOC-shaped archive with `replace`d files."""
    (project / "archives").mkdir()
    voc, sbd = project / "archives/voc.tar", project / "archives/benchmark.tgz"
    voc.write_bytes(voc_tar(replace=replace))
    sbd.write_bytes(sbd_tgz())
    shutil.rmtree(project / "data")
    remote = {"md5": None}
    set_params(
        project,
        {
            "data.source": "voc2012",
            "data.voc2012": {
                "voc_archive": {**remote, "filename": "voc.tar", "urls": [str(voc)]},
                "aug_archive": {**remote, "filename": "benchmark.tgz", "urls": [str(sbd)]},
                "aug_format": "sbd",
            },
        },
    )


def test_a_truncated_jpeg_is_named_by_download(project: Path) -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 10, 10)).save(jpeg, format="JPEG")
    voc_project(project, {"JPEGImages/2007_000002.jpg": jpeg.getvalue()[:-40]})
    message = fails(project, "download")
    assert "2007_000002.jpg: unreadable image" in message
    assert not (project / "data/voc").exists() and leftovers(project / "data") == []


def test_an_out_of_range_mask_id_is_caught_by_download(project: Path) -> None:
    mask = np.zeros((6, 8), np.uint8)
    mask[1:3, 1:3] = 77
    voc_project(project, {"SegmentationClass/2007_000001.png": _png(mask)})
    message = fails(project, "download")
    assert "2007_000001.png: labels [77] are neither 0..20 nor 255" in message
    assert not (project / "data/voc").exists() and leftovers(project / "data") == []


@pytest.mark.parametrize("bad", ["-1", "25", "x"])
def test_a_bad_image_level_label_is_named(project: Path, bad: str) -> None:
    labels = project / "data/voc/cls_labels.txt"
    lines = labels.read_text().splitlines()
    name = lines[0].split()[0]
    labels.write_text("\n".join([f"{name} {bad}", *lines[1:]]) + "\n")
    message = fails(project, "train_classifier")
    assert f"cls_labels.txt:1: class ids ['{bad}'] of {name} are not all in 0..19" in message


def test_a_missing_pseudo_label_is_an_error(project: Path) -> None:
    lost = sorted((project / "data/pseudo_gt").glob("*.png"))[0]
    lost.unlink()
    message = fails(project, "train_segmentation")
    assert f"{lost.name}: label map missing" in message
    assert not (project / "data/segmentation").exists()


def test_an_all_ignored_training_set_is_an_error(project: Path) -> None:
    set_params(project, {"pseudo_gt.rules.min_foreground": 1.0})  # every image under it
    ok(project, "pseudo_gt")
    message = fails(project, "train_segmentation")
    assert "every pixel of all 14 label maps is ignored (255): nothing to train on" in message


# --- interruptions ----------------------------------------------------------------------------


def test_sigkill_during_download_then_a_clean_rerun(project: Path) -> None:
    shutil.rmtree(project / "data/voc")
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.download"],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not leftovers(project / "data") and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert leftovers(project / "data"), "killed too late to leave scratch behind"
    assert not (project / "data/voc").exists()
    ok(project, "download")
    assert leftovers(project / "data") == []
    assert (project / "data/voc/classes.txt").is_file()


def test_a_failing_metrics_step_leaves_no_output(project: Path) -> None:
    train = (project / "data/voc/ImageSets/Segmentation/train.txt").read_text().split()
    (project / f"data/voc/SegmentationClass/{train[0]}.png").unlink()  # read by the metrics
    shutil.rmtree(project / "data/saliency")
    message = fails(project, "saliency")
    assert f"{train[0]}.png: unreadable image" in message
    assert not (project / "data/saliency").exists() and leftovers(project / "data") == []


# --- the same bits on another machine ---------------------------------------------------------


def test_portable_kernels_win_over_the_callers_settings(project: Path) -> None:
    model = project / "data/classifier/model.pt"
    shutil.rmtree(project / "data/classifier")
    ok(project, "train_classifier", {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"})
    other_kernels = md5(model)
    shutil.rmtree(project / "data/classifier")
    ok(project, "train_classifier")
    assert md5(model) == other_kernels


def test_a_failing_training_of_two_processes_reports_one_line(project: Path) -> None:
    set_params(project, {"classifier.nproc": 2, "classifier.batch_size": 64})
    message = fails(project, "train_classifier")  # one `error:` line, no launcher traceback
    assert "classifier.batch_size: 64 is more than the 14 training images" in message
