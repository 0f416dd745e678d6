"""Optimiser parameter groups and learning-rate schedules of both trainings."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def parameter_groups(
    backbone: list[nn.Module], head: list[nn.Module], base_lr: float, multipliers: Sequence[float]
) -> list[dict]:
    """Four groups: backbone weights, backbone biases, head weights, head biases, with lr
    base_lr times the four `multipliers` (the original's 1 / 2 / 10 / 20).

    BatchNorm scales count as weights and their shifts as biases.
    """
    groups = []
    for modules, (weight_mult, bias_mult) in ((backbone, multipliers[:2]), (head, multipliers[2:])):
        named = [(n, p) for m in modules for n, p in m.named_parameters()]
        weights = [p for n, p in named if not n.endswith("bias")]
        biases = [p for n, p in named if n.endswith("bias")]
        groups.append({"params": weights, "lr_mult": weight_mult, "lr": base_lr * weight_mult})
        groups.append({"params": biases, "lr_mult": bias_mult, "lr": base_lr * bias_mult})
    return groups


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give every parameter group lr times its multiplier."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_mult"]


def step_lr(base_lr: float, epoch: int, steps: Sequence[int], gamma: float) -> float:
    """Step decay: base_lr * gamma ** (number of steps at or before `epoch`)."""
    return base_lr * gamma ** sum(epoch >= s for s in steps)


def poly_lr(base_lr: float, step: int, total_steps: int, power: float) -> float:
    """DeepLab's poly schedule: base_lr * (1 - step / total_steps) ** power."""
    return base_lr * (1 - step / total_steps) ** power
