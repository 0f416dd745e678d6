"""Parameters of the `train_classifier` stage (params.yaml section `classifier`).

Epochs are counted over the whole run: the first `warmup_epochs` train only the
single-image branch on single jittered, randomly mirrored images (2 x batch_size per
step, the rows of one MCIS pairing), a stand-in for the ImageNet initialisation of the
paper when the narrow backbone trains from scratch; the MCIS epochs follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mcis_core.common.params import param


@dataclass(frozen=True)
class ClassifierParams:
    """The co-attention classifier and its training (docs/method.md §3)."""

    backbone: Literal["vgg16", "narrow"] = param("vgg16: the paper's; narrow: CPU-sized")
    width: float = param("channel multiplier of the narrow backbone (vgg16: 1)", gt=0, le=1)
    batch_norm: bool = param("BN after every conv of the narrow backbone (vgg16: never)")
    pretrained: Literal["none", "imagenet"] = param("imagenet: torchvision's VGG16 weights")
    pretrained_path: str | None = param("vgg16-397923af.pth; null: the torch hub cache")
    init: Literal["original", "pytorch"] = param(
        "convs of backbone, extra layers and CAM: original: N(0, sqrt(2/(k*k*out))); pytorch"
    )
    input_size: int = param("side of the square network input", ge=16)
    warmup_epochs: int = param("first epochs train the single-image branch alone", ge=0)
    coattention: bool = param("co-attention terms (false/false: the plain CAM baseline)")
    contrastive: bool = param("contrastive co-attention terms (needs coattention)")
    contrastive_from_epoch: int = param("0-based epoch at which the contrastive terms start", ge=0)
    views: tuple[float, ...] = param(
        "scales of the anchor's views paired with it; 1.0 = its mirror", gt=0, le=4, min_items=1
    )
    jitter: tuple[float, float, float, float] = param(
        "colour jitter: brightness, contrast, saturation, hue", ge=0, le=1
    )
    batch_size: int = param("anchor/partner pairs per step, over all processes", ge=1)
    epochs: int = param("training epochs, warm-up included", ge=1)
    lr: float = param("learning rate of the backbone weights", gt=0)
    lr_multipliers: tuple[float, float, float, float] = param(
        "lr multipliers: backbone weights, biases, head weights, biases", gt=0
    )
    lr_steps: tuple[int, ...] = param("0-based epochs at whose start lr is multiplied by gamma")
    lr_gamma: float = param("step decay factor", gt=0, le=1)
    momentum: float = param("SGD (Nesterov) momentum", ge=0, lt=1)
    weight_decay: float = param("L2 weight decay", ge=0)
    use_epoch: int = param("0-based epoch whose weights go downstream (paper: 10 of 15)", ge=0)
    nproc: int = param("processes (GPUs) for torchrun DDP", ge=1)
    num_workers: int | Literal["auto"] = param(
        "data loader workers per process; auto: 0 on the CPU, on CUDA min(8, its cores - 1)", ge=0
    )
    amp: bool = param("bf16 autocast, on CUDA only")

    def relations(self) -> list[tuple[bool, str]]:
        return [
            (self.contrastive and not self.coattention, "contrastive: needs coattention: true"),
            (
                self.use_epoch >= self.epochs,
                f"use_epoch: {self.use_epoch} must be below epochs ({self.epochs})",
            ),
            (
                self.warmup_epochs >= self.epochs,
                f"warmup_epochs: {self.warmup_epochs} must be below epochs ({self.epochs})",
            ),
            (
                self.batch_size % self.nproc != 0,
                f"batch_size: {self.batch_size} must be a multiple of nproc ({self.nproc})",
            ),
            (
                self.views[0] != 1.0,
                f"views: {list(self.views)} must start with 1.0, the mirror view (it gives M0)",
            ),
            (
                self.backbone == "vgg16" and (self.width != 1 or self.batch_norm),
                "backbone: vgg16 is the paper's network: set width: 1 and batch_norm: false",
            ),
            (
                self.pretrained == "imagenet" and self.backbone != "vgg16",
                "pretrained: imagenet weights exist for backbone: vgg16 only",
            ),
        ]
