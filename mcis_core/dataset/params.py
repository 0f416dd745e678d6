"""Parameters of the `download` stage (params.yaml section `data`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mcis_core.common.params import RemoteFile, param


@dataclass(frozen=True)
class Voc2012Params:
    """Where PASCAL VOC 2012 and its augmented masks come from."""

    voc_archive: RemoteFile = param("VOCtrainval_11-May-2012.tar")
    aug_archive: RemoteFile = param("SBD benchmark.tgz or a SegmentationClassAug archive")
    aug_format: Literal["sbd", "segmentation_class_aug"] = param("what aug_archive holds")


@dataclass(frozen=True)
class EmbeddedParams:
    """Size and difficulty of the offline OpenMoji dataset (see mcis_core.dataset.embedded)."""

    train_images: int = param("images with fine masks (the analogue of VOC train)", ge=1)
    aug_images: int = param("images with augmented masks only (the analogue of SBD)", ge=0)
    val_images: int = param("held-out images with fine masks (VOC val)", ge=1)
    image_size: tuple[int, int] = param("min and max side length in pixels", ge=32, le=2048)
    object_scale: tuple[float, float] = param("object size / shorter image side", gt=0, le=1)
    max_classes: int = param("classes per image: 1..max_classes of the 20", ge=1, le=20)
    max_instances: int = param("instances per class are drawn from 1..max_instances", ge=1)
    distractor_prob: float = param("chance of one non-VOC glyph per image", ge=0, le=1)
    photo_background_prob: float = param("chance of a photo (vs procedural) background", ge=0, le=1)
    jpeg_quality: int = param("JPEG quality of the images", ge=1, le=100)

    def relations(self) -> list[tuple[bool, str]]:
        return [
            (self.image_size[0] > self.image_size[1], "image_size: min must not exceed max"),
            (self.object_scale[0] > self.object_scale[1], "object_scale: min must not exceed max"),
        ]


@dataclass(frozen=True)
class DataParams:
    """The dataset of the whole pipeline."""

    source: Literal["embedded", "voc2012"] = param("embedded: offline default; voc2012: real")
    voc2012: Voc2012Params | None = param("archives of data.source voc2012")
    embedded: EmbeddedParams = param("the generator of data.source embedded")

    def relations(self) -> list[tuple[bool, str]]:
        return [
            (
                self.source == "voc2012" and self.voc2012 is None,
                "voc2012: required when data.source is voc2012",
            )
        ]
