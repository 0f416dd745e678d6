"""Data loading in worker processes: the same weights for any worker count, one-thread items,
the kernel check of spawned workers, and what `num_workers: auto` resolves to."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from mcis_core.classifier.data import PairDataset
from mcis_core.classifier.train import train_classifier
from mcis_core.classifier.train import training_fingerprint as classifier_fingerprint
from mcis_core.common.layout import (
    AUG_MASK_DIR,
    TRAIN_AUG,
    VAL,
    read_class_labels,
    read_classes,
    read_split,
)
from mcis_core.segmentation.train import train_segmentation
from mcis_core.segmentation.train import training_fingerprint as segmentation_fingerprint
from mcis_core.training import process as process_module
from mcis_core.training.batches import EpochItems, EpochLoader, data_workers
from mcis_core.training.checkpoints import Checkpoints
from mcis_core.training.process import Process, init_process
from tests.params import section

SEED = 0
CPU = Process(rank=0, world=1, device=torch.device("cpu"))
CUDA = torch.device("cuda")  # a device object only: nothing here runs on it
CLASSIFIER = replace(
    section("classifier"),
    backbone="narrow",
    pretrained="none",
    width=0.0625,
    batch_norm=False,
    input_size=32,
    views=(1.0, 0.75),
    batch_size=4,
    epochs=2,
    warmup_epochs=1,  # both phases, so one set of workers serves the warm-up and the pairs
    use_epoch=1,
    contrastive_from_epoch=1,
)
SEGMENTATION = replace(
    section("segmentation"),
    backbone="narrow",
    width=0.0625,
    batch_norm=True,
    pretrained="none",
    crop_size=32,
    batch_size=4,
    accumulation=2,
    epochs=2,
    dropout=0.5,  # draws from torch's global generator, which a loader must leave alone
)


@pytest.fixture(scope="module")
def voc(tiny_voc: Callable[..., Path]) -> Path:
    return tiny_voc(6, 10, 4, (48, 64))


def assert_same_weights(a: Checkpoints, b: Checkpoints, epoch: int) -> None:
    state_a, state_b = a.load(epoch), b.load(epoch)
    assert state_a["model"].keys() == state_b["model"].keys()
    for name, weights in state_a["model"].items():
        assert torch.equal(weights, state_b["model"][name]), name
    assert state_a["history"] == state_b["history"]


def test_classifier_weights_do_not_depend_on_the_worker_count(voc: Path, tmp_path: Path) -> None:
    runs = []
    for workers in (0, 2):
        params = replace(CLASSIFIER, num_workers=workers)
        checkpoints = Checkpoints(
            tmp_path / str(workers), classifier_fingerprint(params, SEED, voc)
        )
        train_classifier(params, SEED, voc, checkpoints, CPU)
        runs.append(checkpoints)
    assert_same_weights(*runs, epoch=CLASSIFIER.epochs - 1)


def test_segmentation_weights_do_not_depend_on_the_worker_count(voc: Path, tmp_path: Path) -> None:
    labels, classes = voc / AUG_MASK_DIR, len(read_classes(voc))
    names, val = read_split(voc, TRAIN_AUG), read_split(voc, VAL)[:1]
    runs = []
    for workers in (0, 2):
        params = replace(SEGMENTATION, num_workers=workers)
        fingerprint = segmentation_fingerprint(params, SEED, voc, labels, voc / "no-classifier")
        checkpoints = Checkpoints(tmp_path / str(workers), fingerprint)
        train_segmentation(params, SEED, voc, names, labels, val, classes, checkpoints, CPU)
        runs.append(checkpoints)
    assert_same_weights(*runs, epoch=SEGMENTATION.epochs - 1)


def test_items_do_not_depend_on_the_callers_threads(voc: Path) -> None:
    # items load on one intra-op thread wherever they load; the classifier's colour jitter
    # runs on 8-bit images, so a pair at 321 x 321 is the same on 1 and 2 threads as well
    names = read_split(voc, TRAIN_AUG)[:2]
    labels, jitter = read_class_labels(voc), CLASSIFIER.jitter
    dataset = PairDataset(voc, names, labels, 20, 321, SEED, view_scales=(1.0,), jitter=jitter)
    dataset.set_epoch(1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = dataset[1]
        torch.set_num_threads(2)
        two = dataset[1]
        loaded = EpochItems({0: dataset})[(1, 1)]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(single[k], two[k]) for k in single)
    assert all(torch.equal(single[k], loaded[k]) for k in single)


class KernelName(Dataset):
    """Items that say which CPU kernels the process loading them runs."""

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> str:
        return torch.backends.cpu.get_cpu_capability()


def spawned_kernels() -> list[str]:
    with EpochLoader(
        EpochItems({0: KernelName()}), lambda e: [[0, 1]], 1, CPU.device, "spawn"
    ) as loader:
        return [name for batch in loader.epoch(0) for name in batch]


def test_spawned_workers_run_the_trainers_kernels_through_its_environment() -> None:
    assert spawned_kernels() == [torch.backends.cpu.get_cpu_capability()] * 2


def test_a_spawned_worker_with_other_kernels_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.skip("the trainer runs the lowest kernels: no worker can run others")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")  # read when the worker imports torch
    with pytest.raises(RuntimeError, match="runs DEFAULT CPU kernels"):
        spawned_kernels()


def test_an_integer_worker_count_is_kept() -> None:
    assert data_workers(0, CUDA) == 0 and data_workers(3, CPU.device) == 3


def test_auto_gives_no_workers_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert data_workers("auto", CPU.device) == 0


@pytest.mark.parametrize(
    ("cores", "local_processes", "expected"),
    [(16, None, 8), (4, None, 3), (1, None, 0), (16, "8", 1), (64, "4", 8), (12, "4", 2)],
)
def test_auto_on_cuda_leaves_a_core_to_each_training_process(
    monkeypatch: pytest.MonkeyPatch, cores: int, local_processes: str | None, expected: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    if local_processes is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_processes)
    assert data_workers("auto", CUDA) == expected


def test_auto_counts_all_cores_where_affinity_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert data_workers("auto", CUDA) == 5


@pytest.mark.parametrize(
    ("machine", "local_processes", "expected"), [(2, "2", 1), (8, "2", 4), (8, "3", 2), (2, "4", 1)]
)
def test_cpu_processes_share_the_machine_threads(
    monkeypatch: pytest.MonkeyPatch, machine: int, local_processes: str, expected: int
) -> None:
    monkeypatch.setattr(process_module, "MACHINE_THREADS", machine)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)  # one process: no group to join
    monkeypatch.setenv("LOCAL_WORLD_SIZE", local_processes)
    threads = torch.get_num_threads()
    try:
        assert init_process().device.type == "cpu"
        assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(threads)
