"""Stage `locmaps`: co-attention localization maps of every training image.

Reads params `base.seed` and `locmaps`, <data_dir>/voc and <data_dir>/classifier/model.pt
(with its input size, views and class names). Writes one 8-bit map per (image, positive
class) to <data_dir>/locmaps/<image>_<class id>.png, metrics/locmaps.json (mIoU at the
best background threshold on the train list) and metrics/locmaps_curve.csv (mIoU over
thresholds).
"""

import numpy as np
import pandas as pd

from mcis_core.classifier.network import load_classifier
from mcis_core.common.cli import run_stage
from mcis_core.common.device import default_device
from mcis_core.common.errors import DatasetError
from mcis_core.common.io import atomic_dir, atomic_file, write_json
from mcis_core.common.layout import TRAIN, TRAIN_AUG, read_class_labels, read_classes, read_split
from mcis_core.common.params import BaseParams, load_section
from mcis_core.common.paths import METRICS_DIR, stage_paths
from mcis_core.locmaps.maps import ImageSource, Localizer, localize, plan_partners
from mcis_core.locmaps.metrics import evaluate_locmaps
from mcis_core.locmaps.params import LocmapsParams


def main() -> None:
    base, cfg = load_section("base", BaseParams), load_section("locmaps", LocmapsParams)
    paths = stage_paths(base.data_dir)
    names, labels = read_split(paths.voc, TRAIN_AUG), read_class_labels(paths.voc)
    classes = read_classes(paths.voc)
    device = default_device()
    net, meta = load_classifier(paths.classifier_model, device)
    if tuple(meta["classes"]) != classes:
        raise DatasetError(f"{paths.classifier_model}: trained on other classes than {paths.voc}")
    localizer = Localizer(
        net,
        ImageSource(paths.voc, names, meta["input_size"]),
        meta["views"],
        cfg.view_gate,
        device,
        naive=cfg.naive,
    )
    plans = plan_partners([labels[n] for n in names], len(classes), cfg.partners, base.seed)
    thresholds = np.round(np.arange(cfg.threshold_step, 1.0, cfg.threshold_step), 4)
    with atomic_dir(paths.locmaps) as maps:  # in place only once the metrics are written too
        localize(localizer, plans, names, maps)
        threshold, scores, curve = evaluate_locmaps(
            paths.voc, maps, read_split(paths.voc, TRAIN), labels, len(classes), thresholds
        )
        write_metrics(threshold, scores, curve)


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
