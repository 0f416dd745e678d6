"""Stage `download`: the dataset in VOC layout at <data_dir>/voc.

Reads params `base` and `data`. With data.source = voc2012 it downloads (or
reuses from base.download_cache) VOCtrainval_11-May-2012.tar and the augmented
masks, verifying md5s; with data.source = embedded it generates the offline
OpenMoji dataset. Writes <data_dir>/voc and metrics/dataset.json.
"""

from pathlib import Path

from mcis_core.common.cli import run_stage
from mcis_core.common.io import write_json
from mcis_core.common.parallel import cpu_workers
from mcis_core.common.params import BaseParams, load_section
from mcis_core.common.paths import METRICS_DIR, stage_paths
from mcis_core.dataset.params import DataParams
from mcis_core.dataset.prepare import prepare_embedded, prepare_voc2012
from mcis_core.dataset.voc import dataset_stats


def main() -> None:
    base, data = load_section("base", BaseParams), load_section("data", DataParams)
    out = stage_paths(base.data_dir).voc
    if data.source == "voc2012":
        prepare_voc2012(data.voc2012, Path(base.download_cache), out)
    else:
        prepare_embedded(data.embedded, base.seed, out, cpu_workers(base.workers))
    write_json(METRICS_DIR / "dataset.json", dataset_stats(out))


if __name__ == "__main__":
    run_stage(main)
