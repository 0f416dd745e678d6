"""Stage `train_segmentation`: DeepLab-LargeFOV on the pseudo labels (or the ground truth).

Reads params `base.seed` and `segmentation`, <data_dir>/voc, <data_dir>/pseudo_gt and
<data_dir>/classifier/model.pt (the narrow backbone's initialisation). Trains in
segmentation.nproc processes (DDP when more than one). Writes a checkpoint per epoch to
<data_dir>/segmentation/checkpoints (persist: an interrupted run resumes), the final
weights with the class names to <data_dir>/segmentation/model.pt,
metrics/segmentation.json and metrics/segmentation_history.csv.
"""

import pandas as pd

from mcis_core.common.cli import run_stage
from mcis_core.common.errors import ConfigError
from mcis_core.common.io import atomic_file, write_json
from mcis_core.common.layout import AUG_MASK_DIR, TRAIN_AUG, VAL, read_classes, read_split
from mcis_core.common.params import BaseParams, load_section
from mcis_core.common.paths import METRICS_DIR, stage_paths
from mcis_core.segmentation.data import require_labelled_pixels, training_names
from mcis_core.segmentation.params import SegmentationParams
from mcis_core.segmentation.train import (
    export_segmentation,
    train_segmentation,
    training_fingerprint,
)
from mcis_core.training.checkpoints import Checkpoints
from mcis_core.training.process import close_process, init_process, launch


def main() -> None:
    launch(load_section("segmentation", SegmentationParams).nproc, run_stage, train)


def train() -> None:
    base = load_section("base", BaseParams)
    cfg = load_section("segmentation", SegmentationParams)
    paths = stage_paths(base.data_dir)
    label_dir = paths.pseudo_gt if cfg.labels == "pseudo" else paths.voc / AUG_MASK_DIR
    classes = read_classes(paths.voc)
    names = training_names(label_dir, read_split(paths.voc, TRAIN_AUG))
    require_labelled_pixels(label_dir, names)
    if len(names) < cfg.batch_size:
        raise ConfigError(
            f"segmentation.batch_size: {cfg.batch_size} is more than the {len(names)} "
            "labelled training images: an epoch would have no step"
        )
    process = init_process()
    checkpoints = Checkpoints(
        paths.segmentation_checkpoints,
        training_fingerprint(cfg, base.seed, paths.voc, label_dir, paths.classifier_model),
    )
    history = train_segmentation(
        cfg,
        base.seed,
        paths.voc,
        names,
        label_dir,
        read_split(paths.voc, VAL),
        len(classes),
        checkpoints,
        process,
        classifier_path=paths.classifier_model,
    )
    close_process()
    if not process.is_main:
        return
    final = export_segmentation(cfg, checkpoints, classes, paths.segmentation_model)
    write_json(METRICS_DIR / "segmentation.json", {k: round(v, 5) for k, v in final.items()})
    with atomic_file(METRICS_DIR / "segmentation_history.csv") as handle:
        pd.DataFrame(history).round(5).to_csv(handle, index=False)


if __name__ == "__main__":
    run_stage(main)
