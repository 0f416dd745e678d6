"""Shared test setup."""

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mcis_core.dataset.prepare import prepare_embedded
from tests.params import section


@pytest.fixture(autouse=True, scope="session")
def _single_thread() -> Iterator[None]:
    """Tiny tensors run fastest on one thread, and tests then do not fight for the 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", autouse=True)
def _restore_determinism_switches() -> Iterator[None]:
    """Undo the global switches training's seed_everything flips, after each test module."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    yield
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    if cublas is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


@pytest.fixture(scope="session")
def tiny_voc(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """make(train, aug, val, image_size): an embedded VOC layout (seed 0), built once per size."""
    built: dict[tuple, Path] = {}

    def make(train: int, aug: int, val: int, image_size: tuple[int, int]) -> Path:
        key = (train, aug, val, image_size)
        if key not in built:
            out = tmp_path_factory.mktemp("voc") / "voc"
            sizes = replace(
                section("data").embedded,
                train_images=train,
                aug_images=aug,
                val_images=val,
                image_size=image_size,
            )
            prepare_embedded(sizes, seed=0, out=out)
            built[key] = out
        return built[key]

    return make
