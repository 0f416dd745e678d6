"""Pick the torch device: CUDA when present, CPU otherwise."""

from __future__ import annotations

import torch


def default_device() -> torch.device:
    """CUDA device 0 if available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
