"""CPU kernels that compute the same bits on any x86-64 machine.

torch's CPU kernels (ATen's own, oneDNN's convolutions, MKL's BLAS) pick their code by the
processor's instruction set, and their reductions split work by thread count, so the same
stage on the same data rounds differently on an AVX-512 server than on an AVX2 laptop. With
`base.cpu_kernels: portable` every stage caps the instruction set at AVX2 and uses a fixed
thread count; `native` leaves the choice to the libraries (faster on some machines, exactly
reproducible only on one machine type). The settings are environment variables the
libraries read once, when torch loads: `pin_cpu_kernels` runs first in every stage process
(`stages/__init__.py`), and the values it sets win over the caller's.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

PORTABLE_THREADS = 2  # the reference machine's cores; thread count changes reduction order
PORTABLE = {
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's vectorised kernels
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN's JIT convolutions
    "MKL_CBWR": "AVX2",  # MKL's conditional numerical reproducibility
    "OMP_NUM_THREADS": str(PORTABLE_THREADS),
    "MKL_NUM_THREADS": str(PORTABLE_THREADS),
}


def cpu_kernels_setting(params_file: str | Path = "params.yaml") -> str:
    """`base.cpu_kernels` of the params file, read without validation (check_params does that)."""
    try:
        raw = yaml.safe_load(Path(params_file).read_text())
        return str(raw["base"]["cpu_kernels"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return "portable"


def pin_cpu_kernels(setting: str) -> None:
    """Set the environment of the portable kernels (before torch loads), unless `native`."""
    if setting != "native":
        os.environ.update(PORTABLE)
