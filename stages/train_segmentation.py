"""Stage `train_segmentation`: DeepLab-LargeFOV on the pseudo labels (or the ground truth).

Reads params `base.seed` and `segmentation`, <data_dir>/voc, <data_dir>/pseudo_gt
and <data_dir>/classifier/model.pt (the narrow backbone's initialisation). Launched
by torchrun (segmentation.nproc processes). Writes a checkpoint per epoch to
<data_dir>/segmentation/checkpoints (persist: an interrupted run resumes), the final
weights to <data_dir>/segmentation/model.pt, metrics/segmentation.json and
metrics/segmentation_history.csv.
"""

from pathlib import Path

import pandas as pd

from mcis_core.cli import run_stage
from mcis_core.config import load_params
from mcis_core.io import atomic_file, read_names, write_json
from mcis_core.segmentation_training import train_segmentation, training_fingerprint
from mcis_core.training import Checkpoints, close_process, export_model, init_process
from mcis_core.voc import AUG_MASK_DIR, LIST_DIR


def main() -> None:
    params = load_params()
    cfg, data_dir = params.segmentation, Path(params.base.data_dir)
    voc = data_dir / "voc"
    label_dir = data_dir / "pseudo_gt" if cfg.labels == "pseudo" else voc / AUG_MASK_DIR
    classifier = data_dir / "classifier" / "model.pt"
    names = [  # pseudo_gt.on_missing: skip leaves some images without labels
        n
        for n in read_names(voc / LIST_DIR / "train_aug.txt")
        if (label_dir / f"{n}.png").is_file()
    ]
    process = init_process()
    checkpoints = Checkpoints(
        data_dir / "segmentation" / "checkpoints",
        training_fingerprint(cfg, params.base.seed, voc, label_dir),
    )
    history = train_segmentation(
        cfg,
        params.base.seed,
        voc,
        names,
        label_dir,
        read_names(voc / LIST_DIR / "val.txt"),
        checkpoints,
        process,
        classifier_path=classifier,
    )
    close_process()
    if not process.is_main:
        return
    final = export_model(checkpoints, cfg.epochs - 1, data_dir / "segmentation" / "model.pt")
    write_json("metrics/segmentation.json", {k: round(v, 5) for k, v in final.items()})
    with atomic_file("metrics/segmentation_history.csv") as handle:
        pd.DataFrame(history).round(5).to_csv(handle, index=False)


if __name__ == "__main__":
    run_stage(main)
