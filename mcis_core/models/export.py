"""Exported models: the weights a stage hands downstream, with what it takes to use them.

An export holds the network's weights, the config that rebuilds it and `meta`, what later
stages need to use it (class names; for the classifier its input size and views). It is
written by `training.loop.export_checkpoint` and read here, by one loader for every network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mcis_core.common.errors import DatasetError
from mcis_core.common.io import atomic_file, canonical


@dataclass(frozen=True)
class Exported:
    """The contents of an exported model file."""

    kind: str  # "classifier" or "segmentation"
    weights: dict[str, torch.Tensor]
    config: dict  # keyword arguments of the network's config
    meta: dict  # what later stages need: class names, input size, ...


def save_exported(path: Path, exported: Exported) -> None:
    """Write an export atomically."""
    state = {
        "model": exported.weights,
        "model_config": exported.config,
        "kind": exported.kind,
        "meta": exported.meta,
    }
    with atomic_file(path, "wb") as handle:
        torch.save(canonical(state), handle)


def read_exported(path: Path, kind: str) -> Exported:
    """The export at `path`, which must be a `kind` model."""
    if not Path(path).is_file():
        raise DatasetError(f"{path}: exported {kind} model missing")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("kind") != kind:
        raise DatasetError(f"{path}: a {state.get('kind')} model, expected a {kind} model")
    return Exported(kind, state["model"], state["model_config"], state["meta"])


def load_network(
    path: Path, kind: str, build: Callable[[dict], nn.Module], device: torch.device
) -> tuple[nn.Module, dict]:
    """(network in eval mode on `device`, meta) of the export at `path`; `build(config)`
    makes the untrained network."""
    exported = read_exported(path, kind)
    net = build(exported.config)
    net.load_state_dict(exported.weights)
    return net.to(device).eval(), exported.meta
