"""A rehearsal of the paper's setting: `dvc exp run -S profile=paper` in a temporary git clone,
with the paper's networks (VGG16-D1 at 256 px, ResNet-101 DeepLab-LargeFOV, crop 321,
window 401), its VOC download path (VOC-shaped archives of VOC-size images served on
127.0.0.1) and stand-in ImageNet weights in a private torch hub cache, through every stage.

Only the amount of work is cut (a handful of images, one epoch, two evaluation scales) so
that it runs in a few minutes on a CPU; every code path of the paper's setting runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from torch import nn

from mcis_core.dataset.embedded import write_archives
from mcis_core.dataset.params import EmbeddedParams
from mcis_core.models.pretrained import RESNET101_IMAGENET, VGG16_IMAGENET
from tests.http_server import serve_files
from tests.tiny import write_tiny_project

VOC_SIZE = EmbeddedParams(
    train_images=2,
    aug_images=1,
    val_images=1,
    image_size=(300, 400),  # VOC's images are 500 px at most, mostly 375 x 500
    object_scale=(0.4, 0.8),
    max_classes=2,
    max_instances=1,
    distractor_prob=0.0,
    photo_background_prob=1.0,
    jpeg_quality=90,
)
LESS_WORK = [  # the paper profile, with one optimiser step per training
    "classifier.epochs=1",
    "classifier.use_epoch=0",
    "classifier.lr_steps=[]",
    "classifier.contrastive_from_epoch=0",  # every loss term in that step
    "classifier.batch_size=2",
    "segmentation.epochs=1",
    "segmentation.batch_size=2",
    "segmentation.accumulation=2",
    "evaluate.scales=[0.5,1.5]",  # 1.5: several 401 px windows per image
    "saliency.source=compute",  # the original's maps are an archive we cannot download here
    "pseudo_gt.rules.min_foreground=0.0",  # random stand-in weights may find no object
]


def stand_in_weights(hub: Path) -> None:
    """Randomly initialised torchvision VGG16 convs and ResNet-101, saved under the file names
    of the ImageNet weights in a torch hub cache (the stages read them from there)."""
    torch.manual_seed(0)
    folder = hub / "checkpoints"
    folder.mkdir(parents=True)
    convs = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    vgg = nn.Sequential()
    vgg.features = convs
    resnet = torchvision.models.resnet101()
    for weights, module in ((VGG16_IMAGENET, vgg), (RESNET101_IMAGENET, resnet)):
        torch.save(module.state_dict(), folder / weights.url.rsplit("/", 1)[-1])


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _env(torch_home: Path) -> dict[str, str]:
    """This interpreter's environment first on PATH; torch.hub.get_dir() is $TORCH_HOME/hub."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "TORCH_HOME": str(torch_home),
    }
    env.pop("PYTHONPATH", None)
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository after `dvc exp run -S profile=paper` with less work, in a clone."""
    scratch = tmp_path_factory.mktemp("rehearsal")
    repo, hub = scratch / "repo", scratch / "hub"
    repo.mkdir()
    write_tiny_project(repo)
    stand_in_weights(hub)
    voc_tar, aug_tar = scratch / "VOCtrainval_11-May-2012.tar", scratch / "aug.tar"
    write_archives(VOC_SIZE, 0, voc_tar, aug_tar)
    env = _env(scratch)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clone"],
    ):
        _run(cmd, repo, env)
    with serve_files({voc_tar.name: voc_tar, aug_tar.name: aug_tar}) as server:
        overrides = [
            "profile=paper",
            *LESS_WORK,
            f"data.voc2012.voc_archive.urls=['{server.url(voc_tar.name)}']",
            f"data.voc2012.voc_archive.md5='{_md5(voc_tar)}'",
            "data.voc2012.aug_format=segmentation_class_aug",
            f"data.voc2012.aug_archive.filename={aug_tar.name}",
            f"data.voc2012.aug_archive.urls=['{server.url(aug_tar.name)}']",
            f"data.voc2012.aug_archive.md5='{_md5(aug_tar)}'",
        ]
        _run(["dvc", "exp", "run", *[a for o in overrides for a in ("-S", o)]], repo, env)
    return repo


def test_the_paper_profile_runs_every_stage(rehearsal: Path) -> None:
    params = yaml.safe_load((rehearsal / "params.yaml").read_text())
    assert params["classifier"]["backbone"] == "vgg16"
    assert params["segmentation"]["backbone"] == "resnet101"
    assert params["segmentation"]["crop_size"] == 321 and params["evaluate"]["window"] == 401
    dataset = json.loads((rehearsal / "metrics" / "dataset.json").read_text())
    assert dataset["train_aug_images"] == 3 and dataset["val_images"] == 1
    classifier = torch.load(rehearsal / "data/classifier/model.pt", weights_only=False)
    assert classifier["meta"]["input_size"] == 256
    evaluation = json.loads((rehearsal / "metrics" / "evaluate.json").read_text())
    assert 0.0 <= evaluation["miou_crf"] <= 1.0
    predictions = sorted((rehearsal / "data" / "predictions").iterdir())
    assert len(predictions) == 1
    status = _run(["dvc", "status"], rehearsal, _env(rehearsal.parent))
    assert "up to date" in status
