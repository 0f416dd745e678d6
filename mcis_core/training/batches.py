"""Seeded epochs, and the data loader that feeds them to a training from worker processes.

Item i of epoch e draws its randomness from a generator seeded with (seed, e, i), and the
epoch's batches from (seed, e), so a sample depends neither on the process, worker or
batch that loads it: DDP with any number of processes sees the data of one process, a
resumed run the data of an uninterrupted one, and any `num_workers` the data of none.
Two more things make that last claim hold bit for bit: items are computed on one intra-op
thread wherever they load (a float reduction in an item, such as a mean, rounds differently
on two threads), and the loader draws its workers' seeds from a generator of its own, not
from torch's global one (which the trainings' dropout uses).
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mcis_core.common.parallel import WORKER_START, available_cores, local_processes

BATCH_ORDER_STREAM = 2**31  # the (seed, epoch, stream) of the shuffle; items use their index
MAX_AUTO_WORKERS = 8  # more rarely speeds up a step, and each worker holds a copy of its data
Batches = Callable[[int], list[list[int]]]  # epoch -> that epoch's batches of item indices


class EpochDataset(Dataset):
    """A dataset of named images whose random choices depend on (seed, epoch, index)."""

    def __init__(self, names: Sequence[str], seed: int) -> None:
        self.names, self.seed, self.epoch = list(names), seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.names)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of item `index` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, index])


def epoch_batches(num_items: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's shuffled full batches of item indices (the incomplete last one dropped)."""
    order = np.random.default_rng([seed, epoch, BATCH_ORDER_STREAM]).permutation(num_items)
    return [
        order[i : i + batch_size].tolist() for i in range(0, num_items - batch_size + 1, batch_size)
    ]


def shard(batch: Sequence[int], rank: int, world: int) -> list[int]:
    """This process's contiguous share of a global batch."""
    per = len(batch) // world
    return list(batch[rank * per : (rank + 1) * per])


def data_workers(setting: int | Literal["auto"], device: torch.device) -> int:
    """The loader workers of one training process: `setting`, or for `auto` none on the CPU
    (workers would take cores from the training's own threads) and, on CUDA, one per core
    this process has to itself but one (the training's), up to MAX_AUTO_WORKERS."""
    if setting != "auto":
        return setting
    if device.type != "cuda":
        return 0
    return max(0, min(MAX_AUTO_WORKERS, cores_per_process() - 1))


def cores_per_process() -> int:
    """The cores this process may run on, shared with the other training processes of this
    machine (LOCAL_WORLD_SIZE, set by torchrun and the elastic launcher)."""
    return max(1, available_cores() // local_processes())


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch's CPU kernels on one intra-op thread, as in a loader worker."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class EpochItems(Dataset):
    """A run's items, addressed as (epoch, index): item `index` of the dataset of the phase
    that `epoch` is in ({first epoch: dataset}), with that epoch's random choices."""

    def __init__(self, phases: Mapping[int, EpochDataset]) -> None:
        self.phases = sorted(phases.items())

    def dataset(self, epoch: int) -> EpochDataset:
        return [dataset for first, dataset in self.phases if first <= epoch][-1]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        dataset = self.dataset(epoch)
        dataset.set_epoch(epoch)
        with one_thread():
            return dataset[index]


class EpochSampler(Sampler):
    """The batches of (epoch, index) keys of the epoch last set: `batches(epoch)`'s indices."""

    def __init__(self, batches: Batches) -> None:
        self.batches, self.epoch = batches, 0

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter([[(self.epoch, i) for i in batch] for batch in self.batches(self.epoch)])

    def __len__(self) -> int:
        return len(self.batches(self.epoch))


class WorkerSetup:
    """A loader worker's start: one torch thread (the trainer's may be many; several workers
    of several would oversubscribe the cores), and the trainer's CPU kernels, checked."""

    def __init__(self) -> None:
        self.capability = torch.backends.cpu.get_cpu_capability()

    def __call__(self, worker_id: int) -> None:
        torch.set_num_threads(1)
        capability = torch.backends.cpu.get_cpu_capability()
        if capability != self.capability:
            raise RuntimeError(
                f"data loader worker {worker_id} runs {capability} CPU kernels, the training "
                f"{self.capability}: start workers in the training's environment "
                "(mcis_core/common/kernels.py)"
            )


def loader_options(
    num_workers: int, device: torch.device, persistent: bool, start: str = WORKER_START
) -> dict[str, Any]:
    """DataLoader arguments for `num_workers` workers feeding `device`."""
    options: dict[str, Any] = {
        "num_workers": num_workers,
        "pin_memory": device.type == "cuda",  # then .to(device, non_blocking=True) overlaps
        "generator": torch.Generator().manual_seed(0),  # the workers' unused seeds; not global
    }
    if num_workers > 0:
        options.update(
            persistent_workers=persistent,
            multiprocessing_context=multiprocessing.get_context(start),
            worker_init_fn=WorkerSetup(),
        )
    return options


class EpochLoader:
    """One DataLoader for a whole run, its workers kept from epoch to epoch: `epoch(e)` is
    the loader of epoch e's batches. `close` (or leaving a `with` block) stops the workers."""

    def __init__(
        self,
        items: EpochItems,
        batches: Batches,
        num_workers: int,
        device: torch.device,
        start: str = WORKER_START,
    ) -> None:
        self.sampler = EpochSampler(batches)
        options = loader_options(num_workers, device, persistent=True, start=start)
        self.loader = DataLoader(items, batch_sampler=self.sampler, **options)

    def epoch(self, epoch: int) -> DataLoader:
        self.sampler.epoch = epoch
        return self.loader

    def close(self) -> None:
        # persistent workers live in the loader's iterator until it is collected; stop them now
        iterator, self.loader._iterator = self.loader._iterator, None
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()

    def __enter__(self) -> EpochLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
