"""Stage `locmaps`: co-attention localization maps of every training image.

Reads params `base.seed` and `locmaps`, <data_dir>/voc and <data_dir>/classifier/model.pt
(with its input size, views and class names). Runs in locmaps.nproc processes, each writing
the maps of its share of the images. Writes one 8-bit map per (image, positive class) to
<data_dir>/locmaps/<image>_<class id>.png, metrics/locmaps.json (mIoU at the best background
threshold on the train list) and metrics/locmaps_curve.csv (mIoU over thresholds).
"""

import numpy as np
import pandas as pd

from mcis_core.classifier.network import load_classifier
from mcis_core.common.cli import run_stage
from mcis_core.common.errors import DatasetError
from mcis_core.common.io import atomic_file, write_json
from mcis_core.common.layout import TRAIN, TRAIN_AUG, read_class_labels, read_classes, read_split
from mcis_core.common.params import BaseParams, load_section
from mcis_core.common.paths import METRICS_DIR, stage_paths
from mcis_core.locmaps.maps import ImageSource, Localizer, plan_partners
from mcis_core.locmaps.metrics import evaluate_locmaps
from mcis_core.locmaps.params import LocmapsParams
from mcis_core.locmaps.run import localize
from mcis_core.training.process import (
    barrier,
    close_process,
    init_process,
    launch,
    shared_atomic_dir,
)


def main() -> None:
    launch(load_section("locmaps", LocmapsParams).nproc, run_stage, write_locmaps)


def write_locmaps() -> None:
    base, cfg = load_section("base", BaseParams), load_section("locmaps", LocmapsParams)
    paths = stage_paths(base.data_dir)
    names, labels = read_split(paths.voc, TRAIN_AUG), read_class_labels(paths.voc)
    classes = read_classes(paths.voc)
    process = init_process()
    net, meta = load_classifier(paths.classifier_model, process.device)
    if tuple(meta["classes"]) != classes:
        raise DatasetError(f"{paths.classifier_model}: trained on other classes than {paths.voc}")
    localizer = Localizer(
        net,
        ImageSource(paths.voc, names, meta["input_size"]),
        meta["views"],
        cfg.view_gate,
        process.device,
        naive=cfg.naive,
    )
    plans = plan_partners([labels[n] for n in names], len(classes), cfg.partners, base.seed)
    thresholds = np.round(np.arange(cfg.threshold_step, 1.0, cfg.threshold_step), 4)
    # in place only once every process wrote its maps and the metrics are written too
    with shared_atomic_dir(paths.locmaps, process) as maps:
        localize(localizer, plans, names, maps, cfg.bank, paths.locmaps, process)
        barrier()  # every process's maps are written
        if process.is_main:
            threshold, scores, curve = evaluate_locmaps(
                paths.voc, maps, read_split(paths.voc, TRAIN), labels, len(classes), thresholds
            )
            write_metrics(threshold, scores, curve)
    close_process()


def write_metrics(threshold: float, scores: dict, curve: list[dict]) -> None:
    write_json(
        METRICS_DIR / "locmaps.json",
        {
            "miou": round(scores["miou"], 5),
            "best_threshold": float(threshold),
            "pixel_accuracy": round(scores["pixel_accuracy"], 5),
        },
    )
    with atomic_file(METRICS_DIR / "locmaps_curve.csv") as handle:
        pd.DataFrame(curve).round(5).to_csv(handle, index=False)


if __name__ == "__main__":
    run_stage(main)
