"""Multi-scale, sliding-window, flipped inference against invariants of small synthetic nets."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mcis_core.evaluate.inference import predict_probs, window_starts
from tests.tolerances import assert_close_to_scale

# float32 probabilities from a few convs, a softmax and averages: a few ulps per term, relative
RTOL = 1e-5

CLASSES = 5
EVAL_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5)  # the evaluation protocol's scales
STRIDE_RATIO = 2 / 3  # windows overlap by a third


def pointwise_net() -> nn.Module:
    """1x1 convs only: each pixel's logits depend on that pixel alone."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, CLASSES, 1))


def strided_net() -> nn.Module:
    """3x3 convs with stride 2: output stride 4, a receptive field beyond one pixel."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, CLASSES, 3, stride=2, padding=1),
    )


def mirror_symmetric_net() -> nn.Module:
    """Kernels equal to their own mirror image, so the net commutes with a horizontal flip."""
    net = strided_net()
    with torch.no_grad():
        for conv in net:
            if isinstance(conv, nn.Conv2d):
                conv.weight.copy_((conv.weight + conv.weight.flip(-1)) / 2)
    return net


def test_window_starts_cover_the_length() -> None:
    assert window_starts(10, 16, 10) == [0]
    assert window_starts(16, 16, 10) == [0]
    assert window_starts(30, 16, 10) == [0, 10, 14]
    assert window_starts(36, 16, 10) == [0, 10, 20]


def test_one_scale_one_window_is_the_plain_forward() -> None:
    net, image = strided_net(), torch.randn(3, 24, 24)
    probs = predict_probs(
        net, image, scales=(1.0,), window=24, stride_ratio=STRIDE_RATIO, flip=False
    )
    with torch.no_grad():
        logits = F.interpolate(net(image[None]), (24, 24), mode="bilinear", align_corners=False)
    assert_close_to_scale(probs, torch.softmax(logits, 1)[0], rtol=RTOL)


def test_padding_to_the_window_is_cropped_off() -> None:
    net, image = pointwise_net(), torch.randn(3, 13, 19)
    probs = predict_probs(
        net, image, scales=(1.0,), window=32, stride_ratio=STRIDE_RATIO, flip=False
    )
    with torch.no_grad():
        expected = torch.softmax(net(image[None]), 1)[0]
    assert_close_to_scale(probs, expected, rtol=RTOL)


def test_without_padding_a_small_image_is_the_plain_forward_at_its_own_size() -> None:
    net, image = strided_net(), torch.randn(3, 13, 19)
    unpadded = predict_probs(
        net, image, scales=(1.0,), window=32, stride_ratio=STRIDE_RATIO, flip=False,
        pad_to_window=False,
    )  # fmt: skip
    with torch.no_grad():
        logits = F.interpolate(net(image[None]), (13, 19), mode="bilinear", align_corners=False)
    assert_close_to_scale(unpadded, torch.softmax(logits, 1)[0], rtol=RTOL)
    padded = predict_probs(
        net, image, scales=(1.0,), window=32, stride_ratio=STRIDE_RATIO, flip=False
    )
    assert not torch.allclose(padded, unpadded, atol=1e-3)  # the mean-colour border shows


def test_without_padding_a_long_side_still_slides() -> None:
    net, image = pointwise_net(), torch.randn(3, 13, 50)
    scales = (0.5, 1.0, 1.5)
    sliding = predict_probs(
        net, image, scales=scales, window=16, stride_ratio=STRIDE_RATIO, flip=True,
        pad_to_window=False,
    )  # fmt: skip
    whole = predict_probs(
        net, image, scales=scales, window=80, stride_ratio=STRIDE_RATIO, flip=True
    )
    assert_close_to_scale(sliding, whole, rtol=RTOL)


def test_sliding_windows_match_one_big_window_for_a_pointwise_net() -> None:
    net, image = pointwise_net(), torch.randn(3, 37, 50)
    scales = (0.5, 1.0, 1.5)
    sliding = predict_probs(
        net, image, scales=scales, window=12, stride_ratio=STRIDE_RATIO, flip=True
    )
    whole = predict_probs(
        net, image, scales=scales, window=80, stride_ratio=STRIDE_RATIO, flip=True
    )
    assert_close_to_scale(sliding, whole, rtol=RTOL)


def test_flip_changes_nothing_for_a_mirror_symmetric_net() -> None:
    net, image = mirror_symmetric_net(), torch.randn(3, 21, 21)
    with_flip = predict_probs(
        net, image, scales=(1.0,), window=21, stride_ratio=STRIDE_RATIO, flip=True
    )
    without = predict_probs(
        net, image, scales=(1.0,), window=21, stride_ratio=STRIDE_RATIO, flip=False
    )
    assert_close_to_scale(with_flip, without, rtol=RTOL)


def test_flip_averages_the_mirrored_prediction_back_in_place() -> None:
    net, image = strided_net(), torch.randn(3, 21, 21)
    with_flip = predict_probs(
        net, image, scales=(1.0,), window=21, stride_ratio=STRIDE_RATIO, flip=True
    )
    plain = predict_probs(
        net, image, scales=(1.0,), window=21, stride_ratio=STRIDE_RATIO, flip=False
    )
    mirrored = predict_probs(
        net, image.flip(-1), scales=(1.0,), window=21, stride_ratio=STRIDE_RATIO, flip=False
    )
    assert_close_to_scale(with_flip, (plain + mirrored.flip(-1)) / 2, rtol=RTOL)


@pytest.mark.parametrize("size", [(37, 29), (5, 9), (64, 64)])
def test_probabilities_of_odd_sizes(size: tuple[int, int]) -> None:
    net, image = strided_net(), torch.randn(3, *size)
    probs = predict_probs(
        net, image, scales=EVAL_SCALES, window=16, stride_ratio=STRIDE_RATIO, flip=True
    )
    assert probs.shape == (CLASSES, *size)
    assert torch.all(probs >= 0)
    torch.testing.assert_close(probs.sum(0), torch.ones(size), rtol=RTOL, atol=0)  # sums of 5


def test_net_mode_is_restored_and_no_graph_is_built() -> None:
    net = nn.Sequential(nn.Conv2d(3, CLASSES, 1), nn.Dropout(0.5)).train()
    image = torch.randn(3, 10, 10)
    settings = {"scales": (1.0, 0.5), "window": 8, "stride_ratio": STRIDE_RATIO, "flip": True}
    first = predict_probs(net, image, **settings)
    assert net.training and not first.requires_grad
    torch.testing.assert_close(first, predict_probs(net, image, **settings))


class WindowMeanNet(nn.Module):
    """Logits constant over a window, proportional to the window's mean colour: windows that
    overlap disagree, so averaging logits and averaging probabilities differ."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(-4.0, 4.0, CLASSES))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        means = images.mean(dim=(1, 2, 3))  # (N,)
        logits = means[:, None] * self.scale[None]  # (N, K)
        return logits[:, :, None, None].expand(-1, -1, *images.shape[-2:])


def test_windows_average_probabilities_not_logits() -> None:
    image = torch.zeros(3, 8, 12)
    image[:, :, 6:] = 1.0  # the two windows see different means
    net = WindowMeanNet()
    probs = predict_probs(net, image, scales=(1.0,), window=8, stride_ratio=0.5, flip=False)
    with torch.no_grad():
        left, right = net(image[None, :, :, :8])[0], net(image[None, :, :, 4:])[0]
    left_p, right_p = torch.softmax(left, 0), torch.softmax(right, 0)  # (K, 8, 8) each
    expected = torch.zeros(CLASSES, 8, 12)
    expected[:, :, :4] = left_p[:, :, :4]
    expected[:, :, 4:8] = (left_p[:, :, 4:] + right_p[:, :, :4]) / 2
    expected[:, :, 8:] = right_p[:, :, 4:]
    assert_close_to_scale(probs, expected, rtol=RTOL)
    logit_average = torch.softmax((left[:, 0, 0] + right[:, 0, 0]) / 2, 0)
    assert not torch.allclose(probs[:, 0, 6], logit_average, atol=1e-3)


def test_scales_resize_bicubically() -> None:
    net, image = pointwise_net(), torch.randn(3, 20, 20)
    probs = predict_probs(net, image, scales=(0.5,), window=64, stride_ratio=0.5, flip=False)
    with torch.no_grad():
        half = F.interpolate(image[None], (10, 10), mode="bicubic", align_corners=False)
        small = torch.softmax(net(half), 1)
        expected = F.interpolate(small, (20, 20), mode="bicubic", align_corners=False)[0]
    assert_close_to_scale(probs, expected, rtol=RTOL)
