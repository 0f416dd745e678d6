"""Throughput of mcis_core.saliency.compute_saliency: prints one JSON line.

Run as `python -m bench.saliency_bench [--device cpu|cuda]`; times IMAGES random 160x128 RGB
images in one call after a warm-up call, best of REPEATS.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

import numpy as np
import torch

from mcis_core.common.device import default_device
from mcis_core.common.params import load_section
from mcis_core.saliency.mbplus import compute_saliency
from mcis_core.saliency.params import SaliencyParams

IMAGES = 32
HEIGHT, WIDTH = 128, 160
REPEATS = 3
SEED = 0


def main() -> None:
    """Time compute_saliency and print images per second as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default=str(default_device()))
    device = torch.device(parser.parse_args().device)
    rng = np.random.default_rng(SEED)
    images = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(IMAGES)]
    settings = asdict(load_section("saliency", SaliencyParams).compute)
    del settings["batch_size"]
    compute_saliency(images[:2], device=device, **settings)  # warm-up: allocator, kernels
    seconds = min(_timed(images, device, settings) for _ in range(REPEATS))
    report = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "images": IMAGES,
        "image_size": [HEIGHT, WIDTH],
        "seconds": round(seconds, 4),
        "ms_per_image": round(1000 * seconds / IMAGES, 2),
        "images_per_second": round(IMAGES / seconds, 1),
    }
    print(json.dumps(report))


def _timed(images: list[np.ndarray], device: torch.device, settings: dict) -> float:
    """Wall-clock seconds of one compute_saliency call."""
    start = time.perf_counter()
    compute_saliency(images, device=device, **settings)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
