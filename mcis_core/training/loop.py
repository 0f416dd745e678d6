"""The resumable epoch loop of both trainings, and the export of a chosen epoch.

`fit` resumes from the newest checkpoint of the run's configuration, wraps the trained
module for DistributedDataParallel when torchrun started several processes, and after
every epoch validates and checkpoints in the main process. What an epoch does is the
caller's: `train_epoch(module, epoch)` returns the epoch's record (lr, losses).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mcis_core.models.export import Exported, save_exported
from mcis_core.training.checkpoints import Checkpoints
from mcis_core.training.process import Process, barrier

Record = dict[str, float]


def resume(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    checkpoints: Checkpoints,
    process: Process,
    keep: set[int],
) -> tuple[list[Record], int]:
    """Load the newest checkpoint of this configuration that precedes every epoch of `keep`
    whose checkpoint is missing (so training passes through them again): (history so far,
    first epoch to run)."""
    missing = [e for e in keep if not checkpoints.path(e).is_file()]
    state = checkpoints.latest(before=min(missing, default=None))
    if state is None:
        return [], 0
    net.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if process.is_main:
        print(f"resuming after epoch {state['epoch']} from {checkpoints.path(state['epoch'])}")
    return state["history"], state["epoch"] + 1


def distribute(module: nn.Module, process: Process, find_unused_parameters: bool) -> nn.Module:
    """`module` wrapped for DDP (BatchNorm synchronised on CUDA) with several processes."""
    if process.world == 1:
        return module
    if process.device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return DistributedDataParallel(module, find_unused_parameters=find_unused_parameters)


def fit(
    net: nn.Module,
    trained: nn.Module,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    train_epoch: Callable[[nn.Module, int], Record],
    validate: Callable[[], Record],
    checkpoints: Checkpoints,
    process: Process,
    keep: set[int],
    find_unused_parameters: bool = False,
) -> list[Record]:
    """Train `net` through the module `trained` (the net or an objective around it) up to
    `epochs`, resuming; returns the per-epoch history. Checkpoints other than the newest
    and the epochs in `keep` are deleted."""
    history, start = resume(net, optimizer, checkpoints, process, keep)
    module = distribute(trained, process, find_unused_parameters)
    for epoch in range(start, epochs):
        started = time.perf_counter()
        record = {"epoch": epoch, **train_epoch(module, epoch)}
        if process.is_main:
            record.update(validate())
            history.append(record)
            state = {
                "model": net.state_dict(),
                "optimizer": optimizer.state_dict(),
                "history": history,
                "model_config": asdict(net.config),
            }
            checkpoints.save(epoch, state, keep)
            shown = ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "epoch")
            print(f"epoch {epoch}: {shown} ({time.perf_counter() - started:.0f} s)")
        barrier()
    return history


def export_checkpoint(checkpoints: Checkpoints, epoch: int, out, kind: str, meta: dict) -> Record:
    """Write checkpoint `epoch`'s network as a `kind` export at `out`; return its record."""
    state = checkpoints.load(epoch)
    save_exported(out, Exported(kind, state["model"], state["model_config"], meta))
    return next(r for r in state["history"] if r["epoch"] == epoch)
