"""One process of the DDP test in test_classifier_training (importable, so `spawn` can start it).

The worker sets the environment torchrun would set, joins the gloo group through
`init_process`, trains, and leaves its traceback in `error_dir` if anything fails.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import torch
import torch.distributed as dist

from mcis_core.classifier.params import ClassifierParams
from mcis_core.classifier.train import train_classifier, training_fingerprint
from mcis_core.training.checkpoints import Checkpoints
from mcis_core.training.process import MACHINE_THREADS, init_process


def train_rank(
    rank: int,
    world: int,
    port: int,
    params: ClassifierParams,
    seed: int,
    voc_dir: Path,
    folder: Path,
    error_dir: Path,
) -> None:
    """Train as process `rank` of `world` on the CPU; checkpoints go to `folder`."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        CUDA_VISIBLE_DEVICES="",  # gloo on the CPU even where a GPU exists
    )
    try:
        process = init_process()
        try:
            if (process.rank, process.world, process.device.type) != (rank, world, "cpu"):
                raise RuntimeError(f"init_process gave {process}, expected rank {rank} of {world}")
            threads = max(1, MACHINE_THREADS // world)
            if torch.get_num_threads() != threads:  # the processes share the machine's threads
                raise RuntimeError(f"{torch.get_num_threads()} threads, expected {threads}")
            checkpoints = Checkpoints(folder, training_fingerprint(params, seed, voc_dir))
            train_classifier(params, seed, voc_dir, checkpoints, process)
        finally:
            dist.destroy_process_group()
    except BaseException:
        (error_dir / f"rank{rank}.txt").write_text(traceback.format_exc())
        raise
