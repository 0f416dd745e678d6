"""Semantic Boundaries Dataset (Hariharan et al., ICCV 2011) masks as VOC palette PNGs.

SBD's benchmark.tgz stores one MATLAB file per image, dataset/cls/<name>.mat,
whose struct GTcls.Segmentation is the class label map (0 background, 1..20).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from tqdm import tqdm

from mcis_core.common.errors import DatasetError
from mcis_core.common.io import read_names
from mcis_core.common.layout import save_mask
from mcis_core.dataset.voc import VOC_CLASSES

SBD_REQUIRED = ("cls", "train.txt", "val.txt")


def read_sbd_mask(mat_path: Path) -> np.ndarray:
    """The (H, W) uint8 class map stored in one SBD cls/<name>.mat file."""
    try:
        gt = scipy.io.loadmat(mat_path, squeeze_me=True, struct_as_record=False)["GTcls"]
        mask = np.asarray(gt.Segmentation)
    except (OSError, ValueError, KeyError, AttributeError) as err:
        raise DatasetError(f"{mat_path}: not a readable SBD class mask ({err})") from None
    if mask.ndim != 2 or mask.max(initial=0) > len(VOC_CLASSES):
        raise DatasetError(f"{mat_path}: expected a 2-D map of labels 0..{len(VOC_CLASSES)}")
    return mask.astype(np.uint8)


def convert_sbd(dataset_dir: Path, out_dir: Path) -> list[str]:
    """Write out_dir/<name>.png for every image of SBD's train and val lists."""
    names = sorted(
        set(read_names(dataset_dir / "train.txt")) | set(read_names(dataset_dir / "val.txt"))
    )
    missing = [n for n in names if not (dataset_dir / "cls" / f"{n}.mat").is_file()]
    if missing:
        raise DatasetError(
            f"{len(missing)} SBD mask(s) named in the lists are missing, "
            f"e.g. {dataset_dir / 'cls' / (missing[0] + '.mat')}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in tqdm(names, desc="convert SBD", unit="mask"):
        save_mask(out_dir / f"{name}.png", read_sbd_mask(dataset_dir / "cls" / f"{name}.mat"))
    return names
