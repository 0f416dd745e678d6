"""The portable CPU kernels: the settings each library reads take effect."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch

from mcis_core.common.kernels import PORTABLE

MATMUL = "import torch; a = torch.ones(64, 64); print(float((a @ a).sum()))"


@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or not torch.backends.mkl.is_available(),
    reason="MKL's code branches exist on x86-64 builds with MKL",
)
def test_mkl_runs_its_branch_for_every_vendor() -> None:
    """MKL names the branch of every call with MKL_VERBOSE; an Intel-only branch such as AVX2
    would read AUTO on an AMD processor, and the bits would follow the vendor."""
    env = {**os.environ, **PORTABLE, "MKL_VERBOSE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", MATMUL], env=env, capture_output=True, text=True, check=True
    ).stdout
    branches = {word for word in out.split() if word.startswith("CNR:")}
    assert branches == {"CNR:COMPATIBLE"}, out
