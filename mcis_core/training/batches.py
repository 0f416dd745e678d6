"""Seeded epochs: item i of epoch e draws its randomness from a generator seeded with
(seed, e, i), and the epoch's batches from (seed, e), so a sample depends neither on the
process, worker or batch that loads it: DDP with any number of processes sees the data of
one process, and a resumed run the data of an uninterrupted one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset

BATCH_ORDER_STREAM = 2**31  # the (seed, epoch, stream) of the shuffle; items use their index


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
