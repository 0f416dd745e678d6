"""Training machinery shared by the pipeline's networks: processes, seeds, lr, checkpoints.

Multi-GPU / multi-node runs go through torchrun: each process reads its rank from
the environment torchrun sets, and DistributedDataParallel averages gradients.
Checkpoints carry a fingerprint of everything that determines training, so a run
resumes only from checkpoints of the same configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from mcis_core.io import atomic_file

CHECKPOINT_PATTERN = re.compile(r"epoch_(\d+)\.pt")


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
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    return Process(dist.get_rank() if world > 1 else 0, world, device)


def close_process() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    """Seed torch and numpy and ask for deterministic kernels."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def any_across_processes(flags: list[bool], device: torch.device) -> list[bool]:
    """Element-wise OR of boolean flags over all processes."""
    if not (dist.is_available() and dist.is_initialized()):
        return flags
    tensor = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(v) for v in tensor.tolist()]


def mean_across_processes(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average scalar statistics over all processes."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return {k: v / dist.get_world_size() for k, v in zip(keys, tensor.tolist(), strict=True)}


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def lr_at_epoch(base_lr: float, epoch: int, steps: tuple[int, ...], gamma: float) -> float:
    """Step decay: base_lr * gamma ** (number of steps at or before `epoch`)."""
    return base_lr * gamma ** sum(epoch >= s for s in steps)


def parameter_groups(backbone: list[nn.Module], head: list[nn.Module]) -> list[dict]:
    """Four groups, lr multipliers 1 / 2 / 10 / 20: backbone weights, biases; head weights, biases.

    BatchNorm scales count as weights and their shifts as biases.
    """
    groups = []
    for modules, multiplier in ((backbone, 1.0), (head, 10.0)):
        named = [(n, p) for m in modules for n, p in m.named_parameters()]
        weights = [p for n, p in named if not n.endswith("bias")]
        biases = [p for n, p in named if n.endswith("bias")]
        groups.append({"params": weights, "lr_mult": multiplier})
        groups.append({"params": biases, "lr_mult": 2 * multiplier})
    return groups


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give every parameter group lr times its multiplier."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_mult"]


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


class Checkpoints:
    """epoch_<k>.pt files of one configuration in a folder (a DVC `persist` output)."""

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


def export_model(checkpoints: Checkpoints, epoch: int, out: Path) -> dict:
    """Write checkpoint `epoch`'s weights and ModelConfig to `out`; return its metrics."""
    state = checkpoints.load(epoch)
    with atomic_file(out, "wb") as handle:
        torch.save({"model": state["model"], "model_config": state["model_config"]}, handle)
    return next(r for r in state["history"] if r["epoch"] == epoch)
