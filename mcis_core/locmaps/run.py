"""The `locmaps` stage's work in each of its processes (docs/method.md §4).

Each process computes the bank features of every world-th image (`process_share`), the bank's rows
are then broadcast so that every process holds all of them, and each process writes the
maps of every world-th planned image into the one temporary folder the main process made
(`shared_atomic_dir`).
Partners are drawn with a seed per image and features are computed one image per call, so
the maps do not depend on the number of processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

from mcis_core.locmaps.bank import open_bank, share_rows
from mcis_core.locmaps.maps import AnchorPlan, Localizer, write_maps
from mcis_core.locmaps.params import BankParams
from mcis_core.training.process import Process, process_share


@contextlib.contextmanager
def bank_of_all_images(
    localizer: Localizer, params: BankParams, scratch: Path, process: Process
) -> Iterator[None]:
    """The localizer's bank of every image's features for the block (none when naive); a
    disk bank lies in a scratch folder beside `scratch`."""
    if localizer.naive:
        yield
        return
    count = len(localizer.source.names)
    shape = localizer.feature_shape()
    with open_bank(count, shape, params, localizer.device, scratch) as bank:
        if process.is_main:
            print(bank.describe(params.placement))
        localizer.build_bank(bank, process_share(count, process))
        share_rows(bank, process)
        try:
            yield
        finally:
            localizer.bank = None  # the storage is gone after the block


def localize(
    localizer: Localizer,
    plans: Sequence[AnchorPlan],
    names: Sequence[str],
    out: Path,
    bank: BankParams,
    beside: Path,
    process: Process,
) -> None:
    """Write the maps of this process's share of the planned images into the folder `out`;
    a disk bank lies in a scratch folder beside the path `beside`, one per process."""
    scratch = beside.with_name(f"{beside.name}_bank_{process.rank}")
    with bank_of_all_images(localizer, bank, scratch, process):
        for k in tqdm(process_share(len(plans), process), desc="localization maps", unit="img"):
            plan = plans[k]
            write_maps(out, names[plan.index], plan.classes, localizer.maps(plan))
