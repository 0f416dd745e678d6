"""Tests for the exact dense CRF: a brute-force mean field, invariants, validation, pydensecrf."""

from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from bench.crf_bench import reference_crf
from mcis_core.common.errors import ConfigError
from mcis_core.common.params import from_dict
from mcis_core.evaluate.crf import BilateralKernel, dense_crf
from mcis_core.evaluate.params import CrfParams
from tests.params import section
from tests.tolerances import assert_close_to_scale

SPEC = replace(section("evaluate").crf, method="exact")  # docs/method.md §7.2, exact kernels
# Short-range kernels and a wide colour scale so that a 6 x 7 image has structure to smooth
LOCAL = replace(
    SPEC,
    iterations=3,
    gaussian_sxy=1.5,
    gaussian_compat=2.0,
    bilateral_sxy=3.0,
    bilateral_srgb=25.0,
    bilateral_compat=4.0,
)


def two_tone_image(height: int = 6, width: int = 7, seed: int = 0) -> torch.Tensor:
    """A dark and a bright colour cluster (far enough apart to be skipped) with noise."""
    generator = torch.Generator().manual_seed(seed)
    bright = torch.rand(height, width, 1, generator=generator) > 0.5
    noise = torch.randint(0, 30, (height, width, 3), generator=generator)
    return (bright * 170 + 20 + noise).to(torch.uint8)


def random_probs(classes: int, height: int, width: int, seed: int = 1) -> torch.Tensor:
    """Softmax of random logits (C, H, W), float64, some well below the probability floor."""
    generator = torch.Generator().manual_seed(seed)
    logits = 4.0 * torch.randn(classes, height, width, generator=generator, dtype=torch.float64)
    return torch.softmax(logits, dim=0)


def brute_kernel(features: torch.Tensor) -> torch.Tensor:
    """Symmetrically normalised Gaussian kernel matrix (N, N) of features (N, D), float64."""
    differences = features[:, None, :] - features[None, :, :]  # (N, N, D)
    kernel = torch.exp(-0.5 * (differences**2).sum(-1))
    norm = kernel.sum(1).rsqrt()
    return norm[:, None] * kernel * norm[None, :]


def brute_force_crf(image: torch.Tensor, probs: torch.Tensor, params: CrfParams) -> torch.Tensor:
    """The mean field written plainly with full N x N matrices, in float64."""
    classes, height, width = probs.shape
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    xy = torch.stack((cols, rows), dim=-1).reshape(-1, 2).double()  # (N, 2)
    rgb = image.reshape(-1, 3).double()
    gaussian = brute_kernel(xy / params.gaussian_sxy)
    bilateral = brute_kernel(
        torch.cat((xy / params.bilateral_sxy, rgb / params.bilateral_srgb), dim=1)
    )
    unary = -probs.double().clamp(params.prob_floor, 1.0).log().reshape(classes, -1).T  # (N, C)
    q = torch.softmax(-unary, dim=1)
    for _ in range(params.iterations):
        pairwise = params.gaussian_compat * gaussian @ q + params.bilateral_compat * bilateral @ q
        q = torch.softmax(-unary + pairwise, dim=1)
    return q.T.reshape(classes, height, width)


@pytest.mark.parametrize("params", [SPEC, LOCAL], ids=["spec", "local"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("chunk", [1, 4, 256])
def test_matches_brute_force_mean_field(params, dtype, chunk):
    image, probs = two_tone_image(), random_probs(3, 6, 7)
    expected = brute_force_crf(image, probs, params)
    refined = dense_crf(image, probs.to(dtype), params, chunk=chunk)
    assert refined.dtype == dtype and refined.shape == probs.shape
    # probabilities (scale 1) from kernel sums over 42 pixels: a few ulps per term of the dtype
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    assert_close_to_scale(refined.double(), expected, rtol=rtol)


def test_kernel_product_skips_only_negligible_columns():
    image = two_tone_image()
    kernel = BilateralKernel(image, sxy=3.0, srgb=4.0, chunk=1, dtype=torch.float64)
    assert not all(kernel._reachable(i).all() for i in range(42))  # distant colours skipped
    rows, cols = torch.meshgrid(torch.arange(6), torch.arange(7), indexing="ij")
    xy = torch.stack((cols, rows), dim=-1).reshape(-1, 2).double()
    features = torch.cat((xy / 3.0, image.reshape(-1, 3).double() / 4.0), dim=1)
    dense = torch.exp(-0.5 * ((features[:, None] - features[None]) ** 2).sum(-1))
    values = torch.randn(42, 5, dtype=torch.float64)
    product = torch.empty_like(values)
    product[kernel.order] = kernel.product(values[kernel.order])
    torch.testing.assert_close(product, dense @ values, atol=1e-12, rtol=1e-12)  # float64, O(1)


def test_chunk_size_does_not_change_the_result():
    image, probs = two_tone_image(9, 11, seed=2), random_probs(4, 9, 11, seed=3)
    reference = dense_crf(image, probs, LOCAL)
    for chunk in (1, 2, 7, 64, 99, 1000):
        torch.testing.assert_close(dense_crf(image, probs, LOCAL, chunk=chunk), reference)


@pytest.mark.parametrize(
    "params",
    [
        replace(SPEC, iterations=5, gaussian_compat=0.0, bilateral_compat=0.0),
        replace(SPEC, iterations=0),
    ],
    ids=["zero-weights", "zero-iterations"],
)
def test_without_pairwise_terms_returns_clipped_probs(params):
    probs = random_probs(3, 6, 7)
    clipped = probs.clamp(params.prob_floor, 1.0)
    expected = clipped / clipped.sum(0, keepdim=True)  # softmax(-unary)
    torch.testing.assert_close(dense_crf(two_tone_image(), probs, params), expected)


def confident_patch(height: int, width: int, top: int, left: int) -> torch.Tensor:
    """Probs (3, H, W): class 0 slightly ahead everywhere but a confident 3 x 3 patch of 1."""
    probs = torch.tensor([0.36, 0.34, 0.30], dtype=torch.float64)[:, None, None]
    probs = probs.repeat(1, height, width)
    probs[:, top : top + 3, left : left + 3] = torch.tensor([0.05, 0.9, 0.05])[:, None, None]
    return probs


def test_uniform_image_spreads_a_confident_region_symmetrically():
    size, centre = 11, 5
    image = torch.full((size, size, 3), 120, dtype=torch.uint8)
    probs = confident_patch(size, size, centre - 1, centre - 1)
    params = replace(SPEC, gaussian_sxy=1.5, gaussian_compat=3.0, bilateral_sxy=3.0)
    refined = dense_crf(image, probs, params)
    # Symmetric input, symmetric output: both flips and the transpose
    for view in (refined.flip(1), refined.flip(2), refined.transpose(1, 2)):
        torch.testing.assert_close(view, refined, atol=1e-12, rtol=0)  # float64 probabilities <= 1
    region, spread = probs.argmax(0) == 1, refined.argmax(0) == 1
    assert (spread >= region).all() and spread.sum() > region.sum()
    assert not spread[0, 0]
    # The patch's class fades with the distance from it
    outward = refined[1, centre, centre:]
    assert (outward[1:] <= outward[:-1]).all()
    # and more iterations spread it further
    further = dense_crf(image, probs, replace(params, iterations=3))
    assert (further.argmax(0) == 1).sum() > spread.sum()


def test_labels_spread_up_to_a_colour_edge():
    height, width = 8, 12
    image = torch.full((height, width, 3), 60, dtype=torch.uint8)
    image[:, width // 2 :] = 200
    probs = confident_patch(height, width, 2, 1)
    refined = dense_crf(image, probs, replace(SPEC, gaussian_compat=0.0))
    labels = refined.argmax(0)
    assert (labels[:, : width // 2] == 1).all() and (labels[:, width // 2 :] == 0).all()


@pytest.mark.parametrize(
    ("image", "probs", "match"),
    [
        (np.zeros((6, 7, 3), np.uint8), torch.ones(2, 6, 7), "torch tensors"),
        (torch.zeros(6, 7, 3), torch.ones(2, 6, 7), "uint8"),
        (torch.zeros(6, 7, dtype=torch.uint8), torch.ones(2, 6, 7), r"\(H, W, 3\)"),
        (torch.zeros(6, 7, 4, dtype=torch.uint8), torch.ones(2, 6, 7), r"\(H, W, 3\)"),
        (torch.zeros(6, 7, 3, dtype=torch.uint8), torch.ones(6, 7), "float32 or float64"),
        (torch.zeros(6, 7, 3, dtype=torch.uint8), torch.ones(2, 6, 7).half(), "float32"),
        (torch.zeros(6, 7, 3, dtype=torch.uint8), torch.ones(2, 6, 7, dtype=torch.int64), "float"),
        (torch.zeros(6, 7, 3, dtype=torch.uint8), torch.ones(2, 7, 6), "match image"),
        (torch.zeros(6, 7, 3, dtype=torch.uint8), torch.ones(0, 6, 7), "non-empty"),
        (torch.zeros(1, 2049, 3, dtype=torch.uint8), torch.ones(2, 1, 2049), "<= 2048"),
    ],
)
def test_rejects_bad_inputs(image, probs, match):
    with pytest.raises(ValueError, match=match):
        dense_crf(image, probs, SPEC)


@pytest.mark.parametrize("chunk", [0, -3, 2.5, True])
def test_rejects_bad_chunk(chunk):
    with pytest.raises(ValueError, match="chunk"):
        dense_crf(two_tone_image(), random_probs(3, 6, 7), SPEC, chunk=chunk)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("iterations", -1),
        ("gaussian_sxy", 0.0),
        ("bilateral_sxy", -1.0),
        ("bilateral_srgb", 0.0),
        ("prob_floor", 0.0),
        ("prob_floor", 1.5),
    ],
)
def test_params_reject_bad_values(field, value):
    with pytest.raises(ConfigError, match=rf"evaluate\.crf\.{field}: .* is not allowed: must"):
        from_dict(CrfParams, {**asdict(SPEC), field: value}, where="evaluate.crf")


def scene(seed: int, height: int = 48, width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A noisy image of coloured rectangles and ellipses, and its labels (H, W)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:height, :width]
    labels = np.zeros((height, width), np.int64)
    palette = rng.integers(40, 220, (4, 3))
    for label in (1, 2, 3):
        centre = rng.uniform((8, 8), (height - 8, width - 8))
        radii = rng.uniform(5, 14, 2)
        inside = ((rows - centre[0]) / radii[0]) ** 2 + ((cols - centre[1]) / radii[1]) ** 2 < 1
        labels[inside] = label
    image = palette[labels] + rng.normal(0, 12, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8), labels


def noisy_probs(labels: np.ndarray, classes: int, seed: int) -> np.ndarray:
    """Softmax of a blurred one-hot map plus noise: classes (C, H, W) float32."""
    rng = np.random.default_rng(seed)
    one_hot = torch.nn.functional.one_hot(torch.from_numpy(labels), classes).permute(2, 0, 1)
    blurred = torch.nn.functional.avg_pool2d(
        one_hot[None].float(), 7, stride=1, padding=3, count_include_pad=False
    )[0]
    logits = 4.0 * blurred.numpy() + rng.normal(0, 1.0, blurred.shape)
    return torch.softmax(torch.from_numpy(logits).float(), dim=0).numpy()


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_pydensecrf(seed):
    pytest.importorskip("pydensecrf.densecrf")
    image, labels = scene(seed)
    probs = noisy_probs(labels, 5, seed)
    expected = reference_crf(image, probs, SPEC).argmax(0)
    refined = dense_crf(torch.from_numpy(image), torch.from_numpy(probs), SPEC).argmax(0)
    assert (refined.numpy() == expected).mean() >= 0.99
    assert (expected != probs.argmax(0)).any()  # the CRF did change labels
