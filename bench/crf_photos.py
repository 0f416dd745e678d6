"""The lattice dense CRF (mcis_core.evaluate.lattice_crf) and pydensecrf2 side by side, on
scikit-image's bundled photographs at VOC size (500 x 375) and smaller; see bench.crf_bench.

- Photos: centre-cropped to the target's aspect ratio, resized with anti-aliasing, uint8 RGB.
- Probabilities, a stand-in for a network's: SLIC superpixels of the photo each get one of
  four classes (the background and three of the 20 objects, drawn per photo); that label map
  goes through bench.crf_bench.noisy_probs (box blur, logit scale, Gaussian noise, softmax over
  21 classes): confident inside regions, uncertain near their borders, noisy everywhere.
- Timing (time.perf_counter, torch on one thread, pydensecrf is single-threaded): `repeats`
  rounds per photo and iteration count, each calling pydensecrf, the lattice CRF with its
  position-only kernel cached (the evaluate stage's steady state: that kernel depends only on
  the image size) and the lattice CRF with the cache cleared first (cold), in an order that
  rotates between rounds; the median of each. Load on the machine slows all three of a round
  alike, so the ratios are steadier than the times.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import skimage.data
import torch
from skimage.segmentation import slic
from skimage.transform import resize

from bench.crf_bench import noisy_probs, reference_crf
from mcis_core.evaluate.crf import dense_crf
from mcis_core.evaluate.lattice_crf import smoothness_kernel
from mcis_core.evaluate.params import CrfParams

PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
)
CLASSES = 21  # VOC: the background and 20 objects
REGION_CLASSES = 3  # objects per photo, besides the background
SEGMENTS = 40  # SLIC superpixels per photo
METHODS = ("pydensecrf", "lattice", "lattice_cold")


def photo(name: str, height: int, width: int) -> np.ndarray:
    """scikit-image's photo `name`, centre-cropped to the aspect ratio and resized: (H, W, 3)."""
    image = getattr(skimage.data, name)()[..., :3]
    rows, cols = image.shape[:2]
    keep_rows, keep_cols = min(rows, cols * height // width), min(cols, rows * width // height)
    top, left = (rows - keep_rows) // 2, (cols - keep_cols) // 2
    image = image[top : top + keep_rows, left : left + keep_cols]
    resized = resize(image, (height, width), anti_aliasing=True, preserve_range=True)
    return np.ascontiguousarray(np.clip(np.rint(resized), 0, 255).astype(np.uint8))


def stand_in_probs(image: np.ndarray, seed: int) -> torch.Tensor:
    """Noisy blurred softmax (21, H, W) of a random class per SLIC superpixel of image."""
    rng = np.random.default_rng(seed)
    segments = slic(image, n_segments=SEGMENTS, start_label=0)  # (H, W)
    palette = np.concatenate(([0], rng.choice(np.arange(1, CLASSES), REGION_CLASSES, False)))
    mask = palette[rng.integers(0, len(palette), segments.max() + 1)][segments]
    return noisy_probs(mask, CLASSES, torch.Generator().manual_seed(seed))


def compare(image: np.ndarray, probs: torch.Tensor, params: CrfParams, repeats: int) -> dict:
    """Label agreement of the lattice CRF with pydensecrf and the median ms of each method."""
    calls = {
        "pydensecrf": lambda: reference_crf(image, probs.numpy(), params),
        "lattice": lambda: dense_crf(torch.from_numpy(image), probs, params),
        "lattice_cold": lambda: cold_crf(image, probs, params),
    }
    seconds = {method: [] for method in METHODS}
    results = {}
    for round_ in range(repeats):
        for method in METHODS[round_ % 3 :] + METHODS[: round_ % 3]:
            started = time.perf_counter()
            results[method] = calls[method]()
            seconds[method].append(time.perf_counter() - started)
    agreement = np.asarray(results["lattice"].argmax(0)) == results["pydensecrf"].argmax(0)
    ms = {f"{method}_ms": 1000 * float(np.median(seconds[method])) for method in METHODS}
    ratios = {
        "ratio": ms["pydensecrf_ms"] / ms["lattice_ms"],
        "ratio_cold": ms["pydensecrf_ms"] / ms["lattice_cold_ms"],
    }
    return {"agreement": float(agreement.mean()), **ms, **ratios}


def cold_crf(image: np.ndarray, probs: torch.Tensor, params: CrfParams) -> torch.Tensor:
    """The lattice CRF with no cached position kernel: (C, H, W)."""
    smoothness_kernel.cache_clear()
    return dense_crf(torch.from_numpy(image), probs, params)


def summary(per_image: dict[str, dict]) -> dict:
    """Agreement, ms per image and ratios over the images (mean; worst), and per image."""
    rows = list(per_image.values())
    mean_ms = {key: float(np.mean([row[key] for row in rows])) for key in rows[0] if "ms" in key}
    result = {
        "agreement_min": min(row["agreement"] for row in rows),
        "agreement_mean": float(np.mean([row["agreement"] for row in rows])),
        **mean_ms,
        "ratio": mean_ms["pydensecrf_ms"] / mean_ms["lattice_ms"],
        "ratio_cold": mean_ms["pydensecrf_ms"] / mean_ms["lattice_cold_ms"],
        "ratio_min": min(row["ratio"] for row in rows),
        "ratio_cold_min": min(row["ratio_cold"] for row in rows),
    }
    return {**rounded(result), "per_image": {name: rounded(row) for name, row in per_image.items()}}


def rounded(values: dict[str, float]) -> dict[str, float]:
    """Milliseconds to 0.1, agreements and ratios to 4 decimals."""
    return {key: round(value, 1 if "ms" in key else 4) for key, value in values.items()}


def scenes(height: int, width: int) -> dict[str, tuple[np.ndarray, torch.Tensor]]:
    """Every photo at (height, width) with its stand-in probabilities."""
    images = {name: photo(name, height, width) for name in PHOTOS}
    return {name: (image, stand_in_probs(image, seed)) for seed, (name, image) in
            enumerate(images.items())}  # fmt: skip


def photo_bench(
    params: CrfParams, sizes: list[tuple[int, int]], iterations: list[int], repeats: int
) -> dict:
    """Per size (H, W) and iteration count, the comparison on every photo, summarised."""
    params = replace(params, method="lattice")
    report = {}
    for height, width in sizes:
        sized = scenes(height, width)
        compare(*sized[PHOTOS[0]], params, 1)  # warm-up: allocator, caches, libraries
        for count in iterations:
            counted = replace(params, iterations=count)
            per_image = {
                name: compare(image, probs, counted, repeats)
                for name, (image, probs) in sized.items()
            }
            report[f"{width}x{height}_iterations_{count}"] = summary(per_image)
    return report
