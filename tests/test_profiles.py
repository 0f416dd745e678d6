"""Profiles (conf/, composed by DVC's Hydra integration): the default is params.yaml, and the
paper profile holds the numbers of the authors' code, checked against a table written here
from docs/method.md, not from the profile file."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mcis_core.common.params import check_params_file
from mcis_core.sections import SECTIONS
from tests.params import PARAMS_FILE

CONF = Path(__file__).resolve().parents[1] / "conf"

# (key, the original's value, where docs/method.md gives it)
ORIGINAL = [
    ("data.source", "voc2012", "§1: VOC 2012 + SBD"),
    ("saliency.source", "folder", "§2: the authors' published maps, not computed"),
    ("saliency.folder", "data/saliency_maps", "§2: where the README says to extract them"),
    ("classifier.backbone", "vgg16", "§3.1 VGG16-D1"),
    ("classifier.width", 1.0, "§3.1 full width"),
    ("classifier.batch_norm", False, "§3.1 no BN"),
    ("classifier.pretrained", "imagenet", "§3.1 ImageNet init"),
    ("classifier.init", "original", "§3.1 He fan-out init of the new convs"),
    ("classifier.input_size", 256, "§3.5 square resize to 256"),
    ("classifier.views", [1.0, 0.75, 2.0], "§3.5 flip at 256, 192, 512"),
    ("classifier.jitter", [0.3, 0.3, 0.3, 0.1], "§3.5 ColorJitter"),
    ("classifier.warmup_epochs", 0, "§3.7 no warm-up"),
    ("classifier.contrastive_from_epoch", 2, "§3.6 from 0-based epoch 2"),
    ("classifier.batch_size", 5, "§3.7 batch 5 pairs"),
    ("classifier.epochs", 15, "§3.7 15 epochs"),
    ("classifier.lr", 0.001, "§3.7 lr 1e-3"),
    ("classifier.lr_multipliers", [1.0, 2.0, 10.0, 20.0], "§3.7 groups"),
    ("classifier.lr_steps", [5, 10], "§3.7 x0.1 at epochs 5 and 10"),
    ("classifier.lr_gamma", 0.1, "§3.7"),
    ("classifier.momentum", 0.9, "§3.7"),
    ("classifier.weight_decay", 0.0005, "§3.7"),
    ("classifier.use_epoch", 10, "§3.7 pascal_voc_epoch_10.pth"),
    ("locmaps.partners", 3, "§4.1 3 partners per class"),
    ("locmaps.view_gate", 0.1, "§4.2 sigmoid(mean) > 0.1"),
    ("pseudo_gt.rules.score_floor", 0.3, "§5 step 3"),
    ("pseudo_gt.rules.conflict", 0.99, "§5 step 5"),
    ("pseudo_gt.rules.salient_locmap", 0.95, "§5 step 2"),
    ("pseudo_gt.rules.salient_background", 32, "§5 step 6"),
    ("pseudo_gt.rules.min_foreground", 0.01, "§5 step 7"),
    ("pseudo_gt.on_missing", "skip", "§5 no saliency map, no label file"),
    ("segmentation.backbone", "resnet101", "§6.1"),
    ("segmentation.pretrained", "imagenet", "§6.1"),
    ("segmentation.labels", "pseudo", "§6.2"),
    ("segmentation.crop_size", 321, "§6.2"),
    ("segmentation.scales", [0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3], "§6.2"),
    ("segmentation.dropout", 0.0, "§6.1 no dropout"),
    ("segmentation.batch_size", 10, "§6.2 batch 1 x iter_size 10"),
    ("segmentation.accumulation", 10, "§6.2"),
    ("segmentation.epochs", 15, "§6.2 16000 x 10 crops over 10582 images"),
    ("segmentation.lr", 0.001, "§6.2"),
    ("segmentation.lr_power", 0.9, "§6.2 poly"),
    ("segmentation.momentum", 0.9, "§6.2"),
    ("segmentation.weight_decay", 0.0005, "§6.2"),
    ("evaluate.split", "val", "§7"),
    ("evaluate.scales", [0.5, 0.75, 1.0, 1.25, 1.5], "§7.1"),
    ("evaluate.window", 401, "§7.1"),
    ("evaluate.stride_ratio", 0.6667, "§7.1 int(401 * 2/3) = 267"),
    ("evaluate.pad_to_window", True, "§7.1 zero-padded to at least 401"),
    ("evaluate.flip", True, "§7.1"),
    ("evaluate.crf.iterations", 1, "§7.2"),
    ("evaluate.crf.gaussian_sxy", 3.0, "§7.2"),
    ("evaluate.crf.gaussian_compat", 1.0, "§7.2"),
    ("evaluate.crf.bilateral_sxy", 80.0, "§7.2"),
    ("evaluate.crf.bilateral_srgb", 4.0, "§7.2"),
    ("evaluate.crf.bilateral_compat", 3.0, "§7.2"),
    ("evaluate.crf.prob_floor", 0.0001, "§7.2 clip at 1e-4"),
]

# keys the paper profile sets for the machine, not the method: the feature bank of VOC
# (20.7 GiB) goes to host memory so that a 16 GB GPU suffices, with the same maps
MACHINE = {
    "locmaps.bank.placement": "host",
    "locmaps.bank.dtype": "float32",
    "locmaps.nproc": 1,  # one GPU; the default shares two CPU cores between two processes
}


def composed(*overrides: str) -> dict:
    """conf/config.yaml composed as `dvc exp run -S ...` composes it."""
    with initialize_config_dir(str(CONF), version_base=None):
        return OmegaConf.to_container(compose("config", overrides=list(overrides)), resolve=True)


def lookup(params: dict, dotted: str) -> object:
    for key in dotted.split("."):
        params = params[key]
    return params


def test_dvc_composes_params_with_hydra() -> None:
    config = configparser.ConfigParser()
    config.read(CONF.parent / ".dvc" / "config")
    assert config.getboolean("hydra", "enabled")


def test_default_profile_is_params_yaml() -> None:
    assert composed() == yaml.safe_load(PARAMS_FILE.read_text())


@pytest.mark.parametrize(("key", "value", "source"), ORIGINAL, ids=[k for k, _, _ in ORIGINAL])
def test_paper_profile_has_the_original_numbers(key: str, value: object, source: str) -> None:
    assert lookup(composed("profile=paper"), key) == value, source


@pytest.mark.parametrize(("key", "value"), MACHINE.items())
def test_paper_profile_runs_on_one_16_gb_gpu(key: str, value: object) -> None:
    assert lookup(composed("profile=paper"), key) == value


# the README's commands
EIGHT_GPUS = [
    "classifier.nproc=5",
    "locmaps.nproc=8",
    "locmaps.bank.placement=device",
    "segmentation.nproc=5",
    "segmentation.accumulation=2",
    "evaluate.nproc=8",
]
COMMANDS = {"default": [], "paper": ["profile=paper"], "paper8": ["profile=paper", *EIGHT_GPUS]}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_documented_command_passes_check_params(command: str, tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(composed(*COMMANDS[command]), sort_keys=False))
    check_params_file(SECTIONS, path)


def test_the_readme_shows_the_eight_gpu_command() -> None:
    readme = (CONF.parent / "README.md").read_text()
    assert all(f"-S {override}" in readme for override in EIGHT_GPUS)


def test_paper_profile_changes_only_what_the_original_sets() -> None:
    """Keys the paper profile changes are all in the table above (nothing silently set)."""
    default, paper = composed(), composed("profile=paper")
    checked = {k for k, _, _ in ORIGINAL} | set(MACHINE)

    def changed(a: dict, b: dict, prefix: str = "") -> set[str]:
        keys = set()
        for k in b:
            if isinstance(b[k], dict):
                keys |= changed(a[k], b[k], f"{prefix}{k}.")
            elif a[k] != b[k]:
                keys.add(f"{prefix}{k}")
        return keys

    assert changed(default, paper) - checked == set()
