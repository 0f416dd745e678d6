"""Benchmark: the classifier's colour jitter per image, on the 8-bit image (as the original and
the pipeline do it) against the same four torchvision steps on a float tensor (the pipeline's
way before), side by side on the default input size, one thread, alternated in one run.

Both jitter the input-size square of scikit-image's bundled photographs with the same factors
and orders. Prints JSON: milliseconds per image (median over rounds) and the ratio.

    python -m bench.jitter_bench [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from bench.crf_photos import PHOTOS, photo
from mcis_core.classifier.data import colour_jitter
from mcis_core.classifier.params import ClassifierParams
from mcis_core.common.params import load_section
from mcis_core.models.inputs import square_image

IMAGES_PER_ROUND = 200
PHOTO_SIZE = (150, 170)  # about the embedded images' size


def per_image_ms(jitter: Callable[[int], object]) -> float:
    """Milliseconds per image of `jitter(i)` over IMAGES_PER_ROUND images."""
    start = time.perf_counter()
    for i in range(IMAGES_PER_ROUND):
        jitter(i)
    return (time.perf_counter() - start) / IMAGES_PER_ROUND * 1e3


def main(rounds: int) -> dict:
    torch.set_num_threads(1)
    params = load_section("classifier", ClassifierParams)
    strength, side = tuple(params.jitter), params.input_size
    squares = [square_image(Image.fromarray(photo(name, *PHOTO_SIZE)), side) for name in PHOTOS]
    tensors = [TF.to_tensor(s) for s in squares]

    def eight_bit(i: int) -> torch.Tensor:
        rng = np.random.default_rng(i)
        return TF.to_tensor(colour_jitter(squares[i % len(squares)], strength, rng))

    def float_tensor(i: int) -> torch.Tensor:
        # torchvision's steps take float tensors too: the same draws, orders and steps
        return colour_jitter(tensors[i % len(tensors)], strength, np.random.default_rng(i))

    times: dict[str, list[float]] = {"eight_bit": [], "float_tensor": []}
    for _ in range(rounds):
        times["eight_bit"].append(per_image_ms(eight_bit))
        times["float_tensor"].append(per_image_ms(float_tensor))
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "input_size": side,
        "ms_per_image": {name: round(value, 3) for name, value in medians.items()},
        "speedup_eight_bit": round(medians["float_tensor"] / medians["eight_bit"], 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    print(json.dumps(main(parser.parse_args().rounds), indent=2))
