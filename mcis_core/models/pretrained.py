"""ImageNet weights of torchvision's models, read from a given file or the torch hub cache."""

from __future__ import annotations

from pathlib import Path

import torch

from mcis_core.common.errors import WeightsError


def hub_cache_path(url: str) -> Path:
    """Where torchvision keeps the weights file published at `url`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def weights_file(url: str, path: str | None, param_name: str) -> Path:
    """The file holding the weights published at `url`: `path` if given, else the torch hub
    cache's copy. `param_name` is the parameter that sets `path` (named in the error)."""
    if path:
        if not Path(path).is_file():
            raise WeightsError(f"{param_name}: {path} does not exist")
        return Path(path)
    cached = hub_cache_path(url)
    if cached.is_file():
        return cached
    raise WeightsError(
        f"ImageNet weights {cached.name} not found at {cached}: download {url} on a machine "
        f"with internet access and put it in {cached.parent}, or set {param_name} to its path"
    )


def imagenet_state_dict(url: str, path: str | None, param_name: str) -> dict[str, torch.Tensor]:
    """The weights published at `url`, read from `weights_file(url, path, param_name)`."""
    return torch.load(weights_file(url, path, param_name), map_location="cpu", weights_only=True)
