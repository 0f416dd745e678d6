"""VGG16-D1: the dilated VGG16 backbone of MCIS (and of OAA before it), output stride 8.

The 13 conv layers of VGG16 (Simonyan & Zisserman, ICLR 2015); max-pool 2x2/2
after blocks 1-3, a 3x3 max-pool with stride 1 after block 4, no pool after
block 5, whose convs use dilation 2. The layer indices of `features` match
torchvision's `vgg16().features`, so ImageNet weights load by name.

`width` scales every channel count and `batch_norm` adds BN after each conv:
the narrow variant trains from scratch on a CPU; width 1 without BN is the paper's.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mcis_core.models.pretrained import VGG16_IMAGENET

VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # (channels, convs) per block
VGG16_IMAGENET_URL = VGG16_IMAGENET.url  # .../vgg16-397923af.pth
# indices of the 13 convs in torchvision's vgg16().features
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


class VGGD1(nn.Module):
    """VGG16 with pool4 stride 1, no pool5 and dilated conv5: (B, 3, H, W) -> (B, C, H/8, W/8)."""

    def __init__(self, width: float = 1.0, batch_norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for block, (channels, convs) in enumerate(VGG16_BLOCKS):
            out_ch = max(1, round(channels * width))
            dilation = 2 if block == 4 else 1
            for _ in range(convs):
                layers.append(nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(out_ch))
                layers.append(nn.ReLU(inplace=True))
                in_ch = out_ch
            if block < 3:
                layers.append(nn.MaxPool2d(2, 2))
            elif block == 3:
                layers.append(nn.MaxPool2d(3, 1, padding=1))
        self.features = nn.Sequential(*layers)
        self.out_channels = in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def init_convs_fan_out(modules: list[nn.Module]) -> None:
    """The original's init of every conv in `modules`: weights N(0, sqrt(2 / (k * k * out))),
    biases zero (He et al., ICCV 2015, over the fan-out)."""
    for module in modules:
        for conv in (m for m in module.modules() if isinstance(m, nn.Conv2d)):
            kernel_h, kernel_w = conv.kernel_size
            std = math.sqrt(2.0 / (kernel_h * kernel_w * conv.out_channels))
            nn.init.normal_(conv.weight, 0.0, std)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)


def load_imagenet_convs(backbone: VGGD1, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy the 13 conv layers of a torchvision vgg16 state dict into a width-1, BN-free VGGD1.

    Every shape is checked before anything is copied. Returns the loaded parameter names.
    """
    convs = [m for m in backbone.features if isinstance(m, nn.Conv2d)]
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in backbone.features)
    if has_bn or len(convs) != len(VGG16_CONV_INDICES) or convs[-1].out_channels != 512:
        raise ValueError("ImageNet weights need the paper's backbone: width 1, no batch norm")
    pairs = []
    for conv, index in zip(convs, VGG16_CONV_INDICES, strict=True):
        for name in ("weight", "bias"):
            key, target = f"features.{index}.{name}", getattr(conv, name)
            if key not in state or state[key].shape != target.shape:
                raise ValueError(f"{key}: missing or not of shape {tuple(target.shape)}")
            pairs.append((key, target))
    with torch.no_grad():
        for key, target in pairs:
            target.copy_(state[key])
    return [key for key, _ in pairs]
