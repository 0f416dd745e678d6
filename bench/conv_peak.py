"""The machine's float32 convolution throughput, the yardstick of the throughput benchmark.

A 1x1 convolution of 2048 to 2048 channels over a 32 x 64 map is a 2048^3 matrix product run
by oneDNN, the library of the training steps' convolutions, so it is what those steps could
reach under the same instruction-set cap. (MKL's matrix product would not do: the portable
kernels put MKL on its slow, vendor-neutral branch, which the convolutions never use.)
Importing this module sets no kernel settings, so a child process running it alone gets the
libraries' own choice of instruction set.

    python -m bench.conv_peak
"""

import time

import torch
import torch.nn.functional as F

CHANNELS = 2048
MAP_SIZE = (32, 64)  # CHANNELS pixels: the product is CHANNELS^3 multiply-adds


def conv_gflops(repeats: int = 10) -> float:
    """GFLOP/s of the GEMM-shaped 1x1 float32 convolution, best of `repeats`."""
    features = torch.randn(1, CHANNELS, *MAP_SIZE)
    weight = torch.randn(CHANNELS, CHANNELS, 1, 1)
    F.conv2d(features, weight)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        F.conv2d(features, weight)
        best = min(best, time.perf_counter() - started)
    return 2 * CHANNELS**3 / best / 1e9


if __name__ == "__main__":
    print(conv_gflops())
