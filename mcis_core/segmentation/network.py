"""DeepLab-LargeFOV, the segmentation network trained on the MCIS pseudo labels
(docs/method.md §6): Chen et al., "Semantic Image Segmentation with Deep Convolutional Nets
and Fully Connected CRFs", ICLR 2015; MCIS (Sun et al., ECCV 2020) trains it on a ResNet-101.

A dilated backbone of output stride 8 and the LargeFOV head: a 3x3 conv with dilation 12
(a large field of view for few weights), then two 1x1 convs, with dropout before each 1x1.
One class serves two backbones:
- "resnet101": torchvision's ResNet-101 up to layer4, layer3 and layer4 dilated instead of
  strided, batch norm frozen to its ImageNet statistics (batches of ten crops are too small
  to estimate them); initialised from ImageNet;
- "narrow": the VGG16-D1 of the MCIS classifier (DeepLab-LargeFOV's own backbone was a
  dilated VGG16) at any width, with trainable BN if it has BN; initialised from the trained
  classifier, so it runs on a CPU.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet101
from torchvision.ops import FrozenBatchNorm2d

from mcis_core.models.export import load_network, read_exported
from mcis_core.models.pretrained import RESNET101_IMAGENET, imagenet_state_dict
from mcis_core.models.vgg import VGGD1

RESNET101, NARROW = "resnet101", "narrow"
BACKBONES = (RESNET101, NARROW)
PRETRAINED = ("imagenet", "classifier", "none")

OUTPUT_STRIDE = 8
LARGEFOV_DILATION = 12
LARGEFOV_CHANNELS = 1024  # of the two head convs before the classifier, at width 1
MIN_HEAD_CHANNELS = 16

# torchvision's ResNet up to layer4: the names keep ImageNet state dict keys valid
RESNET_TRUNK = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
RESNET101_CHANNELS = 2048
RESNET101_IMAGENET_URL = RESNET101_IMAGENET.url  # .../resnet101-63fe2227.pth
EXPORT_KIND = "segmentation"
PRETRAINED_PARAM = "segmentation.pretrained_path"


@dataclass(frozen=True)
class SegModelConfig:
    """What it takes to rebuild the network; saved in every checkpoint.

    `width` and `batch_norm` describe the narrow backbone; resnet101 ignores them.
    """

    backbone: str
    width: float
    batch_norm: bool
    num_classes: int  # the dataset's classes + background
    dropout: float  # after each hidden head conv; 0: none (the original's exp2)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")


def resnet101_trunk() -> nn.Sequential:
    """ResNet-101 to layer4, dilated, frozen BN: (B, 3, H, W) -> (B, 2048, H/8, W/8)."""
    resnet = resnet101(
        weights=None,
        replace_stride_with_dilation=[False, True, True],
        norm_layer=FrozenBatchNorm2d,
    )
    return nn.Sequential(OrderedDict((name, getattr(resnet, name)) for name in RESNET_TRUNK))


def head_channels(config: SegModelConfig) -> int:
    """Channels of the two hidden LargeFOV convs: 1024, scaled by width for the narrow net."""
    if config.backbone == RESNET101:
        return LARGEFOV_CHANNELS
    return max(MIN_HEAD_CHANNELS, round(LARGEFOV_CHANNELS * config.width))


def largefov_head(
    in_channels: int, channels: int, num_classes: int, dropout: float
) -> nn.Sequential:
    """3x3 conv with dilation 12 and 1x1 conv, both bias-free and each followed by ReLU (and
    dropout, if any), then the 1x1 classifier with bias: the original's exp2 head."""
    fov = nn.Conv2d(
        in_channels, channels, 3, padding=LARGEFOV_DILATION, dilation=LARGEFOV_DILATION, bias=False
    )
    layers = [("fov", fov), ("fov_relu", nn.ReLU(inplace=True))]
    if dropout:
        layers.append(("fov_dropout", nn.Dropout(dropout)))
    layers += [("hidden", nn.Conv2d(channels, channels, 1, bias=False))]
    layers += [("hidden_relu", nn.ReLU(inplace=True))]
    if dropout:
        layers.append(("hidden_dropout", nn.Dropout(dropout)))
    layers.append(("classifier", nn.Conv2d(channels, num_classes, 1)))
    return nn.Sequential(OrderedDict(layers))


class DeepLabLargeFOV(nn.Module):
    """Backbone of output stride 8 and LargeFOV head: (B, 3, H, W) -> (B, K, ~H/8, ~W/8) logits."""

    def __init__(self, config: SegModelConfig) -> None:
        super().__init__()
        self.config = config
        if config.backbone == RESNET101:
            self.backbone: nn.Module = resnet101_trunk()
            in_channels = RESNET101_CHANNELS
        else:
            self.backbone = VGGD1(config.width, config.batch_norm)
            in_channels = self.backbone.out_channels
        self.head = largefov_head(
            in_channels, head_channels(config), config.num_classes, config.dropout
        )

    def backbone_modules(self) -> list[nn.Module]:
        """The pretrained layers (base learning rate)."""
        return [self.backbone]

    def head_modules(self) -> list[nn.Module]:
        """The new LargeFOV layers (10x learning rate, the DeepLab convention)."""
        return [self.head]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))  # (B, K, h, w)


def load_resnet101_imagenet(trunk: nn.Sequential, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy a torchvision resnet101 state dict (its fc dropped) into the trunk; return the keys.

    Every key and shape is checked before anything is copied.
    """
    targets = trunk.state_dict()
    for key, target in targets.items():
        if key not in state or state[key].shape != target.shape:
            raise ValueError(
                f"ResNet-101 weights: {key} missing or not of shape {tuple(target.shape)}"
            )
    trunk.load_state_dict({key: state[key] for key in targets})
    return list(targets)


def load_classifier_backbone(backbone: nn.Module, path: Path, config: SegModelConfig) -> None:
    """Copy the backbone of the exported MCIS classifier at `path`; its shape must match."""
    classifier = read_exported(path, "classifier")
    width, batch_norm = classifier.config["width"], classifier.config["batch_norm"]
    if (width, batch_norm) != (config.width, config.batch_norm):
        raise ValueError(
            f"the classifier at {path} has width {width} and batch_norm {batch_norm}; the "
            f"segmentation backbone must match, got width {config.width} and batch_norm "
            f"{config.batch_norm}"
        )
    prefix = "backbone."
    backbone.load_state_dict(
        {k[len(prefix) :]: v for k, v in classifier.weights.items() if k.startswith(prefix)}
    )


def build_segmentation_model(
    config: SegModelConfig,
    pretrained: str,
    pretrained_path: str | Path | None,
    classifier_path: str | Path | None,
    seed: int,
) -> DeepLabLargeFOV:
    """A seeded DeepLab-LargeFOV whose backbone starts from ImageNet, the classifier, or scratch."""
    if pretrained not in PRETRAINED:
        raise ValueError(f"pretrained must be one of {PRETRAINED}, got {pretrained!r}")
    if pretrained == "imagenet" and config.backbone != RESNET101:
        raise ValueError("pretrained 'imagenet' needs backbone 'resnet101'")
    if pretrained == "classifier" and config.backbone != NARROW:
        raise ValueError("pretrained 'classifier' needs backbone 'narrow'")
    if pretrained == "classifier" and not classifier_path:
        raise ValueError("pretrained 'classifier' needs the path of the exported classifier")
    torch.manual_seed(seed)
    net = DeepLabLargeFOV(config)
    if pretrained == "imagenet":
        state = imagenet_state_dict(RESNET101_IMAGENET_URL, pretrained_path, PRETRAINED_PARAM)
        load_resnet101_imagenet(net.backbone, state)
    elif pretrained == "classifier":
        load_classifier_backbone(net.backbone, classifier_path, config)
    return net


def load_segmentation_model(path: Path, device: torch.device) -> tuple[DeepLabLargeFOV, dict]:
    """The exported segmentation network at `path` in eval mode on `device`, and its meta."""
    return load_network(path, EXPORT_KIND, lambda c: DeepLabLargeFOV(SegModelConfig(**c)), device)
