"""Tests of the VGG16-D1 backbone and the MCIS co-attention network (mcis_core.models.vgg,
mcis_core.classifier.network) against docs/method.md §3, with reference formulas written here."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torchvision
from torch import nn

from mcis_core.classifier.network import CoAttentionNet, ModelConfig, global_average
from mcis_core.classifier.train import build_model
from mcis_core.dataset.voc import VOC_CLASSES
from mcis_core.models.vgg import (
    VGG16_CONV_INDICES,
    VGGD1,
    init_convs_fan_out,
    load_imagenet_convs,
)
from tests.params import section
from tests.tolerances import assert_close_to_scale

TINY = ModelConfig(width=0.0625, batch_norm=False, num_classes=len(VOC_CLASSES))  # 32 channels
K = TINY.num_classes


def tiny_net(seed: int = 0) -> CoAttentionNet:
    """A narrow BN-free net whose heads are re-drawn large enough to give O(1) outputs."""
    torch.manual_seed(seed)
    net = CoAttentionNet(TINY)
    with torch.no_grad():
        for head in (net.classifier, net.co_classifier, net.gate):
            head.weight.normal_(std=0.3)
            if head.bias is not None:
                head.bias.normal_(std=0.3)
    return net


def softmax_columns(x: torch.Tensor) -> torch.Tensor:
    """Softmax of a 2-D matrix over its rows axis (each column sums to 1)."""
    e = torch.exp(x - x.max(dim=0, keepdim=True).values)
    return e / e.sum(dim=0, keepdim=True)


def reference_coattend(
    weight: torch.Tensor, fa: torch.Tensor, fb: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The spec's co-attention, one pair at a time, in float64."""
    weight = weight.double()
    fa_att, fb_att = [], []
    for a, b in zip(fa.double(), fb.double(), strict=True):
        mat_a, mat_b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)  # C x Na, C x Nb
        s = (weight @ mat_a).T @ mat_b  # Na x Nb
        attend_b = softmax_columns(s)  # A: softmax over the Na axis
        attend_a = softmax_columns(s.T)  # B: softmax of S^T over the Nb axis
        fb_att.append((mat_a @ attend_b).reshape(b.shape))
        fa_att.append((mat_b @ attend_a).reshape(a.shape))
    return torch.stack(fa_att), torch.stack(fb_att)


# --- shapes and structure --------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 256])
def test_output_stride_is_8(size: int) -> None:
    torch.manual_seed(0)
    images = torch.randn(1, 3, size, size)
    with torch.no_grad():
        backbone_out = VGGD1(width=0.0625)(images)
        features = CoAttentionNet(TINY).features(images)
    assert backbone_out.shape == (1, 32, size // 8, size // 8)
    assert features.shape == (1, 32, size // 8, size // 8)


def test_forward_shapes_for_images_of_different_sizes() -> None:
    net = tiny_net().eval()
    batch = 2
    with torch.no_grad():
        out = net(torch.randn(batch, 3, 64, 64), torch.randn(batch, 3, 128, 96))
    size_a, size_b = (8, 8), (16, 12)
    expected = {
        "logits_a": (batch, K),
        "logits_b": (batch, K),
        "cam_a": (batch, K, *size_a),
        "cam_b": (batch, K, *size_b),
        "co_cam_a": (batch, K, *size_a),
        "co_cam_b": (batch, K, *size_b),
        "co_logits_a": (batch, K),
        "co_logits_b": (batch, K),
        "comp_logits_a": (batch, K),
        "comp_logits_b": (batch, K),
    }
    assert {key: tuple(value.shape) for key, value in out.items()} == expected
    torch.testing.assert_close(out["logits_a"], out["cam_a"].mean(dim=(2, 3)))
    torch.testing.assert_close(out["co_logits_b"], out["co_cam_b"].mean(dim=(2, 3)))


def test_paper_backbone_layout() -> None:
    layers = list(VGGD1(width=1.0, batch_norm=False).features)
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13
    assert not any(isinstance(m, nn.BatchNorm2d) for m in layers)
    assert [c.out_channels for c in convs] == [64] * 2 + [128] * 2 + [256] * 3 + [512] * 6
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) for c in convs)
    assert [c.dilation for c in convs] == [(1, 1)] * 10 + [(2, 2)] * 3
    assert [c.padding for c in convs] == [(1, 1)] * 10 + [(2, 2)] * 3
    pools = [m for m in layers if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride, p.padding) for p in pools] == [(2, 2, 0)] * 3 + [(3, 1, 1)]
    # each pool comes right after the ReLU of the last conv of blocks 1-4; none after block 5
    convs_before = [
        sum(isinstance(m, nn.Conv2d) for m in layers[:i])
        for i, m in enumerate(layers)
        if isinstance(m, nn.MaxPool2d)
    ]
    assert convs_before == [2, 4, 7, 10]
    assert isinstance(layers[-1], nn.ReLU)


# --- co-attention math -----------------------------------------------------------------


def test_coattend_matches_spec_formulas() -> None:
    net = tiny_net()
    torch.manual_seed(1)
    fa = torch.randn(2, 32, 3, 4)  # Na = 12
    fb = torch.randn(2, 32, 2, 5)  # Nb = 10
    with torch.no_grad():
        fa_att, fb_att = net.coattend(fa, fb)
    ref_a, ref_b = reference_coattend(net.affinity.weight.detach(), fa, fb)
    assert fa_att.shape == fa.shape and fb_att.shape == fb.shape
    # float32 against float64: attended features are weighted sums of the partner's columns
    assert_close_to_scale(fa_att.double(), ref_a, rtol=1e-5)
    assert_close_to_scale(fb_att.double(), ref_b, rtol=1e-5)


def test_coattend_of_spatially_constant_partner_returns_it() -> None:
    # attended features are convex combinations of the partner's columns
    net = tiny_net()
    torch.manual_seed(2)
    fa = torch.randn(1, 32, 3, 3)
    column = torch.randn(1, 32, 1, 1)
    fb = column.expand(1, 32, 2, 4).contiguous()
    with torch.no_grad():
        fa_att, _ = net.coattend(fa, fb)
    # each element is its column's value times float32 weights summing to 1: relative error
    torch.testing.assert_close(fa_att, column.expand_as(fa), rtol=1e-5, atol=0)


def test_complementary_logits_formula() -> None:
    net = tiny_net()
    torch.manual_seed(3)
    features = torch.randn(2, 32, 3, 5)
    attended = torch.randn(2, 32, 3, 5)
    with torch.no_grad():
        got = net.complementary_logits(features, attended)
        gate_w = net.gate.weight[0, :, 0, 0]
        gate = torch.sigmoid(torch.einsum("c,bchw->bhw", gate_w, attended))
        kept = features * (1 - gate[:, None])
        cam = torch.einsum("kc,bchw->bkhw", net.co_classifier.weight[:, :, 0, 0], kept)
        expected = cam.mean(dim=(2, 3))
    assert got.shape == (2, K)
    assert_close_to_scale(got, expected, rtol=1e-5)  # float32 sums over 32 channels, 15 positions
    assert expected.abs().max() > 1e-2  # the comparison is not between near-zero values


def test_global_average_is_spatial_mean() -> None:
    cam = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    expected = torch.tensor([[1.5, 5.5, 9.5], [13.5, 17.5, 21.5]])
    torch.testing.assert_close(global_average(cam), expected)


def test_features_reused_across_partners_match_recomputation() -> None:
    net = tiny_net().eval()
    torch.manual_seed(4)
    anchor = torch.randn(2, 3, 32, 32)
    partners = [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 24, 24), anchor.flip(-1)]
    with torch.no_grad():
        fa = net.features(anchor)
        for partner in partners:
            shared = net.pair(fa, net.features(partner))
            fresh = net(anchor, partner)
            for key in ("co_cam_a", "co_cam_b", "comp_logits_a", "comp_logits_b"):
                assert_close_to_scale(getattr(shared, key), fresh[key], rtol=1e-5)


# --- ImageNet weights --------------------------------------------------------------------


@pytest.fixture(scope="module")
def torchvision_vgg16() -> nn.Module:
    """torchvision's vgg16 with random conv weights; its 120M-weight classifier stays on `meta`."""
    with torch.device("meta"):
        model = torchvision.models.vgg16(weights=None)
    model.features.to_empty(device="cpu")
    torch.manual_seed(5)
    for conv in model.features:
        if isinstance(conv, nn.Conv2d):  # torchvision's own init, signal neither dies nor explodes
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.normal_(conv.bias, std=0.1)
    return model.eval()


def conv_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The `features.*` entries of a torchvision vgg16 state dict."""
    return {k: v for k, v in model.state_dict().items() if k.startswith("features.")}


def test_imagenet_convs_line_up_with_torchvision(torchvision_vgg16: nn.Module) -> None:
    state = conv_state(torchvision_vgg16)
    backbone = VGGD1(width=1.0, batch_norm=False).eval()
    loaded = load_imagenet_convs(backbone, state)
    assert len(loaded) == 26 and len(set(loaded)) == 26
    assert set(loaded) == {
        f"features.{i}.{p}" for i in VGG16_CONV_INDICES for p in ("weight", "bias")
    }
    convs = [m for m in backbone.features if isinstance(m, nn.Conv2d)]
    for conv, index in zip(convs, VGG16_CONV_INDICES, strict=True):
        assert torch.equal(conv.weight, state[f"features.{index}.weight"])
        assert torch.equal(conv.bias, state[f"features.{index}.bias"])

    torch.manual_seed(6)
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ours = backbone.features[:23](image)  # up to conv4_3 + ReLU
        theirs = torchvision_vgg16.features[:23](image)
        assert ours.shape == theirs.shape == (1, 512, 4, 4)
        assert theirs.abs().mean() > 1e-2  # the signal survives 10 random layers
        # float32 convs, relative to the activations' scale (ReLU leaves many near 0)
        assert_close_to_scale(ours, theirs, rtol=1e-5)
        # and the rest: 3x3/1 pool, then conv5 with torchvision's weights at dilation 2
        x = nn.functional.max_pool2d(theirs, 3, 1, padding=1)
        for index in VGG16_CONV_INDICES[-3:]:
            w, b = state[f"features.{index}.weight"], state[f"features.{index}.bias"]
            x = torch.relu(nn.functional.conv2d(x, w, b, padding=2, dilation=2))
        assert x.abs().mean() > 1e-2
        assert_close_to_scale(backbone(image), x, rtol=1e-5)


@pytest.mark.parametrize(("width", "batch_norm"), [(0.5, False), (0.0625, False), (1.0, True)])
def test_imagenet_convs_need_paper_backbone(
    torchvision_vgg16: nn.Module, width: float, batch_norm: bool
) -> None:
    with pytest.raises(ValueError):
        load_imagenet_convs(VGGD1(width, batch_norm), conv_state(torchvision_vgg16))


@pytest.mark.parametrize(
    ("in_channels", "out_channels", "kernel"), [(512, 512, 3), (512, 20, 1), (3, 64, 3)]
)
def test_original_init_draws_weights_from_the_fan_out_normal(
    in_channels: int, out_channels: int, kernel: int
) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(in_channels, out_channels, kernel)
    init_convs_fan_out([conv])
    expected_std = math.sqrt(2.0 / (kernel * kernel * out_channels))
    weights = conv.weight.detach().double()
    samples = weights.numel()  # standard error of a sample std: std / sqrt(2n)
    assert abs(weights.std().item() - expected_std) < 5 * expected_std / math.sqrt(2 * samples)
    assert abs(weights.mean().item()) < 5 * expected_std / math.sqrt(samples)
    assert torch.count_nonzero(conv.bias) == 0


def test_original_init_covers_backbone_extra_and_cam_only() -> None:
    params = replace(section("classifier"), backbone="narrow", width=0.0625, init="original")
    original = build_model(params, len(VOC_CLASSES), seed=0)
    pytorch = build_model(replace(params, init="pytorch"), len(VOC_CLASSES), seed=0)
    for name in ("affinity", "co_classifier", "gate"):  # PyTorch's default init in both
        assert torch.equal(getattr(original, name).weight, getattr(pytorch, name).weight), name
    extra_conv = original.extra[0]
    std = math.sqrt(2.0 / (9 * extra_conv.out_channels))
    assert abs(extra_conv.weight.std().item() - std) < 0.1 * std
    assert torch.count_nonzero(original.classifier.bias) == 0
    assert not torch.equal(original.classifier.weight, pytorch.classifier.weight)


def test_the_contrastive_gate_has_no_bias() -> None:
    assert tiny_net().gate.bias is None
