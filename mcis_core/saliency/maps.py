"""The saliency stage's work: one grayscale map per training image, and its quality.

Maps are computed with `mcis_core.saliency.mbplus`, fetched as a precomputed archive, copied
from a local folder (both checked by the same code), or, for analysis only, taken from the
ground-truth masks; either way data/saliency/<name>.png has the image's size, 255 = salient.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mcis_core.common.device import default_device
from mcis_core.common.errors import DatasetError
from mcis_core.common.io import opened_image, read_gray, read_rgb, save_gray, scratch_dir
from mcis_core.common.layout import (
    BACKGROUND,
    IGNORE_INDEX,
    aug_mask_path,
    fine_mask_path,
    image_path,
)
from mcis_core.common.parallel import ordered_map
from mcis_core.common.params import RemoteFile
from mcis_core.common.paths import saliency_map_path
from mcis_core.remote.archives import extract
from mcis_core.remote.download import fetch
from mcis_core.saliency.mbplus import compute_saliency
from mcis_core.saliency.metrics import SaliencyAccumulator, SaliencyScores
from mcis_core.saliency.params import SaliencyComputeParams


def compute_saliency_maps(
    voc_dir: Path, names: Sequence[str], out: Path, params: SaliencyComputeParams, workers: int
) -> None:
    """Write out/<name>.png, the MB+ saliency of every named image, `params.batch_size` images
    at a time in `workers` processes."""
    if default_device().type == "cpu":
        # thousands of small tensor ops: extra threads add contention, not speed
        torch.set_num_threads(1)
    batches = [names[i : i + params.batch_size] for i in range(0, len(names), params.batch_size)]
    write_batch = functools.partial(write_saliency_maps, voc_dir=voc_dir, out=out, params=params)
    for _ in ordered_map(write_batch, batches, workers, desc="saliency", unit="batch"):
        pass


def write_saliency_maps(
    names: Sequence[str], *, voc_dir: Path, out: Path, params: SaliencyComputeParams
) -> None:
    """Compute and write the MB+ maps of the named images, together."""
    images = [read_rgb(image_path(voc_dir, n)) for n in names]
    maps = compute_saliency(
        images,
        max_side=params.max_side,
        sweeps=params.sweeps,
        boundary_width=params.boundary_width,
    )
    for name, saliency in zip(names, maps, strict=True):
        save_gray(saliency_map_path(out, name), saliency)


def fetch_saliency_maps(
    remote: RemoteFile, cache_dir: Path, voc_dir: Path, names: Sequence[str], out: Path
) -> None:
    """Download an archive of <name>.png maps and keep exactly one map per named image."""
    archive = fetch(remote, cache_dir)
    with scratch_dir(out / "extract") as scratch:
        extract(archive, scratch)
        _adopt_maps(scratch, archive, voc_dir, names, out, move=True)


def copy_saliency_maps(folder: Path, voc_dir: Path, names: Sequence[str], out: Path) -> None:
    """Copy one <name>.png map per named image out of a local folder, checked as an archive's."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder of saliency maps (saliency.folder)")
    _adopt_maps(folder, folder, voc_dir, names, out, move=False)


def ground_truth_saliency_maps(voc_dir: Path, names: Sequence[str], out: Path) -> None:
    """Write out/<name>.png, the foreground of each named image's aug mask (leaks the labels)."""
    for name in tqdm(names, desc="ground-truth saliency", unit="img"):
        mask = read_gray(aug_mask_path(voc_dir, name))
        save_gray(saliency_map_path(out, name), mask_foreground(mask))


def mask_foreground(mask: np.ndarray) -> np.ndarray:
    """(H, W) uint8: 255 on objects and void (255), 0 on background.

    VOC's void band runs along object outlines, so calling it salient is closest to what a
    salient object detector returns there.
    """
    return np.where(mask == BACKGROUND, 0, 255).astype(np.uint8)


def _index_maps(root: Path, origin: Path) -> dict[str, Path]:
    """{image name: map path} for every PNG under `root`; a name twice is an error."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.png")):
        if path.stem in found:
            raise DatasetError(
                f"{origin}: two saliency maps for {path.stem}: "
                f"{found[path.stem].relative_to(root)} and {path.relative_to(root)}"
            )
        found[path.stem] = path
    return found


def _adopt_maps(
    root: Path, origin: Path, voc_dir: Path, names: Sequence[str], out: Path, *, move: bool
) -> None:
    """Put the map of every named image found under `root` into out/, checked; errors name a
    map as `origin` (the archive, or the folder itself) joined with its path under `root`."""
    found = _index_maps(root, origin)
    missing = [n for n in names if n not in found]
    if missing:
        raise DatasetError(
            f"{saliency_map_path(origin, missing[0])}: no saliency map for training image "
            f"{missing[0]} ({len(missing)} of {len(names)} training images have none)"
        )
    for name in tqdm(names, desc="check saliency", unit="map"):
        source = found[name]
        shown = origin / source.relative_to(root)
        _adopt_map(source, shown, image_path(voc_dir, name), saliency_map_path(out, name), move)


def _adopt_map(source: Path, shown: Path, image_path: Path, dest: Path, move: bool) -> None:
    """Move (or copy) a map into place as 8-bit grayscale after checking its size; a wrong
    size is an error naming it as `shown`, an unreadable map one naming `source`."""
    with opened_image(source) as sal, opened_image(image_path) as img:
        if sal.size != img.size:
            raise DatasetError(
                f"{shown}: saliency map is {sal.size[0]}x{sal.size[1]} but "
                f"{image_path} is {img.size[0]}x{img.size[1]}"
            )
        if sal.mode != "L":
            save_gray(dest, np.asarray(sal.convert("L")))
        elif move:
            os.replace(source, dest)
        else:
            shutil.copyfile(source, dest)


def evaluate_saliency_maps(voc_dir: Path, names: Sequence[str], sal_dir: Path) -> SaliencyScores:
    """MAE and max F-beta of the maps against the fine masks' foreground (255 excluded)."""
    scores = SaliencyAccumulator()
    for name in tqdm(names, desc="evaluate saliency", unit="img"):
        mask = read_gray(fine_mask_path(voc_dir, name))
        valid = mask != IGNORE_INDEX
        saliency = read_gray(saliency_map_path(sal_dir, name))
        scores.update(saliency, valid & (mask != BACKGROUND), valid)
    return scores.result()
