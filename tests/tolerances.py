"""Tolerances for comparing floating point results computed in two different ways.

float32 keeps 24 significant bits: one ulp is 2^-23 ~ 1.2e-7 of the value. Another machine
(another SIMD width, another BLAS or oneDNN kernel) may add the same terms in another order,
which moves a sum by up to a few ulps per term of the terms' magnitude. A float32 comparison
therefore allows a relative error of about ulps x terms summed (1e-5 covers a few ulps times
tens of terms), never an absolute one below the values' own ulp.
"""

from __future__ import annotations

import torch


def assert_close_to_scale(
    actual: torch.Tensor, expected: torch.Tensor, rtol: float, msg: str | None = None
) -> None:
    """|actual - expected| <= rtol * (|expected| + max |expected|), element by element.

    For sums of terms of both signs (convolutions, matrix products, attention, gradients) the
    rounding error scales with the largest terms, so an element that cancels to nearly zero
    carries an error of the tensor's scale, not of its own size: the absolute part is rtol
    times the largest expected magnitude.
    """
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * scale, msg=msg)
