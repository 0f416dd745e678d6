"""Quality of the localization maps, as the WSSS literature measures CAMs (IRN's eval_cam).

Each map is divided by its maximum; a pixel takes the class of its strongest map
where that exceeds a threshold and is background elsewhere. The confusion against
the fine ground truth is accumulated over images for every threshold at once, and
the threshold with the best mIoU is reported with the whole curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mcis_core.io import read_gray
from mcis_core.localization import map_name
from mcis_core.segmentation_metrics import best_threshold, threshold_confusions, threshold_curve
from mcis_core.voc import FINE_MASK_DIR, DatasetError


def max_normalised(maps: np.ndarray) -> np.ndarray:
    """(P, H, W) maps each divided by its maximum (an all-zero map stays zero)."""
    peaks = maps.reshape(len(maps), -1).max(axis=1) if len(maps) else np.zeros(0)
    return maps / np.maximum(peaks, 1e-12)[:, None, None]


def read_maps(maps_dir: Path, name: str, classes: Sequence[int]) -> np.ndarray:
    """(P, H, W) float maps of an image's P >= 1 classes, 0..255."""
    planes = []
    for c in classes:
        path = maps_dir / map_name(name, c)
        if not path.is_file():
            raise DatasetError(f"{path}: localization map missing")
        planes.append(read_gray(path).astype(np.float64))
    return np.stack(planes)


def evaluate_locmaps(
    voc_dir: Path,
    maps_dir: Path,
    names: Sequence[str],
    labels: dict[str, list[int]],
    thresholds: np.ndarray,
) -> tuple[float, dict, list[dict]]:
    """(best threshold, its scores, the mIoU curve) of the maps of `names` against fine masks."""
    if not names:
        raise DatasetError(f"{voc_dir}: no images with fine masks to evaluate the maps on")
    total = None
    for name in tqdm(names, desc="locmap quality", unit="img"):
        truth = read_gray(voc_dir / FINE_MASK_DIR / f"{name}.png")
        classes = labels[name]
        maps = read_maps(maps_dir, name, classes) if classes else np.zeros((0, *truth.shape))
        confusions = threshold_confusions(
            max_normalised(maps), np.asarray(classes) + 1, truth, thresholds
        )
        total = confusions if total is None else total + confusions
    threshold, scores = best_threshold(total, thresholds)
    return threshold, scores, threshold_curve(total, thresholds)
