"""Stage `locmaps`: co-attention localization maps of every training image.

Reads params `base`, `classifier.input_size`, `classifier.views` and `locmaps`,
<data_dir>/voc and <data_dir>/classifier/model.pt. Writes one 8-bit map per
(image, positive class) to <data_dir>/locmaps/<image>_<class 0-19>.png,
metrics/locmaps.json (mIoU at the best background threshold on the train list)
and metrics/locmaps_curve.csv (mIoU over thresholds).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from mcis_core.classifier_training import load_model
from mcis_core.cli import run_stage
from mcis_core.config import load_params
from mcis_core.device import default_device
from mcis_core.io import atomic_file, read_names, write_json
from mcis_core.localization import ImageSource, Localizer, localize, plan_partners
from mcis_core.localization_metrics import evaluate_locmaps
from mcis_core.voc import LABELS_FILE, LIST_DIR, read_class_labels


def main() -> None:
    params = load_params()
    cfg, data_dir = params.locmaps, Path(params.base.data_dir)
    voc, out = data_dir / "voc", data_dir / "locmaps"
    names = read_names(voc / LIST_DIR / "train_aug.txt")
    labels = read_class_labels(voc / LABELS_FILE)
    device = default_device()
    localizer = Localizer(
        load_model(data_dir / "classifier" / "model.pt", device),
        ImageSource(voc, names, params.classifier.input_size),
        params.classifier.views,
        device,
        naive=cfg.naive,
    )
    plans = plan_partners([labels[n] for n in names], cfg.partners, params.base.seed)
    localize(localizer, plans, names, out)

    thresholds = np.round(np.arange(cfg.threshold_step, 1.0, cfg.threshold_step), 4)
    threshold, scores, curve = evaluate_locmaps(
        voc, out, read_names(voc / LIST_DIR / "train.txt"), labels, thresholds
    )
    write_json(
        "metrics/locmaps.json",
        {
            "miou": round(scores["miou"], 5),
            "best_threshold": float(threshold),
            "pixel_accuracy": round(scores["pixel_accuracy"], 5),
        },
    )
    with atomic_file("metrics/locmaps_curve.csv") as handle:
        pd.DataFrame(curve).round(5).to_csv(handle, index=False)


if __name__ == "__main__":
    run_stage(main)
