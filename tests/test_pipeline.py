"""End to end: the real `dvc repro` on a tiny embedded configuration in a temporary git repo."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mcis_core.common.layout import read_class_labels
from tests.tiny import write_tiny_project


def _run(cmd: list[str], cwd: Path, expect_failure: bool = False) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    failed = result.returncode != 0
    assert failed == expect_failure, f"{' '.join(cmd)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '(\w+)'", output))


def _lock_hashes(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage["outs"]}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository holding the current working tree with tiny params, committed."""
    repo = tmp_path_factory.mktemp("clone")
    write_tiny_project(repo)
    _run(["git", "init", "-q"], repo)
    _commit_all(repo, "tiny")
    _run(["dvc", "repro"], repo)
    _commit_all(repo, "baseline")
    return repo


def _commit_all(repo: Path, message: str) -> None:
    _run(["git", "add", "-A"], repo)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], repo)


def _experiment(project: Path, override: str) -> str:
    """`dvc exp run -S override`'s output; the workspace is then put back to the baseline, as
    each `dvc exp run` composes its params from conf/ (the baseline) and its own `-S` only."""
    out = _run(["dvc", "exp", "run", "-S", override], project)
    _run(["git", "checkout", "--", "params.yaml", "dvc.lock", "metrics"], project)
    _run(["dvc", "checkout", "--force"], project)
    return out


def test_repro_builds_every_stage(project: Path) -> None:
    voc = project / "data" / "voc"
    train_aug = (voc / "ImageSets/Segmentation/train_aug.txt").read_text().split()
    assert len(train_aug) == 14
    assert sorted(p.stem for p in (project / "data" / "saliency").glob("*.png")) == sorted(
        train_aug
    )
    dataset = json.loads((project / "metrics" / "dataset.json").read_text())
    assert dataset["train_images"] == 6 and dataset["val_images"] == 4
    saliency = json.loads((project / "metrics" / "saliency.json").read_text())
    assert 0.0 <= saliency["mae"] <= 1.0 and 0.0 <= saliency["max_fbeta"] <= 1.0
    classifier = json.loads((project / "metrics" / "classifier.json").read_text())
    assert classifier["epoch"] == 1 and 0.0 <= classifier["val_map"] <= 1.0
    history = (project / "metrics" / "classifier_history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,lr,") and len(history) == 3
    assert (project / "data" / "classifier" / "model.pt").is_file()
    checkpoints = sorted(
        p.name for p in (project / "data" / "classifier" / "checkpoints").iterdir()
    )
    assert checkpoints == ["epoch_001.pt"]
    labels = read_class_labels(voc)
    expected_maps = sorted(f"{n}_{c}.png" for n in train_aug for c in labels[n])
    assert sorted(p.name for p in (project / "data" / "locmaps").iterdir()) == expected_maps
    locmaps = json.loads((project / "metrics" / "locmaps.json").read_text())
    assert 0.0 <= locmaps["miou"] <= 1.0 and 0.0 < locmaps["best_threshold"] < 1.0
    curve = (project / "metrics" / "locmaps_curve.csv").read_text().splitlines()
    assert curve[0] == "threshold,miou" and len(curve) == 1 + 19
    pseudo = sorted(p.stem for p in (project / "data" / "pseudo_gt").glob("*.png"))
    assert pseudo == sorted(train_aug)
    quality = json.loads((project / "metrics" / "pseudo_gt.json").read_text())
    assert quality["images_skipped"] == 0 and 0.0 <= quality["ignored_fraction"] <= 1.0
    segmentation = json.loads((project / "metrics" / "segmentation.json").read_text())
    assert segmentation["epoch"] == 1 and 0.0 <= segmentation["val_miou"] <= 1.0
    assert (project / "data" / "segmentation" / "model.pt").is_file()
    val = (voc / "ImageSets/Segmentation/val.txt").read_text().split()
    predictions = sorted(p.stem for p in (project / "data" / "predictions").glob("*.png"))
    assert predictions == sorted(val)
    scores = json.loads((project / "metrics" / "evaluate.json").read_text())
    for key in ("miou", "pixel_accuracy", "mean_class_accuracy", "fwiou"):
        assert 0.0 <= scores[key] <= 1.0 and 0.0 <= scores[f"{key}_crf"] <= 1.0
    per_class = (project / "metrics" / "evaluate_class_iou.csv").read_text().splitlines()
    assert per_class[0] == "class,iou,iou_crf" and len(per_class) == 22
    plots = sorted(p.name for p in (project / "metrics" / "evaluate_plots").iterdir())
    assert plots == ["confusion.png"] + sorted(f"example_{n}.png" for n in val[:2])


def test_second_repro_runs_nothing_and_status_is_clean(project: Path) -> None:
    out = _run(["dvc", "repro"], project)
    assert "Running stage" not in out
    assert "up to date" in _run(["dvc", "status"], project)


def test_a_misspelled_section_stops_repro_before_any_stage(project: Path) -> None:
    params_file = project / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["classifier"]["epochs"] = 3  # would rerun the classifier, were params valid
    params["classfier"] = {"epochs": 3}
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        out = _run(["dvc", "repro"], project, expect_failure=True)
    finally:
        params_file.write_text(original)
    assert "error: params.yaml: unknown key `classfier` (did you mean `classifier`?)" in out
    assert _stages_run(out) == {"check_params"}
    # DVC removed the check's output before running it: with the params fixed, the next repro
    # brings back the check alone (from the run-cache: its deps are as before)
    assert _stages_run(_run(["dvc", "repro"], project)) <= {"check_params"}
    assert "up to date" in _run(["dvc", "status"], project)


def test_editing_one_schema_makes_only_its_stage_stale(project: Path) -> None:
    schema = project / "mcis_core" / "pseudo_gt" / "params.py"
    original = schema.read_text()
    schema.write_text(original + "# an edit\n")
    try:
        stale = json.loads(_run(["dvc", "status", "--json"], project))
    finally:
        schema.write_text(original)
    # the validator of every schema, and the one stage that reads this one (its descendants
    # rerun through its outputs)
    assert set(stale) == {"check_params", "pseudo_gt"}


def test_forced_rerun_is_byte_identical(project: Path) -> None:
    before = _lock_hashes(project)
    shutil.rmtree(project / "data" / "voc")
    shutil.rmtree(project / "data" / "saliency")
    for stage_output in ("classifier", "locmaps", "pseudo_gt", "segmentation", "predictions"):
        shutil.rmtree(project / "data" / stage_output)
    _run(["dvc", "repro", "--force", "--no-run-cache"], project)
    assert _lock_hashes(project) == before


def test_saliency_param_change_reruns_only_saliency(project: Path) -> None:
    out = _run(["dvc", "repro", "--dry"], project)
    assert "Running stage" not in out
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["saliency"]["compute"]["sweeps"] = 2
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run(["dvc", "repro"], project)
    assert "Running stage 'saliency'" in out
    assert "Running stage 'download'" not in out


def test_classifier_experiment_reruns_only_the_classifier(project: Path) -> None:
    out = _experiment(project, "classifier.lr=0.02")
    assert "Running stage 'train_classifier'" in out
    assert "Running stage 'download'" not in out and "Running stage 'saliency'" not in out
    assert "0.02" in _run(["dvc", "exp", "show", "--csv"], project)


def test_pseudo_gt_experiment_reruns_only_pseudo_gt(project: Path) -> None:
    out = _experiment(project, "pseudo_gt.rules.score_floor=0.25")
    assert "Running stage 'pseudo_gt'" in out
    for upstream in ("download", "saliency", "train_classifier", "locmaps"):
        assert f"Running stage '{upstream}'" not in out


def test_fully_supervised_experiment_trains_on_the_masks(project: Path) -> None:
    out = _experiment(project, "segmentation.labels=gt")
    assert "Running stage 'train_segmentation'" in out and "Running stage 'evaluate'" in out
    for upstream in ("saliency", "train_classifier", "locmaps", "pseudo_gt"):
        assert f"Running stage '{upstream}'" not in out


def test_a_fresh_clone_previews_every_stage_without_running_any(tmp_path: Path) -> None:
    """The README's preview on a clone without outputs (plain `--dry` trips over DVC #9021)."""
    write_tiny_project(tmp_path)
    _run(["git", "init", "-q"], tmp_path)
    _commit_all(tmp_path, "fresh")
    stages = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]
    out = _run(["dvc", "repro", "--dry", "--force-downstream"], tmp_path)
    assert re.findall(r"Running stage '(\w+)'", out) == list(stages)
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()
