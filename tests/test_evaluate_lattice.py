"""Tests for the permutohedral-lattice dense CRF: filter properties, exact CRF, pydensecrf.

The lattice filter's own properties (constant signal, linearity, transpose, symmetry), the
CRF against the exact one (mcis_core.evaluate.crf) on small images and against pydensecrf.
"""

from dataclasses import asdict, fields, replace

import numpy as np
import pytest
import torch

from bench.crf_bench import reference_crf
from mcis_core.common.errors import ConfigError
from mcis_core.common.params import from_dict
from mcis_core.evaluate import lattice_index
from mcis_core.evaluate.crf import BilateralKernel, dense_crf, gaussian_message
from mcis_core.evaluate.lattice import PermutohedralLattice
from mcis_core.evaluate.lattice_crf import (
    normalised_kernel,
    pixel_positions,
    smoothness_kernel,
    softmax,
)
from mcis_core.evaluate.params import CrfParams
from tests.params import section
from tests.test_evaluate_crf import noisy_probs, scene
from tests.tolerances import assert_close_to_scale

LATTICE = section("evaluate").crf  # docs/method.md §7.2, as params.yaml holds it
EXACT = replace(LATTICE, method="exact")
CPU = torch.device("cpu")
SIZES = [(24, 32), (40, 30)]
CLASSES = 5


def structured_scene(seed: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy coloured ellipses (H, W, 3) and noisy blurred one-hot probabilities (C, H, W)."""
    image, labels = scene(seed, height, width)
    return torch.from_numpy(image), torch.from_numpy(noisy_probs(labels, CLASSES, seed))


def random_scene(seed: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform noise (H, W, 3) and the softmax of random logits (C, H, W)."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (height, width, 3), generator=generator, dtype=torch.uint8)
    return image, torch.softmax(2 * torch.randn(CLASSES, height, width, generator=generator), 0)


def bilateral_features(image: torch.Tensor, sxy: float, srgb: float) -> torch.Tensor:
    """(x / sxy, y / sxy, r / srgb, g / srgb, b / srgb) per pixel: (N, 5)."""
    height, width, _ = image.shape
    xy = pixel_positions(height, width, torch.float32, CPU)
    return torch.cat((xy / sxy, image.reshape(-1, 3).float() / srgb), dim=1)


def exact_row_sums(features: torch.Tensor) -> torch.Tensor:
    """sum_j exp(-|f_i - f_j|^2 / 2) in float64: (N,)."""
    distances = torch.cdist(features.double(), features.double())
    return torch.exp(-0.5 * distances**2).sum(1)


def dense_matrix(lattice: PermutohedralLattice, points: int) -> torch.Tensor:
    """The lattice filter as a matrix (N, N): column j is the filter of the j-th unit vector."""
    return lattice.filter(torch.eye(points))


# The lattice filter


def test_filter_of_a_constant_signal_is_the_kernels_row_sum_inside_a_dense_grid():
    height, width, sxy = 40, 30, 3.0
    features = pixel_positions(height, width, torch.float32, CPU) / sxy
    lattice = PermutohedralLattice.build(features)
    ones = torch.ones(height * width, 1)
    ratio = (lattice.filter(ones)[:, 0].double() / exact_row_sums(features)).reshape(height, width)
    # Three standard deviations from the border every kernel sum is complete on the lattice, so
    # only its translation variance (where a point falls in its simplex) remains: <= 0.4% here
    inside = ratio[9:-9, 9:-9]
    assert (inside - 1).abs().max() <= 0.01
    # At the border the lattice also loses the part of the kernel beyond its last vertices
    assert ratio.min() >= 0.85 and ratio.max() <= 1.03
    torch.testing.assert_close(lattice.filter(2.5 * ones), 2.5 * lattice.filter(ones))


def test_filter_is_linear():
    image, _ = structured_scene(0, 24, 32)
    lattice = PermutohedralLattice.build(bilateral_features(image, 10.0, 20.0))
    generator = torch.Generator().manual_seed(0)
    u, v = torch.rand(2, 24 * 32, 3, generator=generator)
    # float32 sums of a few dozen weighted terms: a few ulps each (tests/tolerances.py)
    expected = 0.3 * lattice.filter(u) - 2.0 * lattice.filter(v)
    assert_close_to_scale(lattice.filter(0.3 * u - 2.0 * v), expected, rtol=1e-5)


def test_reversed_blur_order_transposes_the_filter_and_a_complete_lattice_is_symmetric():
    height, width = 24, 32
    features = pixel_positions(height, width, torch.float32, CPU) / 3.0
    lattice = PermutohedralLattice.build(features)
    reverse = replace(
        lattice,
        blur_vertices=lattice.blur_vertices.flip(0),
        blur_weights=lattice.blur_weights.flip(0),
    )
    matrix = dense_matrix(lattice, height * width)  # splat^T blur_d ... blur_0 splat
    assert_close_to_scale(dense_matrix(reverse, height * width), matrix.T, rtol=1e-5)
    assert matrix.min() >= -1e-6 * matrix.max()  # barycentric weights >= 0, up to rounding
    # The blurs commute where no neighbour is missing: symmetric away from the border
    inside = pixel_positions(height, width, torch.float32, CPU)
    inside = ((inside >= 3) & (inside < torch.tensor([width - 3, height - 3]))).all(1)
    core = matrix[inside][:, inside]
    assert_close_to_scale(core, core.T, rtol=1e-5)


def test_kernel_messages_match_the_exact_kernels():
    # Mean relative error of D^-1/2 K D^-1/2 Q on these tiny images: measured <= 5.9%
    # (bilateral) and <= 1.6% (Gaussian), shrinking with the size (4% and 0.9% at 48 x 64)
    for height, width in SIZES:
        image, probs = structured_scene(1, height, width)
        q = probs / probs.sum(0)
        flat = q.reshape(CLASSES, -1).T.contiguous()  # (N, C)
        xy = pixel_positions(height, width, torch.float32, CPU)
        exact = gaussian_message(q, 3.0).reshape(CLASSES, -1).T
        ours = normalised_kernel(xy / 3.0, 1.0).filter(flat)
        assert (ours - exact).abs().mean() <= 0.025 * exact.abs().mean()
        exact = BilateralKernel(image, 80.0, 4.0, 256, torch.float32).message(q)
        exact = exact.reshape(CLASSES, -1).T
        ours = normalised_kernel(bilateral_features(image, 80.0, 4.0), 1.0).filter(flat)
        assert (ours - exact).abs().mean() <= 0.08 * exact.abs().mean()


# The CRF against the exact one


@pytest.mark.parametrize("make_scene", [structured_scene, random_scene], ids=["shapes", "noise"])
@pytest.mark.parametrize(("height", "width"), SIZES)
def test_crf_agrees_with_the_exact_crf(make_scene, height, width):
    agree = 0
    for seed in range(4):
        image, probs = make_scene(seed, height, width)
        for iterations in (1, 3):
            expected = dense_crf(image, probs, replace(EXACT, iterations=iterations))
            refined = dense_crf(image, probs, replace(LATTICE, iterations=iterations))
            # The messages' lattice errors (test above: ~6% and ~1.6% of messages ~0.2 with
            # weights 3 and 1) move the logits by ~0.04 on average, and Q by at most 2/C of
            # that, 0.016; the errors partly cancel: measured <= 0.005
            assert (refined - expected).abs().mean() <= 0.01
            if iterations == LATTICE.iterations:
                agree += int((refined.argmax(0) == expected.argmax(0)).sum())
    # The spec's labels: measured 99.2% to 99.8% of pixels, what pydensecrf agrees with too
    assert agree >= 0.99 * 4 * height * width


@pytest.mark.parametrize("iterations", [1, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_crf_agrees_with_pydensecrf(seed, iterations):
    pytest.importorskip("pydensecrf.densecrf")
    image, probs = structured_scene(seed, 48, 64)
    params = replace(LATTICE, iterations=iterations)
    expected = reference_crf(image.numpy(), probs.numpy(), params)
    refined = dense_crf(image, probs, params).numpy()
    # The same float32 positions, simplices, weights and blur order: only sums run in another
    # order, a few ulps each, and iterations add them up (measured max |dQ|: 3e-7 after 1
    # iteration, 6e-7 after 5, 2e-6 after 10; 5e-7 for 1000 x 750 photos)
    assert np.abs(refined - expected).max() <= 1e-5
    assert (refined.argmax(0) == expected.argmax(0)).mean() >= 0.999
    assert (expected.argmax(0) != probs.numpy().argmax(0)).any()  # the CRF did change labels


# Determinism, devices, dtypes and edge cases


def test_crf_is_deterministic_on_the_cpu():
    image, probs = structured_scene(2, 40, 30)
    params = replace(LATTICE, iterations=3)
    first = dense_crf(image, probs, params)
    smoothness_kernel.cache_clear()
    assert torch.equal(dense_crf(image, probs, params), first)
    assert torch.equal(dense_crf(image, probs, params), first)  # the cached position kernel


def test_torch_sort_and_search_build_the_same_lattice(monkeypatch):
    # The path CUDA takes (torch.sort, torch.searchsorted), here on the CPU
    image, _ = structured_scene(3, 24, 32)
    features = bilateral_features(image, 80.0, 4.0)
    fast = PermutohedralLattice.build(features)
    monkeypatch.setattr(lattice_index, "NUMPY_ON_CPU", False)
    plain = PermutohedralLattice.build(features)
    for field in fields(PermutohedralLattice):
        assert torch.equal(getattr(plain, field.name), getattr(fast, field.name)), field.name


def test_float64_matches_float32():
    image, probs = structured_scene(0, 24, 32)
    refined = dense_crf(image, probs.double(), LATTICE)
    assert refined.dtype == torch.float64 and refined.shape == probs.shape
    # float32 rounding of the positions and sums: a few ulps of probabilities <= 1
    assert_close_to_scale(refined.float(), dense_crf(image, probs, LATTICE), rtol=1e-5)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 7), (9, 1), (2, 3)])
def test_tiny_images_give_probabilities(height, width):
    image, probs = random_scene(4, height, width)
    refined = dense_crf(image, probs, LATTICE)
    assert refined.shape == probs.shape and torch.isfinite(refined).all()
    torch.testing.assert_close(refined.sum(0), torch.ones(height, width))
    if height * width == 1:  # K~ = 1 for one pixel, on the lattice too
        torch.testing.assert_close(refined, dense_crf(image, probs, EXACT))


@pytest.mark.parametrize(
    "params",
    [
        replace(LATTICE, iterations=5, gaussian_compat=0.0, bilateral_compat=0.0),
        replace(LATTICE, iterations=0),
    ],
    ids=["zero-weights", "zero-iterations"],
)
def test_without_pairwise_terms_returns_clipped_probs(params):
    image, probs = random_scene(5, 6, 7)
    clipped = probs.clamp(params.prob_floor, 1.0)
    torch.testing.assert_close(dense_crf(image, probs, params), clipped / clipped.sum(0))


def test_softmax_without_the_maximum_falls_back_where_exp_would_leave_float32():
    logits = torch.tensor([[0.0, -1.0, -3.0], [79.0, 78.0, 0.0], [-75.0, -76.0, -79.0]])
    torch.testing.assert_close(softmax(logits.clone()), torch.softmax(logits, dim=1))
    for outside in (400.0, -200.0, float("nan")):
        logits[1, 2] = outside
        torch.testing.assert_close(
            softmax(logits.clone()), torch.softmax(logits, dim=1), equal_nan=True
        )


def test_method_must_be_lattice_or_exact():
    with pytest.raises(ConfigError, match=r"evaluate\.crf\.method"):
        from_dict(CrfParams, {**asdict(LATTICE), "method": "fast"}, where="evaluate.crf")
