"""dvc.yaml stays true to the code: each stage's deps cover exactly the project code its
script imports, and its paths are the ones `mcis_core.common.paths` spells for the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mcis_core.common.code import PACKAGES, REPO, import_closure
from mcis_core.common.paths import stage_paths
from tests.imports import is_docstring_only
from tests.params import section

DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]


def _resolved(path: str) -> str:
    """A dvc.yaml path with ${base.data_dir} filled in."""
    return path.replace("${base.data_dir}", section("base").data_dir)


def _paths(entries: list) -> list[str]:
    return [_resolved(next(iter(e)) if isinstance(e, dict) else e) for e in entries]


def _script(stage: dict) -> Path:
    module = re.search(r"-m\s+([\w.]+)", stage["cmd"]).group(1)
    return REPO.joinpath(*module.split(".")).with_suffix(".py")


def _code_deps(stage: dict) -> list[Path]:
    return [REPO / d for d in _paths(stage["deps"]) if d.split("/")[0] in PACKAGES]


def _covers(dep: Path, path: Path) -> bool:
    return path == dep or dep in path.parents


def missing_and_unused(stage: dict) -> tuple[list[str], list[str]]:
    """(imported files no dep covers, code deps that cover no imported file)."""
    used = [f for f in import_closure(_script(stage)) if not is_docstring_only(f)]
    deps = _code_deps(stage)
    missing = [f for f in used if not any(_covers(d, f) for d in deps)]
    unused = [d for d in deps if not any(_covers(d, f) for f in used)]
    return (
        sorted(str(f.relative_to(REPO)) for f in missing),
        sorted(str(d.relative_to(REPO)) for d in unused),
    )


@pytest.mark.parametrize("name", sorted(STAGES))
def test_code_deps_equal_the_imports(name: str) -> None:
    missing, unused = missing_and_unused(STAGES[name])
    assert missing == [], f"{name} imports code its deps do not list"
    assert unused == [], f"{name} lists code deps it never imports"


def test_the_check_fails_when_a_needed_dep_is_deleted() -> None:
    stage = {**STAGES["evaluate"]}
    stage["deps"] = [d for d in stage["deps"] if d != "mcis_core/scoring"]
    missing, _ = missing_and_unused(stage)
    assert "mcis_core/scoring/segmentation.py" in missing


def test_the_check_fails_when_an_unused_dep_is_listed() -> None:
    stage = {**STAGES["saliency"], "deps": [*STAGES["saliency"]["deps"], "mcis_core/training"]}
    assert missing_and_unused(stage)[1] == ["mcis_core/training"]


def test_every_stage_command_runs_its_own_script() -> None:
    for name, stage in STAGES.items():
        assert _script(stage) == REPO / "stages" / f"{name}.py"
        assert f"stages/{name}.py" in stage["deps"]


def test_stage_outputs_are_the_paths_the_code_uses() -> None:
    paths = stage_paths(section("base").data_dir)
    expected = {
        "check_params": [paths.params_check],
        "download": [paths.voc],
        "saliency": [paths.saliency],
        "train_classifier": [paths.classifier_checkpoints, paths.classifier_model],
        "locmaps": [paths.locmaps],
        "pseudo_gt": [paths.pseudo_gt],
        "train_segmentation": [paths.segmentation_checkpoints, paths.segmentation_model],
        "evaluate": [paths.predictions],
    }
    assert {name: [Path(p) for p in _paths(s["outs"])] for name, s in STAGES.items()} == expected


def test_dvcignore_keeps_caches_out_of_code_hashes() -> None:
    patterns = (REPO / ".dvcignore").read_text().split()
    assert "__pycache__/" in patterns and "*.py[cod]" in patterns
