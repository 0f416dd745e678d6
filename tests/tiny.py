"""A copy of the working tree with tiny params (in params.yaml and in conf/config.yaml, which
`dvc exp run` composes): the real stages run on it in seconds."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "data": {
        "embedded": {"train_images": 6, "aug_images": 8, "val_images": 4, "image_size": [56, 72]}
    },
    "saliency": {"compute": {"batch_size": 4}},
    "classifier": {
        "width": 0.0625,
        "batch_norm": False,
        "input_size": 32,
        "batch_size": 4,
        "epochs": 2,
        "warmup_epochs": 1,
        "use_epoch": 1,
        "lr_steps": [1],
        "contrastive_from_epoch": 1,
    },
    "segmentation": {
        "width": 0.0625,
        "batch_norm": False,
        "crop_size": 32,
        "batch_size": 4,
        "accumulation": 2,
        "epochs": 2,
    },
    "evaluate": {"scales": [0.75, 1.0], "window": 48, "examples": 2},
    # the tiny classifier's maps can leave every image under the 1% foreground rule, and a
    # training set without a labelled pixel is refused
    "pseudo_gt": {"rules": {"min_foreground": 0.0}},
}


def merged(base: dict, override: dict) -> dict:
    """`base` with the values of `override` put in, recursively."""
    for key, value in override.items():
        base[key] = merged(base[key], value) if isinstance(value, dict) else value
    return base


def write_tiny_project(dest: Path, override: dict | None = None) -> None:
    """The working tree's files (tracked or not ignored) at `dest`, params.yaml made tiny."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    shutil.rmtree(dest / "metrics", ignore_errors=True)
    (dest / "dvc.lock").unlink(missing_ok=True)
    # `dvc exp run` composes params.yaml from conf/config.yaml (Hydra): both get the values
    for name in ("params.yaml", "conf/config.yaml"):
        params = merged(yaml.safe_load((dest / name).read_text()), TINY)
        params = merged(params, override or {})
        (dest / name).write_text(yaml.safe_dump(params, sort_keys=False))
