"""Stage `pseudo_gt`: MCIS pseudo labels of every training image.

Reads params `base` and `pseudo_gt`, <data_dir>/voc, <data_dir>/saliency and
<data_dir>/locmaps. Writes a VOC palette PNG per train_aug image to
<data_dir>/pseudo_gt/<name>.png and metrics/pseudo_gt.json: mIoU against the fine
masks of the train list (ignored pixels left out, and counted as background),
precision and recall of the labelled pixels, the fraction of ignored pixels and
the numbers of wholly ignored and skipped images.
"""

import math
from pathlib import Path

from mcis_core.cli import run_stage
from mcis_core.config import load_params
from mcis_core.io import read_names, write_json
from mcis_core.pseudo_gt import evaluate_pseudo_labels, make_pseudo_labels
from mcis_core.voc import LABELS_FILE, LIST_DIR, read_class_labels


def rounded(value: float | None) -> float | None:
    """5 decimals; None (JSON null) for a score that has no pixels behind it."""
    return None if value is None or math.isnan(value) else round(value, 5)


def main() -> None:
    params = load_params()
    cfg, data_dir = params.pseudo_gt, Path(params.base.data_dir)
    voc, out = data_dir / "voc", data_dir / "pseudo_gt"
    names = read_names(voc / LIST_DIR / "train_aug.txt")
    summary = make_pseudo_labels(
        names,
        read_class_labels(voc / LABELS_FILE),
        data_dir / "saliency",
        data_dir / "locmaps",
        out,
        cfg.rules,
        skip_missing=cfg.on_missing == "skip",
    )
    quality = evaluate_pseudo_labels(voc, out, read_names(voc / LIST_DIR / "train.txt"))
    write_json(
        "metrics/pseudo_gt.json",
        {
            **{k: rounded(quality[k]) for k in ("miou", "miou_ignored_as_background")},
            **{k: rounded(quality[k]) for k in ("precision", "recall")},
            "ignored_fraction": round(summary.ignored_pixels / max(summary.pixels, 1), 5),
            "images_fully_ignored": summary.fully_ignored,
            "images_skipped": len(summary.skipped),
        },
    )


if __name__ == "__main__":
    run_stage(main)
