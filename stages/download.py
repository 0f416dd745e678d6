"""Stage `download`: the dataset in VOC layout at <data_dir>/voc.

Reads params `base` and `data`. With data.source = voc2012 it downloads (or
reuses from base.download_cache) VOCtrainval_11-May-2012.tar and the augmented
masks, verifying md5s; with data.source = embedded it generates the offline
OpenMoji dataset. Writes <data_dir>/voc and metrics/dataset.json.
"""

from pathlib import Path

from mcis_core.cli import run_stage
from mcis_core.config import ConfigError, load_params
from mcis_core.io import write_json
from mcis_core.prepare import prepare_embedded, prepare_voc2012
from mcis_core.voc import dataset_stats


def main() -> None:
    params = load_params()
    out = Path(params.base.data_dir) / "voc"
    if params.data.source == "voc2012":
        if params.data.voc2012 is None:
            raise ConfigError("data.voc2012: required when data.source is voc2012")
        prepare_voc2012(params.data.voc2012, Path(params.base.download_cache), out)
    else:
        prepare_embedded(params.data.embedded, params.base.seed, out)
    write_json("metrics/dataset.json", dataset_stats(out))


if __name__ == "__main__":
    run_stage(main)
