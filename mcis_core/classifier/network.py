"""The MCIS co-attention classifier (Sun et al., "Mining Cross-Image Semantics for Weakly
Supervised Semantic Segmentation", ECCV 2020; docs/method.md §3).

A VGG16-D1 backbone and three 3x3 "extra" convs give each image a feature map F.
- single-image branch: 1x1 conv -> class activation maps (CAM), global average -> logits;
- co-attention of images a and b: S = (W Fa)^T Fb, softmax over each axis, each image's
  features re-expressed through the other's; a bias-free 1x1 classifier shared by both
  images turns them into co-attention CAMs, trained on the classes the pair shares;
- contrastive co-attention: a gate g = sigmoid(1x1 conv on the attended feature) removes
  what the partner explains, F * (1 - g), and the same classifier predicts the classes the
  image has but its partner lacks.

`features` is separate from the heads so one image's features serve several partners.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mcis_core.models.export import load_network
from mcis_core.models.vgg import VGGD1

EXPORT_KIND = "classifier"
EXTRA_CONVS = 3


@dataclass(frozen=True)
class ModelConfig:
    """What it takes to rebuild the network; saved in every checkpoint."""

    width: float  # channel multiplier of VGG16-D1 (1: the paper's)
    batch_norm: bool  # BN after every conv (the paper's: none)
    num_classes: int


@dataclass
class PairOutput:
    """Co-attention CAMs of images a and b, and their complementary logits."""

    co_cam_a: torch.Tensor  # (B, K, ha, wa)
    co_cam_b: torch.Tensor  # (B, K, hb, wb)
    comp_logits_a: torch.Tensor  # (B, K)
    comp_logits_b: torch.Tensor  # (B, K)


def global_average(cam: torch.Tensor) -> torch.Tensor:
    """(B, K, h, w) maps -> (B, K) logits."""
    return cam.mean(dim=(2, 3))


class CoAttentionNet(nn.Module):
    """The co-attention classifier: backbone, extra convs, CAM head, co-attention heads."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = VGGD1(config.width, config.batch_norm)
        channels = self.backbone.out_channels
        extra: list[nn.Module] = []
        for _ in range(EXTRA_CONVS):
            extra.append(nn.Conv2d(channels, channels, 3, padding=1))
            if config.batch_norm:
                extra.append(nn.BatchNorm2d(channels))
            extra.append(nn.ReLU(inplace=True))
        self.extra = nn.Sequential(*extra)
        self.classifier = nn.Conv2d(channels, config.num_classes, 1)
        self.affinity = nn.Linear(channels, channels, bias=False)  # W of S = (W Fa)^T Fb
        self.co_classifier = nn.Conv2d(channels, config.num_classes, 1, bias=False)
        self.gate = nn.Conv2d(channels, 1, 1, bias=False)  # bias-free, as in the paper

    def original_init_modules(self) -> list[nn.Module]:
        """The layers whose convs the original initialises itself (docs/method.md §3.1); the
        affinity, the co-attention classifier and the gate keep PyTorch's default init."""
        return [self.backbone, self.extra, self.classifier]

    def head_modules(self) -> list[nn.Module]:
        """The layers new to MCIS (trained with the 10x / 20x learning rates)."""
        return [self.extra, self.classifier, self.affinity, self.co_classifier, self.gate]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, C, H/8, W/8) features F."""
        return self.extra(self.backbone(images))

    def cam(self, features: torch.Tensor) -> torch.Tensor:
        """Single-image class activation maps (B, K, h, w)."""
        return self.classifier(features)

    def coattend(self, fa: torch.Tensor, fb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each image's features as seen through the other: (Fa_att, Fb_att), shapes of Fa, Fb."""
        batch, channels = fa.shape[:2]
        flat_a, flat_b = fa.flatten(2), fb.flatten(2)  # (B, C, Na), (B, C, Nb)
        transformed_a = self.affinity(flat_a.transpose(1, 2))  # (B, Na, C) = (W Fa)^T
        affinity = torch.bmm(transformed_a, flat_b)  # (B, Na, Nb) = S
        attend_b = torch.softmax(affinity, dim=1)  # A: over the Na axis
        attend_a = torch.softmax(affinity.transpose(1, 2), dim=1)  # B: S^T over the Nb axis
        fb_att = torch.bmm(flat_a, attend_b)  # (B, C, Nb)
        fa_att = torch.bmm(flat_b, attend_a)  # (B, C, Na)
        return fa_att.view_as(fa), fb_att.view_as(fb)

    def complementary_logits(self, features: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """Logits of F * (1 - g), g = sigmoid(gate(attended)): what the partner does not explain."""
        gate = torch.sigmoid(self.gate(attended))  # (B, 1, h, w)
        return global_average(self.co_classifier(features * (1 - gate)))

    def pair(self, fa: torch.Tensor, fb: torch.Tensor) -> PairOutput:
        """Co-attention outputs of a pair whose features are already computed."""
        fa_att, fb_att = self.coattend(fa, fb)
        return PairOutput(
            co_cam_a=self.co_classifier(fa_att),
            co_cam_b=self.co_classifier(fb_att),
            comp_logits_a=self.complementary_logits(fa, fa_att),
            comp_logits_b=self.complementary_logits(fb, fb_att),
        )

    def forward(self, images_a: torch.Tensor, images_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything for an image pair: logits, CAMs, co-attention CAMs, complementary logits."""
        fa, fb = self.features(images_a), self.features(images_b)
        cam_a, cam_b = self.cam(fa), self.cam(fb)
        out = self.pair(fa, fb)
        return {
            "logits_a": global_average(cam_a), "logits_b": global_average(cam_b),
            "cam_a": cam_a, "cam_b": cam_b,
            "co_cam_a": out.co_cam_a, "co_cam_b": out.co_cam_b,
            "co_logits_a": global_average(out.co_cam_a),
            "co_logits_b": global_average(out.co_cam_b),
            "comp_logits_a": out.comp_logits_a, "comp_logits_b": out.comp_logits_b,
        }  # fmt: skip


def load_classifier(path: Path, device: torch.device) -> tuple[CoAttentionNet, dict]:
    """The exported classifier at `path` in eval mode on `device`, and its meta (classes,
    input size, views)."""
    return load_network(path, EXPORT_KIND, lambda c: CoAttentionNet(ModelConfig(**c)), device)
