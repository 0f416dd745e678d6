"""Where each stage's outputs live under `base.data_dir`, spelled once for all stages.

dvc.yaml names the same paths (`${base.data_dir}/...`); tests/test_dvc_yaml.py keeps the
two in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

METRICS_DIR = Path("metrics")


@dataclass(frozen=True)
class StagePaths:
    """The stage outputs of one data folder."""

    data_dir: Path

    @property
    def params_check(self) -> Path:
        return self.data_dir / "params_check.txt"

    @property
    def voc(self) -> Path:
        return self.data_dir / "voc"

    @property
    def saliency(self) -> Path:
        return self.data_dir / "saliency"

    @property
    def classifier_checkpoints(self) -> Path:
        return self.data_dir / "classifier" / "checkpoints"

    @property
    def classifier_model(self) -> Path:
        return self.data_dir / "classifier" / "model.pt"

    @property
    def locmaps(self) -> Path:
        return self.data_dir / "locmaps"

    @property
    def pseudo_gt(self) -> Path:
        return self.data_dir / "pseudo_gt"

    @property
    def segmentation_checkpoints(self) -> Path:
        return self.data_dir / "segmentation" / "checkpoints"

    @property
    def segmentation_model(self) -> Path:
        return self.data_dir / "segmentation" / "model.pt"

    @property
    def predictions(self) -> Path:
        return self.data_dir / "predictions"


def stage_paths(data_dir: str | Path) -> StagePaths:
    return StagePaths(Path(data_dir))


def saliency_map_path(folder: Path, image: str) -> Path:
    """An image's saliency map: 8-bit grayscale, the image's size, 255 = salient."""
    return folder / f"{image}.png"


def locmap_path(folder: Path, image: str, cls: int) -> Path:
    """An image's localization map of class id `cls`, named as the original code names it."""
    return folder / f"{image}_{cls}.png"


def label_path(folder: Path, image: str) -> Path:
    """An image's label map (pseudo labels, predictions): a VOC palette PNG."""
    return folder / f"{image}.png"


def skipped_list_path(folder: Path) -> Path:
    """The images a labelling stage skipped on purpose, one name per line."""
    return folder / "skipped.txt"
