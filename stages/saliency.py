"""Stage `saliency`: one saliency map per training image at <data_dir>/saliency.

Reads params `base` and `saliency` and <data_dir>/voc. saliency.source = compute
runs Minimum Barrier salient object detection (MB+) on every train_aug image;
saliency.source = fetch downloads an archive of precomputed maps, folder copies
them from a local folder (DVC does not watch it: data/saliency is the tracked
copy), ground_truth takes the aug masks' foreground (leaks the labels: an upper
bound for analysis, with a warning; its metrics are trivially near perfect). Writes
<data_dir>/saliency/<name>.png, metrics/saliency.json (MAE, max F-beta against
the fine masks of the train list) and metrics/saliency_pr.csv (the PR curve).
"""

import sys
from pathlib import Path

import pandas as pd

from mcis_core.common.cli import run_stage
from mcis_core.common.io import atomic_dir, atomic_file, write_json
from mcis_core.common.layout import TRAIN, TRAIN_AUG, read_split
from mcis_core.common.parallel import cpu_workers
from mcis_core.common.params import BaseParams, load_section
from mcis_core.common.paths import METRICS_DIR, stage_paths
from mcis_core.saliency.maps import (
    compute_saliency_maps,
    copy_saliency_maps,
    evaluate_saliency_maps,
    fetch_saliency_maps,
    ground_truth_saliency_maps,
)
from mcis_core.saliency.metrics import SaliencyScores
from mcis_core.saliency.params import SaliencyParams

GROUND_TRUTH_WARNING = (
    "warning: saliency.source is ground_truth: the maps are the foreground of the training "
    "masks, which weak supervision must not see; results are an upper bound, not MCIS"
)


def main() -> None:
    base, cfg = load_section("base", BaseParams), load_section("saliency", SaliencyParams)
    paths = stage_paths(base.data_dir)
    names = read_split(paths.voc, TRAIN_AUG)
    with atomic_dir(paths.saliency) as maps:  # in place only once the metrics are written too
        if cfg.source == "fetch":
            fetch_saliency_maps(cfg.fetch, Path(base.download_cache), paths.voc, names, maps)
        elif cfg.source == "folder":
            copy_saliency_maps(Path(cfg.folder), paths.voc, names, maps)
        elif cfg.source == "ground_truth":
            print(GROUND_TRUTH_WARNING, file=sys.stderr)
            ground_truth_saliency_maps(paths.voc, names, maps)
        else:
            compute_saliency_maps(paths.voc, names, maps, cfg.compute, cpu_workers(base.workers))
        scores = evaluate_saliency_maps(paths.voc, read_split(paths.voc, TRAIN), maps)
        write_metrics(scores)


def write_metrics(scores: SaliencyScores) -> None:
    write_json(
        METRICS_DIR / "saliency.json",
        {
            "mae": round(scores.mae, 5),
            "max_fbeta": round(scores.max_fbeta, 5),
            "best_threshold": scores.best_threshold,
        },
    )
    curve = pd.DataFrame(
        {"threshold": range(256), "precision": scores.precision, "recall": scores.recall}
    ).round(5)
    with atomic_file(METRICS_DIR / "saliency_pr.csv") as handle:
        curve.to_csv(handle, index=False)


if __name__ == "__main__":
    run_stage(main)
