"""The `locmaps` stage in two gloo processes on the CPU (stages.locmaps through `launch`)
writes the same maps and metrics, byte for byte, as in one process."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from unittest import mock

import pytest
import yaml

from mcis_core.classifier.network import EXPORT_KIND, ModelConfig
from mcis_core.common.layout import read_classes
from mcis_core.common.paths import METRICS_DIR, stage_paths
from mcis_core.models.export import Exported, save_exported
from tests.params import PARAMS_FILE
from tests.test_locmaps import INPUT_SIZE, NUM_CLASSES, VIEWS, lively_net


@pytest.fixture(scope="module")
def voc(tiny_voc: Callable[..., Path]) -> Path:
    return tiny_voc(4, 7, 2, (56, 72))  # 11 train_aug images: the processes get 6 and 5


def project(root: Path, voc: Path, locmaps: dict) -> Path:
    """A folder with params.yaml (these locmaps params), the VOC copy and a tiny classifier."""
    params = yaml.safe_load(PARAMS_FILE.read_text())
    params["base"]["data_dir"] = "data"
    params["locmaps"].update(locmaps)
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    paths = stage_paths(root / "data")
    shutil.copytree(voc, paths.voc)
    net = lively_net()
    meta = {"classes": list(read_classes(voc)), "input_size": INPUT_SIZE, "views": list(VIEWS)}
    config = dataclasses.asdict(
        ModelConfig(width=0.0625, batch_norm=False, num_classes=NUM_CLASSES)
    )
    paths.classifier_model.parent.mkdir()
    save_exported(paths.classifier_model, Exported(EXPORT_KIND, net.state_dict(), config, meta))
    return root


def outputs(root: Path) -> dict[str, bytes]:
    """Every file the stage wrote, by path relative to the project."""
    # nothing else beside the maps: no temporary folder, no bank's scratch folder
    assert sorted(p.name for p in (root / "data").iterdir()) == ["classifier", "locmaps", "voc"]
    files = [*(root / "data" / "locmaps").iterdir(), *(root / METRICS_DIR).iterdir()]
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(files)}


def locmaps_stage() -> ModuleType:
    """stages.locmaps, without the CPU-kernel pin its package puts in os.environ: torch is
    loaded in this process already, so the pin would reach only the child processes, which
    would then run other kernels than the single-process run here."""
    with mock.patch.dict(os.environ):
        from stages import locmaps
    return locmaps


def run_stage_in(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    with monkeypatch.context() as patch:
        patch.chdir(root)
        patch.setenv("OMP_NUM_THREADS", "1")  # the processes do not fight for the cores
        locmaps_stage().main()
    return outputs(root)


def test_two_processes_write_what_one_process_writes(
    voc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the CPU every placement shares the bank's rows alike; a float16 bank on disk also
    checks the half-precision broadcast and that each process's scratch folder goes."""
    bank = {"bank": {"placement": "disk", "dtype": "float16"}}
    one = run_stage_in(project(tmp_path / "one", voc, {**bank, "nproc": 1}), monkeypatch)
    two = run_stage_in(project(tmp_path / "two", voc, {**bank, "nproc": 2}), monkeypatch)
    assert sorted(one) == sorted(two)
    assert len([name for name in one if name.startswith("data/locmaps/")]) > 11
    assert {"metrics/locmaps.json", "metrics/locmaps_curve.csv"} <= set(one)
    for name in one:
        assert one[name] == two[name], name
