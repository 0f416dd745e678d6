"""Parameters of the `locmaps` stage (params.yaml section `locmaps`).

The classifier's input size, views and classes come with the exported model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mcis_core.common.params import param


@dataclass(frozen=True)
class BankParams:
    """Where the cached schedule keeps every training image's input-size features.

    Size: images x C x h x w x bytes per value. The paper's VGG16 at 256 px on VOC's 10582
    train_aug images: 10582 x 512 x 32 x 32 x 4 B = 20.7 GiB in float32, 10.3 GiB in float16,
    so a float16 bank on the device fits a 16 GB GPU; on the host or on disk the device holds
    little more than the model. Every process holds the whole bank.
    """

    placement: Literal["device", "host", "disk"] = param(
        "device: fastest; host: CPU memory, each feature moved to the device when used; "
        "disk: a memory-mapped file in a scratch folder beside the maps"
    )
    dtype: Literal["float32", "float16"] = param(
        "float16 halves the bank (used as float32); maps move by a grey level or two, rarely"
    )


@dataclass(frozen=True)
class LocmapsParams:
    """Co-attention localization maps of the training images (docs/method.md §4)."""

    partners: int = param("partner images per positive class, drawn with replacement", ge=1)
    view_gate: float = param("a map after M0 counts only if sigmoid(its mean) > this", ge=0, lt=1)
    naive: bool = param("recompute both images' features for every pairing, as the original")
    threshold_step: float = param("background thresholds step..1-step of the quality curve",
                                  gt=0, lt=0.5)  # fmt: skip
    bank: BankParams = param("the cached schedule's features of every image (naive: none)")
    nproc: int = param("processes (GPUs); each writes the maps of every nproc-th image", ge=1)
