"""Checkpoints of one training configuration in a folder (a DVC `persist` output).

Each checkpoint carries a fingerprint of everything that determines training (params, seed,
inputs and the training's source code), so a run resumes only from checkpoints of its own
configuration and code.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import torch

from mcis_core.common.code import source_digest
from mcis_core.common.io import atomic_file, canonical, files_digest

CHECKPOINT_PATTERN = re.compile(r"epoch_(\d+)\.pt")


def fingerprint(*parts: object) -> str:
    """A short hash of JSON-serialisable parts (config, seed, data digest)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def tree_digest(path: Path) -> str:
    """md5 over the relative paths and contents of every file under `path` (or of the file).

    Ties checkpoints to the exact data and weights they were trained from (seconds on VOC).
    """
    path = Path(path)
    if path.is_file():
        return files_digest([path], path.parent)
    return files_digest(sorted(p for p in path.rglob("*") if p.is_file()), path)


def run_fingerprint(
    params: object, seed: int, inputs: Iterable[Path], ignored: Iterable[str], code: Path
) -> str:
    """What determines a run's checkpoints: its params (but those `ignored`, which change how
    it runs, not what it computes), seed, the contents of its input files and folders (data,
    labels, initial weights) and the source of the module `code` with all it imports."""
    relevant = {k: v for k, v in asdict(params).items() if k not in set(ignored)}
    digests = [tree_digest(path) for path in inputs]
    return fingerprint(relevant, seed, digests, source_digest(code))


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

    def latest(self, before: int | None = None) -> dict | None:
        """The newest readable checkpoint of this configuration (older than epoch `before`, if
        given). Checkpoints of other configurations stay until this run saves its first."""
        for epoch in reversed(self.epochs()):
            if before is not None and epoch >= before:
                continue
            try:
                state = torch.load(self.path(epoch), map_location="cpu", weights_only=False)
            except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
                print(f"warning: skipping unreadable checkpoint {self.path(epoch)} ({err})")
                continue
            if state.get("fingerprint") == self.fingerprint:
                return state
        return None

    def load(self, epoch: int) -> dict:
        state = torch.load(self.path(epoch), map_location="cpu", weights_only=False)
        if state.get("fingerprint") != self.fingerprint:
            raise RuntimeError(f"{self.path(epoch)} belongs to another configuration")
        return state

    def save(self, epoch: int, state: dict, keep: set[int]) -> None:
        """Write epoch `epoch` atomically; delete the other epochs not in `keep`, and every
        checkpoint of another configuration."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.path(epoch), "wb") as handle:
            state = {**state, "epoch": epoch, "fingerprint": self.fingerprint}
            torch.save(canonical(state), handle)
        for old in self.epochs():
            if old == epoch:
                continue
            if not self._ours(old):
                print(f"removing {self.path(old)}: it belongs to another configuration")
                self.path(old).unlink()
            elif old not in keep:
                self.path(old).unlink()

    def _ours(self, epoch: int) -> bool:
        try:
            state = torch.load(self.path(epoch), map_location="cpu", weights_only=False)
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError):
            return False
        return state.get("fingerprint") == self.fingerprint
