"""CPU kernels that compute the same bits on any x86-64 machine.

torch's CPU kernels (ATen's own, oneDNN's convolutions, MKL's BLAS) pick their code by the
processor's instruction set and vendor, and their reductions split work by thread count, so
the same stage on the same data rounds differently on an AVX-512 server than on an AVX2
laptop, or on an AMD processor than on an Intel one. With `base.cpu_kernels: portable` every
stage caps ATen and oneDNN at AVX2, puts MKL on its COMPATIBLE branch and uses a fixed thread
count; `native` leaves the choice to the libraries (faster on some machines, exactly
reproducible only on one machine type). The settings are environment variables the
libraries read once, when torch loads: `pin_cpu_kernels` runs first in every stage process
(`stages/__init__.py`), and the values it sets win over the caller's.

MKL's COMPATIBLE branch (SSE2) is its only one that is the same on Intel and AMD processors:
any other named branch, AVX2 included, is for Intel processors only and elsewhere falls back,
silently, to the processor's own (AUTO) code (oneMKL developer guide, "Specifying Code
Branches"; `MKL_VERBOSE=1` prints the branch of every call). It is slower than AVX2, but MKL
only does the pipeline's few small matrix products (co-attention, single-image convolutions of
`locmaps`, MB+ covariances); the convolutions of training are oneDNN's.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

PORTABLE_THREADS = 2  # the reference machine's cores; thread count changes reduction order
PORTABLE = {
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's vectorised kernels
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN's JIT convolutions
    "MKL_CBWR": "COMPATIBLE",  # MKL's reproducible branch for Intel and AMD alike (above)
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
