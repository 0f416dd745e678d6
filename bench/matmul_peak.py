"""The machine's float32 matmul throughput, the yardstick of the throughput benchmark.

Importing this module sets no kernel settings, so a child process running it alone gets the
libraries' own choice of instruction set.

    python -m bench.matmul_peak
"""

import time

import torch

MATMUL_SIZE = 2048


def matmul_gflops(repeats: int = 10) -> float:
    """GFLOP/s of a (MATMUL_SIZE x MATMUL_SIZE) float32 matmul, best of `repeats`."""
    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * MATMUL_SIZE**3 / best / 1e9


if __name__ == "__main__":
    print(matmul_gflops())
