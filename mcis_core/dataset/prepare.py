"""Build the dataset layout of `mcis_core.common.layout` from real VOC2012 or the embedded dataset.

Both sources go through the same path: a VOC-shaped tar and an archive of
augmented masks are extracted into a temporary folder beside the output, laid
out, and the folder is renamed into place only when everything succeeded.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from mcis_core.common.io import atomic_dir, scratch_dir
from mcis_core.common.layout import AUG_MASK_DIR, JPEG_DIR, LIST_DIR
from mcis_core.dataset.embedded import write_archives
from mcis_core.dataset.params import EmbeddedParams, Voc2012Params
from mcis_core.dataset.sbd import SBD_REQUIRED, convert_sbd
from mcis_core.dataset.validate import validate_layout
from mcis_core.dataset.voc import build_layout, find_dir_containing
from mcis_core.remote.archives import extract
from mcis_core.remote.download import fetch

AugFormat = Literal["sbd", "segmentation_class_aug"]


def prepare_voc2012(params: Voc2012Params, cache_dir: Path, out: Path) -> dict[str, int]:
    """Download (or reuse) the VOC2012 and augmented-mask archives and lay them out at `out`."""
    voc_tar = fetch(params.voc_archive, cache_dir)
    aug_archive = fetch(params.aug_archive, cache_dir)
    return assemble(voc_tar, aug_archive, params.aug_format, out)


def prepare_embedded(
    params: EmbeddedParams, seed: int, out: Path, workers: int = 1
) -> dict[str, int]:
    """Generate the embedded dataset (in `workers` processes) as VOC-shaped archives and lay
    them out at `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with scratch_dir(out.parent / f"{out.name}-archives") as scratch:
        voc_tar = Path(scratch) / "VOCtrainval_embedded.tar"
        aug_tar = Path(scratch) / "SegmentationClassAug.tar"
        write_archives(params, seed, voc_tar, aug_tar, workers)
        return assemble(voc_tar, aug_tar, "segmentation_class_aug", out)


def assemble(
    voc_archive: Path, aug_archive: Path, aug_format: AugFormat, out: Path
) -> dict[str, int]:
    """Extract both archives and build the layout at `out`, atomically."""
    with atomic_dir(out) as tmp:
        scratch = tmp / ".extract"
        (scratch / "voc").mkdir(parents=True)
        (scratch / "aug").mkdir()
        extract(voc_archive, scratch / "voc")
        extract(aug_archive, scratch / "aug")
        voc_root = find_dir_containing(
            scratch / "voc", [JPEG_DIR, LIST_DIR], f"VOC2012 archive ({voc_archive})"
        )
        aug_masks = _aug_mask_dir(scratch / "aug", aug_format, aug_archive)
        counts = build_layout(voc_root, aug_masks, tmp)
        shutil.rmtree(scratch)
        validate_layout(tmp)
    return counts


def _aug_mask_dir(extracted: Path, aug_format: AugFormat, archive: Path) -> Path:
    """The folder of <name>.png augmented masks inside an extracted aug archive."""
    if aug_format == "sbd":
        dataset = find_dir_containing(extracted, SBD_REQUIRED, f"SBD benchmark archive ({archive})")
        converted = extracted / "converted"
        convert_sbd(dataset, converted)
        return converted
    return (
        find_dir_containing(extracted, [AUG_MASK_DIR], f"SegmentationClassAug archive ({archive})")
        / AUG_MASK_DIR
    )
