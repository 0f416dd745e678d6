"""Every section of params.yaml and its schema: what the `check_params` stage validates."""

from mcis_core.classifier.params import ClassifierParams
from mcis_core.common.params import BaseParams
from mcis_core.dataset.params import DataParams
from mcis_core.evaluate.params import EvaluateParams
from mcis_core.locmaps.params import LocmapsParams
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
