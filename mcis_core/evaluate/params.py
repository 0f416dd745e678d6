"""Parameters of the `evaluate` stage (params.yaml section `evaluate`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mcis_core.common.params import param


@dataclass(frozen=True)
class CrfParams:
    """Fully connected CRF on the averaged probabilities (docs/method.md §7.2)."""

    method: Literal["lattice", "exact"] = param(
        "lattice: permutohedral, O(N) (the original's); exact: O(N^2) reference"
    )
    iterations: int = param("mean-field iterations (the original: 1)", ge=0)
    gaussian_sxy: float = param("position std of the smoothness kernel, pixels", gt=0)
    gaussian_compat: float = param("weight of the smoothness kernel", ge=0)
    bilateral_sxy: float = param("position std of the appearance kernel, pixels", gt=0)
    bilateral_srgb: float = param("colour std of the appearance kernel, 0..255 units", gt=0)
    bilateral_compat: float = param("weight of the appearance kernel", ge=0)
    prob_floor: float = param("probabilities are clipped here before -log", gt=0, le=1)


@dataclass(frozen=True)
class EvaluateParams:
    """Multi-scale, sliding-window, flip inference and dense CRF (docs/method.md §7)."""

    split: Literal["val", "test"] = param("test: predictions only (no ground truth)")
    scales: tuple[float, ...] = param("image scales averaged", gt=0, le=4, min_items=1)
    window: int = param("sliding-window side at each scale, pixels", ge=8)
    stride_ratio: float = param("window stride as a fraction of the window", gt=0, le=1)
    pad_to_window: bool = param(
        "pad a scaled image smaller than the window up to it (the original's); false: run it "
        "at its own size"
    )
    flip: bool = param("also average the mirrored image")
    crf: CrfParams = param("the dense CRF")
    examples: int = param("overlays of image, truth, prediction in metrics/evaluate_plots", ge=0)
    nproc: int = param("processes (GPUs) that share the images", ge=1)
