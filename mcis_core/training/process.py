"""Processes of a run: `launch` starts `nproc` of them on this machine as torchrun does (or a
torchrun started by hand, over several nodes, already did), each reads its rank from the
environment, and DDP averages gradients. Also seeding and the reductions over processes."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from mcis_core.common.cli import ERRORS_DIR_ENV
from mcis_core.common.io import atomic_dir, shared_scratch
from mcis_core.common.parallel import local_processes

# torch's intra-op threads as the process started (pinned by common/kernels.py when portable)
MACHINE_THREADS = torch.get_num_threads()


def launch(nproc: int, entry: Callable[..., None], *args: object) -> None:
    """Run `entry(*args)` in `nproc` processes (one per GPU, or over gloo on the CPU), as torchrun
    would; here when nproc is 1 or when a launcher already started this process. A failed
    process has printed its own error, so the failure itself adds none (exit code 1)."""
    if nproc == 1 or "WORLD_SIZE" in os.environ:
        entry(*args)
        return
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"mcis-{os.getpid()}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
    )
    # the elastic launcher logs a failed process with a traceback of its own: quiet it, and
    # print the processes' first error instead (each leaves its own in ERRORS_DIR_ENV)
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as errors, signal_handlers_kept():
        os.environ[ERRORS_DIR_ENV] = errors
        try:
            elastic_launch(config, entry)(*args)
        except ChildFailedError as err:
            reported = sorted(Path(errors).iterdir())
            rank, failure = min(err.failures.items())
            message = (
                reported[0].read_text()
                if reported
                else (f"process {rank} of {nproc} failed (exit code {failure.exitcode})")
            )
            print(f"error: {message}", file=sys.stderr)
            raise SystemExit(1) from None
        finally:
            del os.environ[ERRORS_DIR_ENV]


@contextlib.contextmanager
def signal_handlers_kept() -> Iterator[None]:
    """Put back, on leaving, the handlers of the signals the elastic launcher takes over and
    keeps (it turns them into exceptions): processes forked later would inherit them."""
    names = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
    signals = [getattr(signal, name) for name in names if hasattr(signal, name)]
    saved = {number: signal.getsignal(number) for number in signals}
    try:
        yield
    finally:
        for number, handler in saved.items():
            if handler is not None:  # None: set outside Python, cannot be put back from here
                signal.signal(number, handler)


@dataclass(frozen=True)
class Process:
    """Where this process stands in a (possibly single-process) run."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_process() -> Process:
    """Join the torchrun process group if there is one; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(local_rank)
    else:  # the processes of this machine share its threads
        torch.set_num_threads(max(1, MACHINE_THREADS // local_processes()))
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    return Process(dist.get_rank() if world > 1 else 0, world, device)


def close_process() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    if distributed():
        dist.barrier()


def seed_everything(seed: int) -> None:
    """Seed torch and numpy and ask for deterministic kernels."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def any_across_processes(flags: list[bool], device: torch.device) -> list[bool]:
    """Element-wise OR of boolean flags over all processes."""
    if not distributed():
        return flags
    tensor = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(v) for v in tensor.tolist()]


def mean_across_processes(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average scalar statistics over all processes."""
    if not distributed():
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return {k: v / dist.get_world_size() for k, v in zip(keys, tensor.tolist(), strict=True)}


def process_share(count: int, process: Process) -> range:
    """This process's share of `count` items: every world-th one from its rank on, so the
    processes' loads stay even when items get slower along a sorted list."""
    return range(process.rank, count, process.world)


def sum_across_processes(array: np.ndarray, device: torch.device) -> np.ndarray:
    """Element-wise sum of a numpy array (same shape everywhere) over all processes; the
    reduction runs on `device` (NCCL reduces only CUDA tensors)."""
    if not distributed():
        return array
    tensor = torch.from_numpy(np.ascontiguousarray(array)).to(device)
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()


def gather_to_main(items: dict) -> dict:
    """The union of every process's dict, in the main process (others get {})."""
    if not distributed():
        return items
    gathered = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(items, gathered, dst=0)
    if gathered is None:
        return {}
    return {k: v for part in gathered for k, v in part.items()}


@contextlib.contextmanager
def shared_atomic_dir(dest: Path, process: Process) -> Iterator[Path]:
    """`atomic_dir` for every process of a run: the main process makes the temporary folder
    (at a name the others know), all write into it, and it replaces `dest` once every process
    has left the block."""
    if not process.is_main:
        barrier()  # the main process has made the folder
        yield shared_scratch(dest)
        barrier()
        return
    with atomic_dir(dest, shared=True) as tmp:
        barrier()
        yield tmp
        barrier()
