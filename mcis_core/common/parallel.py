"""Per-image work of the CPU stages (dataset, saliency, pseudo labels) spread over worker
processes, the results in input order.

Each item's result must be a pure function of the item, so the output cannot depend on the
number of workers (`base.workers`); each worker runs torch on one thread, as those stages'
single process does.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Literal, TypeVar

import torch
from tqdm import tqdm

Item = TypeVar("Item")
Result = TypeVar("Result")

# fork shares the loaded modules and the kernel settings of common/kernels.py and starts in
# milliseconds; spawn (where fork is missing) re-imports torch under the environment those
# settings were written to (the training's loader checks its workers got the same kernels)
WORKER_START = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
CHUNKS_PER_WORKER = 8  # fewer round trips than one item a message, and still a balanced load


def available_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def local_processes() -> int:
    """The processes of this run on this machine (LOCAL_WORLD_SIZE, set by torchrun and the
    elastic launcher), which share its cores."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def cpu_workers(setting: int | Literal["auto"]) -> int:
    """`setting`, or for `auto` one worker per available core (one in all where a GPU does
    the stages' work)."""
    if setting != "auto":
        return setting
    return 1 if torch.cuda.is_available() else available_cores()


def ordered_map(
    function: Callable[[Item], Result],
    items: Sequence[Item],
    workers: int,
    desc: str,
    unit: str = "img",
) -> Iterator[Result]:
    """`function(item)` for every item, in order, with a progress bar: here when `workers` is 1,
    else in `workers` processes (`function` must then be picklable: a module-level function or
    a functools.partial of one). A worker's exception is raised here."""
    if workers <= 1 or len(items) <= 1:
        yield from map(function, tqdm(items, desc=desc, unit=unit))
        return
    chunk = max(1, len(items) // (workers * CHUNKS_PER_WORKER))
    context = multiprocessing.get_context(WORKER_START)
    with context.Pool(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        results = pool.imap(function, items, chunksize=chunk)
        yield from tqdm(results, total=len(items), desc=desc, unit=unit)
        # let the workers finish and exit: the pool's exit would signal them (SIGTERM), and a
        # worker that inherited a handler for it instead of the default can hang the join
        pool.close()
        pool.join()
