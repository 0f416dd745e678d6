"""Checkpoints of one training configuration in a folder (a DVC `persist` output).

Each checkpoint carries a fingerprint of everything that determines training, so a run
resumes only from checkpoints of its own configuration.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import torch

from mcis_core.common.io import atomic_file
from mcis_core.training.process import Process, barrier

CHECKPOINT_PATTERN = re.compile(r"epoch_(\d+)\.pt")


def fingerprint(*parts: object) -> str:
    """A short hash of JSON-serialisable parts (config, seed, data digest)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def tree_digest(folder: Path) -> str:
    """md5 over the relative paths and contents of every file under `folder`.

    Ties checkpoints to the exact data they were trained on (a few seconds on VOC).
    """
    digest = hashlib.md5()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def run_fingerprint(
    params: object, seed: int, data: Iterable[Path], ignored: Iterable[str] = ("num_workers",)
) -> str:
    """What determines a run's checkpoints: its params (but `ignored`), seed and data folders."""
    relevant = {k: v for k, v in asdict(params).items() if k not in set(ignored)}
    return fingerprint(relevant, seed, [tree_digest(folder) for folder in data])


class Checkpoints:
    """epoch_<k>.pt files of one configuration in a folder."""

    def __init__(self, folder: Path, config_fingerprint: str) -> None:
        self.folder = Path(folder)
        self.fingerprint = config_fingerprint

    def path(self, epoch: int) -> Path:
        return self.folder / f"epoch_{epoch:03d}.pt"

    def epochs(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        matches = (CHECKPOINT_PATTERN.fullmatch(p.name) for p in self.folder.iterdir())
        return sorted(int(m.group(1)) for m in matches if m)

    def latest(self) -> dict | None:
        """The newest checkpoint of this configuration; checkpoints of another one are deleted."""
        for epoch in reversed(self.epochs()):
            state = torch.load(self.path(epoch), map_location="cpu", weights_only=False)
            if state.get("fingerprint") == self.fingerprint:
                return state
        for epoch in self.epochs():
            print(f"removing {self.path(epoch)}: it belongs to another configuration")
            self.path(epoch).unlink()
        return None

    def load(self, epoch: int) -> dict:
        state = torch.load(self.path(epoch), map_location="cpu", weights_only=False)
        if state.get("fingerprint") != self.fingerprint:
            raise RuntimeError(f"{self.path(epoch)} belongs to another configuration")
        return state

    def save(self, epoch: int, state: dict, keep: set[int]) -> None:
        """Write epoch `epoch` atomically; delete other epochs not in `keep`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.path(epoch), "wb") as handle:
            torch.save({**state, "epoch": epoch, "fingerprint": self.fingerprint}, handle)
        for old in self.epochs():
            if old != epoch and old not in keep:
                self.path(old).unlink()


def latest_checkpoint(checkpoints: Checkpoints, process: Process) -> dict | None:
    """`checkpoints.latest()` in every process, the main one first: only it deletes stale files."""
    state = checkpoints.latest() if process.is_main else None
    barrier()
    return state if process.is_main else checkpoints.latest()
