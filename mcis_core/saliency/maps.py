"""The saliency stage's work: one grayscale map per training image, and its quality.

Maps are computed with `mcis_core.saliency.mbplus` or fetched as a precomputed archive;
either way data/saliency/<name>.png has the image's size, 255 = salient.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from mcis_core.common.device import default_device
from mcis_core.common.errors import DatasetError
from mcis_core.common.io import read_gray, read_rgb, save_gray, scratch_dir
from mcis_core.common.layout import BACKGROUND, IGNORE_INDEX, fine_mask_path, image_path
from mcis_core.common.params import RemoteFile
from mcis_core.common.paths import saliency_map_path
from mcis_core.remote.archives import extract
from mcis_core.remote.download import fetch
from mcis_core.saliency.mbplus import compute_saliency
from mcis_core.saliency.metrics import SaliencyAccumulator, SaliencyScores
from mcis_core.saliency.params import SaliencyComputeParams


def compute_saliency_maps(
    voc_dir: Path, names: Sequence[str], out: Path, params: SaliencyComputeParams
) -> None:
    """Write out/<name>.png, the MB+ saliency of every named image."""
    if default_device().type == "cpu":
        # thousands of small tensor ops: extra threads add contention, not speed
        torch.set_num_threads(1)
    with tqdm(total=len(names), desc="saliency", unit="img") as bar:
        for start in range(0, len(names), params.batch_size):
            batch = names[start : start + params.batch_size]
            images = [read_rgb(image_path(voc_dir, n)) for n in batch]
            maps = compute_saliency(
                images,
                max_side=params.max_side,
                sweeps=params.sweeps,
                boundary_width=params.boundary_width,
            )
            for name, saliency in zip(batch, maps, strict=True):
                save_gray(saliency_map_path(out, name), saliency)
            bar.update(len(batch))


def fetch_saliency_maps(
    remote: RemoteFile, cache_dir: Path, voc_dir: Path, names: Sequence[str], out: Path
) -> None:
    """Download an archive of <name>.png maps and keep exactly one map per named image."""
    archive = fetch(remote, cache_dir)
    with scratch_dir(out / "extract") as scratch:
        extract(archive, scratch)
        found = _index_maps(scratch, archive)
        missing = [n for n in names if n not in found]
        if missing:
            raise DatasetError(
                f"{archive}: no saliency map for {len(missing)} training image(s), "
                f"e.g. {missing[:5]}"
            )
        for name in tqdm(names, desc="check saliency", unit="map"):
            _adopt_map(found[name], image_path(voc_dir, name), saliency_map_path(out, name))


def _index_maps(root: Path, archive: Path) -> dict[str, Path]:
    """{image name: map path} for every PNG in an extracted archive; a name twice is an error."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.png")):
        if path.stem in found:
            raise DatasetError(
                f"{archive}: two saliency maps for {path.stem}: "
                f"{found[path.stem].relative_to(root)} and {path.relative_to(root)}"
            )
        found[path.stem] = path
    return found


def _adopt_map(source: Path, image_path: Path, dest: Path) -> None:
    """Move a fetched map into place as 8-bit grayscale after checking its size."""
    with Image.open(source) as sal, Image.open(image_path) as img:
        if sal.size != img.size:
            raise DatasetError(
                f"{source.name}: saliency map is {sal.size[0]}x{sal.size[1]} but "
                f"{image_path} is {img.size[0]}x{img.size[1]}"
            )
        if sal.mode == "L":
            os.replace(source, dest)
        else:
            save_gray(dest, np.asarray(sal.convert("L")))


def evaluate_saliency_maps(voc_dir: Path, names: Sequence[str], sal_dir: Path) -> SaliencyScores:
    """MAE and max F-beta of the maps against the fine masks' foreground (255 excluded)."""
    scores = SaliencyAccumulator()
    for name in tqdm(names, desc="evaluate saliency", unit="img"):
        mask = read_gray(fine_mask_path(voc_dir, name))
        valid = mask != IGNORE_INDEX
        saliency = read_gray(saliency_map_path(sal_dir, name))
        scores.update(saliency, valid & (mask != BACKGROUND), valid)
    return scores.result()
