"""The feature bank of the cached schedule (docs/method.md §4): every training image's
input-size features in one preallocated (N, C, h, w) tensor, on the device, in host memory
or in a memory-mapped file, in float32 or float16.

Its size is N x C x h x w x bytes per value (`bank_bytes`). The paper's setting, VGG16 at
256 px on VOC's 10582 train_aug images: 10582 x 512 x 32 x 32 x 4 B = 20.7 GiB in float32,
10.3 GiB in float16, so only a float16 bank fits on a 16 GB GPU; a bank on the host or on
disk leaves the device little more than the model. float16 rounds every stored value;
features are used as float32 whichever way they are stored. The maps then move by a small
fraction of a grey level, so their 8-bit cut at the feature size by at most one; the bicubic
upsampling overshoots such a step and rounds, so a few pixels of the saved maps move by two.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist

from mcis_core.common.io import scratch_dir
from mcis_core.locmaps.params import BankParams
from mcis_core.training.process import Process, process_share

DTYPES = {"float32": torch.float32, "float16": torch.float16}
PLACES = {"device": "on the device", "host": "in host memory", "disk": "in a memory-mapped file"}
BANK_FILE = "features.bin"


def bank_bytes(count: int, channels: int, height: int, width: int, dtype: torch.dtype) -> int:
    """Bytes of a bank of `count` images' (channels, height, width) features."""
    return count * channels * height * width * dtype.itemsize


class FeatureBank:
    """Row i holds image i's (C, h, w) features; rows are handed out as float32 on `device`."""

    def __init__(self, storage: torch.Tensor, device: torch.device) -> None:
        self.storage, self.device = storage, device  # (N, C, h, w)

    def __len__(self) -> int:
        return len(self.storage)

    def __getitem__(self, index: int) -> torch.Tensor:
        """(1, C, h, w) float32 features of image `index` on the device."""
        return self.storage[index : index + 1].to(self.device, torch.float32, non_blocking=True)

    def put(self, index: int, features: torch.Tensor) -> None:
        """Store image `index`'s (1, C, h, w) features."""
        self.storage[index].copy_(features[0])

    def describe(self, placement: str) -> str:
        """One line: the bank's shape, precision, place and size."""
        count, channels, height, width = self.storage.shape
        size = bank_bytes(count, channels, height, width, self.storage.dtype)
        dtype = str(self.storage.dtype).removeprefix("torch.")
        return (
            f"feature bank: {count} x {channels} x {height} x {width} {dtype} "
            f"{PLACES[placement]}, {readable(size)}"
        )


def readable(size: int) -> str:
    """A byte count in the largest binary unit it reaches: '20.7 GiB'."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


@contextlib.contextmanager
def open_bank(
    count: int,
    feature_shape: tuple[int, int, int],
    params: BankParams,
    device: torch.device,
    scratch: Path,
) -> Iterator[FeatureBank]:
    """An empty bank for `count` images; on disk, its file lies in a scratch folder beside
    `scratch`, removed afterwards."""
    shape, dtype = (count, *feature_shape), DTYPES[params.dtype]
    if params.placement == "disk":
        with scratch_dir(scratch) as folder:
            size = count * torch.Size(feature_shape).numel()
            mapped = torch.from_file(str(folder / BANK_FILE), shared=True, size=size, dtype=dtype)
            yield FeatureBank(mapped.view(shape), device)
        return
    if params.placement == "device":
        storage = torch.empty(shape, dtype=dtype, device=device)
    else:  # pinned memory copies to a GPU faster
        storage = torch.empty(shape, dtype=dtype, pin_memory=device.type == "cuda")
    yield FeatureBank(storage, device)


def share_rows(bank: FeatureBank, process: Process) -> None:
    """Give every process every row: each process filled its `process_share` of the rows and
    broadcasts them to the others, through the device its collectives run on."""
    if process.world == 1:
        return
    for owner in range(process.world):
        for index in process_share(len(bank), replace(process, rank=owner)):
            row = bank.storage[index].to(process.device)
            dist.broadcast(row, src=owner)
            bank.storage[index].copy_(row)
