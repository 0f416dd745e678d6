"""Every section of params.yaml and its schema: what the `check_params` stage validates, and
the ImageNet weights files a configuration needs, which it fetches before any training."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mcis_core.classifier.params import ClassifierParams
from mcis_core.common.errors import WeightsError
from mcis_core.common.params import BaseParams
from mcis_core.dataset.params import DataParams
from mcis_core.evaluate.params import EvaluateParams
from mcis_core.locmaps.params import LocmapsParams
from mcis_core.models.pretrained import RESNET101_IMAGENET, VGG16_IMAGENET, weights_file
from mcis_core.pseudo_gt.params import PseudoGtParams
from mcis_core.saliency.params import SaliencyParams
from mcis_core.segmentation.params import SegmentationParams

SECTIONS: dict[str, type] = {
    "base": BaseParams,
    "data": DataParams,
    "saliency": SaliencyParams,
    "classifier": ClassifierParams,
    "locmaps": LocmapsParams,
    "pseudo_gt": PseudoGtParams,
    "segmentation": SegmentationParams,
    "evaluate": EvaluateParams,
}
# the sections whose `pretrained: imagenet` loads torchvision's weights, and which weights
IMAGENET_WEIGHTS = {"classifier": VGG16_IMAGENET, "segmentation": RESNET101_IMAGENET}


def imagenet_weights_files(params: Mapping[str, Any]) -> list[Path]:
    """Every ImageNet weights file the checked `params` will load, downloaded if missing.

    Raises one WeightsError naming each file that is neither here nor downloadable.
    """
    files, errors = [], []
    for section, weights in IMAGENET_WEIGHTS.items():
        if params[section].pretrained != "imagenet":
            continue
        path, param_name = params[section].pretrained_path, f"{section}.pretrained_path"
        try:
            files.append(weights_file(weights.url, path, param_name))
        except WeightsError as err:
            errors.append(str(err))
    if errors:
        raise WeightsError("; ".join(errors))
    return files
