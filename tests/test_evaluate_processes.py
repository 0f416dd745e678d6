"""The evaluate stage in two processes (gloo on the CPU) writes what one process writes.

Each run is `python -m stages.evaluate` in a project folder of its own: params.yaml with a
small evaluation, the tiny VOC layout and a random narrow DeepLab-LargeFOV export.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import yaml

from mcis_core.common.io import write_names
from mcis_core.common.layout import VAL, list_path, read_classes, read_split
from mcis_core.models.export import Exported, save_exported
from mcis_core.segmentation.network import EXPORT_KIND, DeepLabLargeFOV, SegModelConfig
from tests.tiny import REPO, merged

VAL_IMAGES = 3  # process 0 of 2 predicts images 0 and 2, process 1 image 1
EVALUATE = {"scales": [0.75, 1.0], "window": 48, "flip": True, "examples": 2}


@pytest.fixture(scope="module")
def voc(tiny_voc: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny VOC layout with a `test` list: the val images, as if without ground truth."""
    copy = tmp_path_factory.mktemp("voc") / "voc"
    shutil.copytree(tiny_voc(2, 2, VAL_IMAGES, (40, 52)), copy)
    write_names(list_path(copy, "test"), read_split(copy, VAL))
    return copy


@pytest.fixture(scope="module")
def model(voc: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random narrow DeepLab-LargeFOV, exported as train_segmentation exports it."""
    classes = read_classes(voc)
    config = SegModelConfig("narrow", 0.0625, False, len(classes) + 1, 0.0)
    torch.manual_seed(0)
    net = DeepLabLargeFOV(config)
    path = tmp_path_factory.mktemp("segmentation") / "model.pt"
    meta = {"classes": list(classes)}
    save_exported(path, Exported(EXPORT_KIND, net.state_dict(), asdict(config), meta))
    return path


def evaluate_in(project: Path, voc: Path, model: Path, split: str, nproc: int) -> str:
    """Run the stage in `project` with `nproc` processes; its stderr."""
    (project / "data" / "segmentation").mkdir(parents=True)
    (project / "data" / "voc").symlink_to(voc)
    shutil.copy(model, project / "data" / "segmentation" / "model.pt")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params = merged(params, {"base": {"data_dir": "data"}})
    params = merged(params, {"evaluate": {**EVALUATE, "split": split, "nproc": nproc}})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = subprocess.run(
        [sys.executable, "-m", "stages.evaluate"],
        cwd=project,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO),
            "CUDA_VISIBLE_DEVICES": "",  # gloo on the CPU even where a GPU exists
            "OMP_NUM_THREADS": "1",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def outputs(project: Path, folder: str) -> dict[str, bytes]:
    """Every file under `folder` of `project` (scratch included), by path in `folder`."""
    root = project / folder
    return {str(f.relative_to(root)): f.read_bytes() for f in root.rglob("*") if f.is_file()}


@pytest.fixture(scope="module")
def single(voc: Path, model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project of a one-process evaluation of the val split."""
    project = tmp_path_factory.mktemp("single")
    stderr = evaluate_in(project, voc, model, VAL, nproc=1)
    assert f"{VAL_IMAGES}/{VAL_IMAGES}" in stderr  # the progress bar counts all images
    return project


def test_two_processes_write_the_bytes_of_one(
    single: Path, voc: Path, model: Path, tmp_path: Path
) -> None:
    stderr = evaluate_in(tmp_path, voc, model, VAL, nproc=2)
    assert "2/2" in stderr  # the main process's progress bar counts its own share
    predictions = outputs(single, "data/predictions")
    assert sorted(predictions) == sorted(f"{n}.png" for n in read_split(voc, VAL))
    assert outputs(tmp_path, "data/predictions") == predictions
    metrics = outputs(single, "metrics")
    examples = [f"evaluate_plots/example_{n}.png" for n in read_split(voc, VAL)[:2]]
    assert set(examples) | {"evaluate_plots/confusion.png"} < set(metrics)
    assert outputs(tmp_path, "metrics") == metrics
    assert not list((tmp_path / "data").glob(".*.tmp-*"))  # no scratch left behind


def test_two_processes_predict_a_split_without_ground_truth(
    single: Path, voc: Path, model: Path, tmp_path: Path
) -> None:
    evaluate_in(tmp_path, voc, model, "test", nproc=2)  # the test list holds the val images
    assert outputs(tmp_path, "data/predictions") == outputs(single, "data/predictions")
    scores = json.loads((tmp_path / "metrics" / "evaluate.json").read_text())
    assert scores == {"split": "test", "images": VAL_IMAGES}
    assert not list((tmp_path / "metrics" / "evaluate_plots").iterdir())
    assert not list((tmp_path / "data").glob(".*.tmp-*"))
