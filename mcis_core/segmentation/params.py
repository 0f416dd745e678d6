"""Parameters of the `train_segmentation` stage (params.yaml section `segmentation`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mcis_core.common.params import param


@dataclass(frozen=True)
class SegmentationParams:
    """DeepLab-LargeFOV trained on the pseudo labels (docs/method.md §6)."""

    backbone: Literal["resnet101", "narrow"] = param("narrow: the classifier's VGG16-D1")
    width: float = param("channel multiplier of the narrow backbone and its head", gt=0, le=1)
    batch_norm: bool = param("BN in the narrow backbone (resnet101: always, frozen)")
    pretrained: Literal["none", "imagenet", "classifier"] = param(
        "imagenet: torchvision's ResNet-101; classifier: the trained classifier (narrow only)"
    )
    pretrained_path: str | None = param("resnet101-63fe2227.pth; null: the torch hub cache")
    labels: Literal["pseudo", "gt"] = param("pseudo: MCIS pseudo labels; gt: the upper bound")
    crop_size: int = param("side of the square training crop", ge=16)
    scales: tuple[float, ...] = param(
        "random scale factors, one drawn per image (the original: 0.7, 0.8, .., 1.3)",
        gt=0,
        le=4,
        min_items=1,
    )
    dropout: float = param("dropout after each hidden head conv (the original's exp2: 0)",
                           ge=0, lt=1)  # fmt: skip
    batch_size: int = param("images per optimiser step, over processes and accumulation", ge=1)
    accumulation: int = param("micro-batches per step (the original: 1 image x 10)", ge=1)
    epochs: int = param("training epochs", ge=1)
    lr: float = param("learning rate of the backbone weights", gt=0)
    lr_multipliers: tuple[float, float, float, float] = param(
        "lr multipliers: backbone weights, biases, head weights, biases", gt=0
    )
    lr_power: float = param("poly decay power over all iterations", ge=0)
    momentum: float = param("SGD momentum", ge=0, lt=1)
    weight_decay: float = param("L2 weight decay", ge=0)
    nproc: int = param("processes (GPUs) for torchrun DDP", ge=1)
    num_workers: int | Literal["auto"] = param(
        "data loader workers per process; auto: 0 on the CPU, on CUDA min(8, its cores - 1)", ge=0
    )
    amp: bool = param("bf16 autocast, on CUDA only")

    def relations(self) -> list[tuple[bool, str]]:
        return [
            (
                self.batch_size % (self.accumulation * self.nproc) != 0,
                f"batch_size: {self.batch_size} must be a multiple of accumulation x nproc "
                f"({self.accumulation} x {self.nproc})",
            ),
            (
                self.pretrained == "classifier" and self.backbone != "narrow",
                "pretrained: classifier weights fit backbone: narrow only",
            ),
            (
                self.pretrained == "imagenet" and self.backbone != "resnet101",
                "pretrained: imagenet weights exist for backbone: resnet101 only",
            ),
        ]
