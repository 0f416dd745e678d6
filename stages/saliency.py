"""Stage `saliency`: one saliency map per training image at <data_dir>/saliency.

Reads params `base` and `saliency` and <data_dir>/voc. saliency.source = compute
runs Minimum Barrier salient object detection (MB+) on every train_aug image;
saliency.source = fetch downloads an archive of precomputed maps. Writes
<data_dir>/saliency/<name>.png, metrics/saliency.json (MAE, max F-beta against
the fine masks of the train list) and metrics/saliency_pr.csv (the PR curve).
"""

from pathlib import Path

import pandas as pd

from mcis_core.cli import run_stage
from mcis_core.config import load_params
from mcis_core.io import atomic_file, read_names, write_json
from mcis_core.saliency_maps import (
    compute_saliency_maps,
    evaluate_saliency_maps,
    fetch_saliency_maps,
)
from mcis_core.voc import LIST_DIR


def main() -> None:
    params = load_params()
    voc = Path(params.base.data_dir) / "voc"
    out = Path(params.base.data_dir) / "saliency"
    names = read_names(voc / LIST_DIR / "train_aug.txt")
    if params.saliency.source == "fetch":
        fetch_saliency_maps(
            params.saliency.fetch, Path(params.base.download_cache), voc, names, out
        )
    else:
        compute_saliency_maps(voc, names, out, params.saliency.compute)

    scores = evaluate_saliency_maps(voc, read_names(voc / LIST_DIR / "train.txt"), out)
    write_json(
        "metrics/saliency.json",
        {
            "mae": round(scores.mae, 5),
            "max_fbeta": round(scores.max_fbeta, 5),
            "best_threshold": scores.best_threshold,
        },
    )
    curve = pd.DataFrame(
        {"threshold": range(256), "precision": scores.precision, "recall": scores.recall}
    ).round(5)
    with atomic_file("metrics/saliency_pr.csv") as handle:
        curve.to_csv(handle, index=False)


if __name__ == "__main__":
    run_stage(main)
