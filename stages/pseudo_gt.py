"""Stage `pseudo_gt`: MCIS pseudo labels of every training image.

Reads params `pseudo_gt`, <data_dir>/voc, <data_dir>/saliency and <data_dir>/locmaps.
Writes a VOC palette PNG per train_aug image to <data_dir>/pseudo_gt/<name>.png and
metrics/pseudo_gt.json: mIoU against the fine masks of the train list (ignored pixels
left out, and counted as background), precision and recall of the labelled pixels, the
fraction of ignored pixels and the numbers of wholly ignored and skipped images.
"""

import math

from mcis_core.common.cli import run_stage
from mcis_core.common.io import atomic_dir, write_json
from mcis_core.common.layout import TRAIN, TRAIN_AUG, read_class_labels, read_classes, read_split
from mcis_core.common.parallel import cpu_workers
from mcis_core.common.params import BaseParams, load_section
from mcis_core.common.paths import METRICS_DIR, stage_paths
from mcis_core.pseudo_gt.labels import PseudoGtSummary, make_pseudo_labels
from mcis_core.pseudo_gt.metrics import evaluate_pseudo_labels
from mcis_core.pseudo_gt.params import PseudoGtParams


def rounded(value: float | None) -> float | None:
    """5 decimals; None (JSON null) for a score that has no pixels behind it."""
    return None if value is None or math.isnan(value) else round(value, 5)


def main() -> None:
    base, cfg = load_section("base", BaseParams), load_section("pseudo_gt", PseudoGtParams)
    paths = stage_paths(base.data_dir)
    num_classes = len(read_classes(paths.voc))
    with atomic_dir(paths.pseudo_gt) as labels:  # in place only once the metrics are written
        summary = make_pseudo_labels(
            read_split(paths.voc, TRAIN_AUG),
            read_class_labels(paths.voc),
            num_classes,
            paths.saliency,
            paths.locmaps,
            labels,
            cfg.rules,
            skip_missing=cfg.on_missing == "skip",
            workers=cpu_workers(base.workers),
        )
        quality = evaluate_pseudo_labels(
            paths.voc, labels, read_split(paths.voc, TRAIN), num_classes
        )
        write_metrics(quality, summary)


def write_metrics(quality: dict, summary: PseudoGtSummary) -> None:
    write_json(
        METRICS_DIR / "pseudo_gt.json",
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
