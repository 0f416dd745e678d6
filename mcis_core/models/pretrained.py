"""ImageNet weights of torchvision's models: a given file, the torch hub cache's copy, or a
download into that cache the way torchvision itself fetches them.

The weights are named by torchvision's Weights enum; its URL's file name carries the first
hex digits of the file's sha256 (`vgg16-397923af.pth`), which a download must match.
torch.hub writes a download to a `.partial` file beside its target and moves it into place
only once complete and checked, so the cache never holds a partial or corrupt file.
"""

from __future__ import annotations

import os
from http.client import HTTPException
from pathlib import Path

import torch
from torchvision.models import ResNet101_Weights, VGG16_Weights

from mcis_core.common.errors import WeightsError

VGG16_IMAGENET = VGG16_Weights.IMAGENET1K_V1  # vgg16-397923af.pth, for the classifier
RESNET101_IMAGENET = ResNet101_Weights.IMAGENET1K_V1  # resnet101-63fe2227.pth, for segmentation
# what a failed download raises: URLError and connection errors are OSErrors; torch.hub raises
# RuntimeError on a sha256 mismatch; a body cut short can raise http.client.IncompleteRead
DOWNLOAD_ERRORS = (OSError, HTTPException, RuntimeError)


def hub_cache_path(url: str) -> Path:
    """Where torchvision keeps the weights file published at `url`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def sha256_prefix(file_name: str) -> str | None:
    """The sha256 prefix in a torchvision weights file name (`name-<hex>.pth`), if any."""
    match = torch.hub.HASH_REGEX.search(file_name)
    return match.group(1) if match else None


def download_to_hub_cache(url: str, param_name: str) -> Path:
    """Download the weights at `url` into the torch hub cache, checked against the sha256
    prefix in its name; on failure raise WeightsError saying where to put the file instead."""
    cached = hub_cache_path(url)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, os.fspath(cached), sha256_prefix(cached.name))
    except DOWNLOAD_ERRORS as err:
        reason = " ".join(str(err).split())  # one line, whatever the error's text
        raise WeightsError(
            f"ImageNet weights {cached.name}: download of {url} failed ({reason}); download it "
            f"on a machine with internet access and put it in {cached.parent}, or set "
            f"{param_name} to its path"
        ) from err
    return cached


def weights_file(url: str, path: str | Path | None, param_name: str) -> Path:
    """The file holding the weights published at `url`: `path` if given, else the torch hub
    cache's copy, downloaded there first if missing. `param_name` sets `path` (named in errors)."""
    if path:
        if not Path(path).is_file():
            raise WeightsError(f"{param_name}: {path} does not exist")
        return Path(path)
    cached = hub_cache_path(url)
    if cached.is_file():
        return cached
    return download_to_hub_cache(url, param_name)


def imagenet_state_dict(
    url: str, path: str | Path | None, param_name: str
) -> dict[str, torch.Tensor]:
    """The weights published at `url`, read from `weights_file(url, path, param_name)`."""
    return torch.load(weights_file(url, path, param_name), map_location="cpu", weights_only=True)
