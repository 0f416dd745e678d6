"""Stage `train_classifier`: the MCIS co-attention classifier.

Reads params `base` and `classifier` and <data_dir>/voc. Launched by torchrun
(classifier.nproc processes; DDP when more than one). Writes a checkpoint per
epoch to <data_dir>/classifier/checkpoints (a persist output: an interrupted run
resumes), the weights of epoch classifier.use_epoch to <data_dir>/classifier/model.pt,
metrics/classifier.json (that epoch's metrics) and metrics/classifier_history.csv.
"""

from pathlib import Path

import pandas as pd

from mcis_core.classifier_training import train_classifier, training_fingerprint
from mcis_core.cli import run_stage
from mcis_core.config import load_params
from mcis_core.io import atomic_file, write_json
from mcis_core.training import Checkpoints, close_process, export_model, init_process


def main() -> None:
    params = load_params()
    cfg, data_dir = params.classifier, Path(params.base.data_dir)
    process = init_process()
    checkpoints = Checkpoints(
        data_dir / "classifier" / "checkpoints",
        training_fingerprint(cfg, params.base.seed, data_dir / "voc"),
    )
    history = train_classifier(cfg, params.base.seed, data_dir / "voc", checkpoints, process)
    close_process()
    if not process.is_main:
        return
    chosen = export_model(checkpoints, cfg.use_epoch, data_dir / "classifier" / "model.pt")
    write_json("metrics/classifier.json", {k: round(v, 5) for k, v in chosen.items()})
    with atomic_file("metrics/classifier_history.csv") as handle:
        pd.DataFrame(history).round(5).to_csv(handle, index=False)


if __name__ == "__main__":
    run_stage(main)
