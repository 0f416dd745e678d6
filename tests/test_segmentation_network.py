"""DeepLab-LargeFOV: shapes, frozen batch norm, ImageNet and classifier initialisation."""

import math
import socket
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet101
from torchvision.ops import FrozenBatchNorm2d

from mcis_core.classifier.network import EXPORT_KIND, CoAttentionNet, ModelConfig
from mcis_core.classifier.train import export_meta
from mcis_core.common.errors import WeightsError
from mcis_core.dataset.voc import VOC_CLASSES
from mcis_core.models.export import Exported, save_exported
from mcis_core.models.pretrained import hub_cache_path
from mcis_core.segmentation.network import (
    MIN_HEAD_CHANNELS,
    RESNET101_IMAGENET_URL,
    DeepLabLargeFOV,
    SegModelConfig,
    build_segmentation_model,
    head_channels,
)
from mcis_core.training.optim import parameter_groups
from tests.params import section

NUM_SEG_CLASSES = len(VOC_CLASSES) + 1  # the classes and the background
NARROW = SegModelConfig(
    backbone="narrow", width=1 / 16, batch_norm=True, num_classes=NUM_SEG_CLASSES, dropout=0.0
)
# resnet101 ignores width and batch_norm
RESNET = SegModelConfig(
    backbone="resnet101", width=1.0, batch_norm=False, num_classes=NUM_SEG_CLASSES, dropout=0.0
)


@pytest.fixture(scope="module")
def resnet_net() -> DeepLabLargeFOV:
    torch.manual_seed(0)
    return DeepLabLargeFOV(RESNET)


@pytest.fixture
def classifier_file(tmp_path: Path) -> Path:
    torch.manual_seed(1)
    config = ModelConfig(
        width=NARROW.width, batch_norm=NARROW.batch_norm, num_classes=len(VOC_CLASSES)
    )
    classifier = CoAttentionNet(config)
    for module in classifier.modules():  # non-trivial BN statistics, to see them copied
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "classifier.pt"
    meta = export_meta(section("classifier"), VOC_CLASSES)
    save_exported(path, Exported(EXPORT_KIND, classifier.state_dict(), asdict(config), meta))
    return path


def test_resnet101_output_stride_8(resnet_net: DeepLabLargeFOV) -> None:
    resnet_net.eval()
    with torch.no_grad():
        out = resnet_net(torch.randn(1, 3, 65, 57))
    # conv1 and maxpool round up, and so does layer2's strided 3x3 conv
    assert out.shape == (1, NUM_SEG_CLASSES, math.ceil(65 / 8), math.ceil(57 / 8))


def test_narrow_output_stride_8() -> None:
    net = DeepLabLargeFOV(NARROW).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 65, 48))
    # VGG's 2x2 pools round down
    assert out.shape == (2, NUM_SEG_CLASSES, 65 // 8, 48 // 8)


def test_the_paper_head_is_the_original_exp2_head(resnet_net: DeepLabLargeFOV) -> None:
    head = resnet_net.head
    assert [name for name, _ in head.named_children()] == [
        "fov", "fov_relu", "hidden", "hidden_relu", "classifier"
    ]  # fmt: skip
    assert not any(isinstance(m, torch.nn.Dropout) for m in resnet_net.modules())
    assert (head.fov.in_channels, head.fov.out_channels) == (2048, 1024)
    assert head.fov.dilation == (12, 12) and head.fov.padding == (12, 12)
    assert head.fov.bias is None and head.hidden.bias is None
    assert head.hidden.kernel_size == (1, 1) and head.classifier.kernel_size == (1, 1)
    assert head.classifier.bias is not None and head.classifier.out_channels == NUM_SEG_CLASSES


def test_dropout_is_a_parameter() -> None:
    head = DeepLabLargeFOV(replace(NARROW, dropout=0.5)).head
    dropouts = [m for m in head.modules() if isinstance(m, torch.nn.Dropout)]
    assert [d.p for d in dropouts] == [0.5, 0.5]
    assert [name for name, _ in head.named_children()].index("fov_dropout") == 2


def test_head_channels_scale_with_width() -> None:
    assert head_channels(replace(RESNET, width=0.1)) == 1024
    assert head_channels(replace(NARROW, width=0.5)) == 512
    assert head_channels(replace(NARROW, width=1 / 256)) == MIN_HEAD_CHANNELS


def test_unknown_backbone_is_rejected() -> None:
    with pytest.raises(ValueError, match="backbone"):
        replace(RESNET, backbone="vgg19")


def test_frozen_batch_norm_has_no_parameters_and_keeps_statistics(
    resnet_net: DeepLabLargeFOV,
) -> None:
    frozen = [m for m in resnet_net.backbone.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(frozen) == 104  # 1 stem + 3 per bottleneck * 33 + 4 downsample
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in resnet_net.modules())
    for module in frozen:
        assert not list(module.parameters())
        assert not any(b.requires_grad for b in module.buffers())
    before = {k: v.clone() for k, v in resnet_net.backbone.state_dict().items()}
    resnet_net.train()
    with torch.no_grad():
        resnet_net(torch.randn(2, 3, 33, 33) * 3 + 1)
    after = resnet_net.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_head_gets_the_largefov_layers(resnet_net: DeepLabLargeFOV) -> None:
    assert resnet_net.head_modules() == [resnet_net.head]
    assert resnet_net.backbone_modules() == [resnet_net.backbone]
    convs = [m for m in resnet_net.head if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.dilation, c.out_channels) for c in convs] == [
        ((3, 3), (12, 12), 1024),
        ((1, 1), (1, 1), 1024),
        ((1, 1), (1, 1), NUM_SEG_CLASSES),
    ]
    params = section("segmentation")
    groups = parameter_groups(
        resnet_net.backbone_modules(), resnet_net.head_modules(), params.lr, params.lr_multipliers
    )
    grouped = {id(p) for g in groups for p in g["params"]}
    assert grouped == {id(p) for p in resnet_net.parameters()}
    head = {id(p) for g in groups if g["lr_mult"] >= 10 for p in g["params"]}
    assert head == {id(p) for p in resnet_net.head.parameters()}


def test_imagenet_weights_fill_every_trunk_tensor(tmp_path: Path) -> None:
    torch.manual_seed(2)
    reference = resnet101(weights=None).state_dict()  # random, standing in for ImageNet
    path = tmp_path / hub_cache_path(RESNET101_IMAGENET_URL).name
    torch.save(reference, path)
    net = build_segmentation_model(RESNET, "imagenet", path, None, seed=0)
    loaded = net.backbone.state_dict()
    expected = {k for k in reference if not k.startswith("fc.") and "num_batches" not in k}
    assert set(loaded) == expected
    assert all(torch.equal(loaded[k], reference[k]) for k in expected)


def test_missing_imagenet_weights_name_the_file_and_the_param(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", offline)  # the download fails at once
    with pytest.raises(WeightsError) as error:
        build_segmentation_model(RESNET, "imagenet", None, None, seed=0)
    message = str(error.value)
    assert "resnet101-63fe2227.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "segmentation.pretrained_path" in message
    with pytest.raises(WeightsError, match="segmentation.pretrained_path"):
        build_segmentation_model(RESNET, "imagenet", tmp_path / "nowhere.pth", None, seed=0)


def test_classifier_init_copies_every_backbone_tensor(classifier_file: Path) -> None:
    net = build_segmentation_model(NARROW, "classifier", None, classifier_file, seed=0)
    classifier = torch.load(classifier_file, weights_only=True)["model"]
    loaded = net.backbone.state_dict()
    expected = {k.removeprefix("backbone."): v for k, v in classifier.items() if "backbone." in k}
    assert set(loaded) == set(expected)
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)


def test_classifier_init_needs_the_same_backbone(classifier_file: Path) -> None:
    for config in (
        replace(NARROW, width=1 / 8),
        replace(NARROW, batch_norm=False),
    ):
        with pytest.raises(ValueError, match="must match"):
            build_segmentation_model(config, "classifier", None, classifier_file, seed=0)


def test_pretrained_must_fit_the_backbone(classifier_file: Path) -> None:
    with pytest.raises(ValueError, match="resnet101"):
        build_segmentation_model(NARROW, "imagenet", None, None, seed=0)
    with pytest.raises(ValueError, match="narrow"):
        build_segmentation_model(RESNET, "classifier", None, classifier_file, seed=0)
    with pytest.raises(ValueError, match="pretrained"):
        build_segmentation_model(NARROW, "scratch", None, None, seed=0)


def test_build_is_seeded() -> None:
    first = build_segmentation_model(NARROW, "none", None, None, seed=3).state_dict()
    again = build_segmentation_model(NARROW, "none", None, None, seed=3).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
