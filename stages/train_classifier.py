"""Stage `train_classifier`: the MCIS co-attention classifier.

Reads params `base` and `classifier` and <data_dir>/voc. Trains in classifier.nproc
processes (DDP when more than one; a torchrun started by hand over several nodes works
too). Writes a checkpoint per epoch to <data_dir>/classifier/checkpoints (a persist
output: an interrupted run resumes), the weights of epoch classifier.use_epoch with the
class names, input size and views to <data_dir>/classifier/model.pt,
metrics/classifier.json (that epoch's metrics) and metrics/classifier_history.csv.
"""

import pandas as pd

from mcis_core.classifier.params import ClassifierParams
from mcis_core.classifier.train import export_classifier, train_classifier, training_fingerprint
from mcis_core.common.cli import run_stage
from mcis_core.common.io import atomic_file, write_json
from mcis_core.common.params import BaseParams, load_section
from mcis_core.common.paths import METRICS_DIR, stage_paths
from mcis_core.training.checkpoints import Checkpoints
from mcis_core.training.process import close_process, init_process, launch


def main() -> None:
    launch(load_section("classifier", ClassifierParams).nproc, run_stage, train)


def train() -> None:
    base, cfg = load_section("base", BaseParams), load_section("classifier", ClassifierParams)
    paths = stage_paths(base.data_dir)
    process = init_process()
    checkpoints = Checkpoints(
        paths.classifier_checkpoints, training_fingerprint(cfg, base.seed, paths.voc)
    )
    history = train_classifier(cfg, base.seed, paths.voc, checkpoints, process)
    close_process()
    if not process.is_main:
        return
    chosen = export_classifier(cfg, checkpoints, paths.voc, paths.classifier_model)
    write_json(METRICS_DIR / "classifier.json", {k: round(v, 5) for k, v in chosen.items()})
    with atomic_file(METRICS_DIR / "classifier_history.csv") as handle:
        pd.DataFrame(history).round(5).to_csv(handle, index=False)


if __name__ == "__main__":
    run_stage(main)
