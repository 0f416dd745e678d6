"""Stage `check_params`: validate the whole of params.yaml before any other stage runs.

Depends on params.yaml as a file, so any edit reruns it: a misspelled section or key, a
wrong type or a value out of range stops `dvc repro` here, with one line naming it. So does
a missing ImageNet weights file that a `pretrained: imagenet` needs: it is downloaded into
the torch hub cache now, or named with where to put it, not hours later when training starts.
Writes <data_dir>/params_check.txt, whose content does not depend on the values, so a valid
edit reruns only the stages whose params changed.
"""

from mcis_core.common.cli import run_stage
from mcis_core.common.io import atomic_file
from mcis_core.common.params import check_params_file
from mcis_core.common.paths import stage_paths
from mcis_core.sections import SECTIONS, imagenet_weights_files


def main() -> None:
    params = check_params_file(SECTIONS)
    imagenet_weights_files(params)
    with atomic_file(stage_paths(params["base"].data_dir).params_check) as handle:
        handle.write(f"params.yaml sections checked: {', '.join(SECTIONS)}\n")


if __name__ == "__main__":
    run_stage(main)
