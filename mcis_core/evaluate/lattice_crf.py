"""The dense CRF's mean field with kernels filtered on the permutohedral lattice.

The same model as mcis_core.evaluate.crf (whose docstring states the conventions: -log p
clipped at prob_floor, Potts, Gaussian and bilateral kernels, NORMALIZE_SYMMETRIC, parallel
updates), with each kernel product K~ Q = D^-1/2 K D^-1/2 Q approximated on the lattice of
mcis_core.evaluate.lattice as Krähenbühl and Koltun (NIPS 2011) and pydensecrf do; the CRF's
settings: docs/method.md §7.2.
- Each lattice is built once per image (the position-only one once per image size, cached) and
  D^-1/2 and the kernel's weight are folded into its splat and slice weights, so a mean-field
  iteration is a splat, blur and slice per kernel and a softmax.
- Q is kept as (N, C), the lattice's layout: the result is a (C, H, W) view of it.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from mcis_core.evaluate.lattice import PermutohedralLattice
from mcis_core.evaluate.params import CrfParams

LOGIT_RANGE = 80.0  # logits the shift-free softmax accepts: e^80 ~ 5.5e34, e^-80 ~ 1.8e-35
CACHED_SIZES = 8  # image sizes whose position-only kernel is kept (about 11 MB each at VOC size)


def lattice_crf(image: torch.Tensor, probs: torch.Tensor, params: CrfParams) -> torch.Tensor:
    """image (H, W, 3) uint8, probs (C, H, W) -> mean-field Q (C, H, W), on probs' device.

    Q is a (C, H, W) view of an (N, C) tensor, in probs' dtype (float32 or float64).
    """
    classes = probs.shape[0]
    clipped = probs.new_empty(probs[0].numel(), classes)  # (N, C)
    torch.clamp(probs.reshape(classes, -1).T, params.prob_floor, 1.0, out=clipped)
    q = clipped / clipped.sum(1, keepdim=True)  # softmax(-unary)
    kernels = weighted_kernels(image, params, probs.dtype) if params.iterations else []
    if kernels:
        log_p = clipped.log_()  # -unary
        for _ in range(params.iterations):
            logits = kernels[0].filter(q)
            for kernel in kernels[1:]:
                logits += kernel.filter(q)
            q = softmax(logits.add_(log_p))
    return q.T.reshape(probs.shape)


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the classes of logits (N, C), in place: exp without the shift by the max.

    A third faster than torch.softmax over a short last dimension. Logits within +-80 keep exp
    a normal float32 and a sum over fewer than 6000 classes finite; the CRF's (log p >= log
    prob_floor plus messages of the order of the kernel weights) are; otherwise, or with NaN,
    torch.softmax takes over.
    """
    low, high = torch.aminmax(logits)
    if not (low >= -LOGIT_RANGE and high <= LOGIT_RANGE):
        return torch.softmax(logits, dim=1)
    exp = logits.exp_()
    return exp.div_(exp.sum(1, keepdim=True))


def weighted_kernels(
    image: torch.Tensor, params: CrfParams, dtype: torch.dtype
) -> list[PermutohedralLattice]:
    """Lattices filtering w D^-1/2 K D^-1/2 for the kernels with a weight w > 0."""
    height, width, _ = image.shape
    kernels = []
    if params.gaussian_compat:
        kernels.append(
            smoothness_kernel(
                height, width, params.gaussian_sxy, params.gaussian_compat, dtype, image.device
            )
        )
    if params.bilateral_compat:
        xy = pixel_positions(height, width, dtype, image.device) / params.bilateral_sxy
        rgb = image.reshape(-1, 3).to(dtype) / params.bilateral_srgb
        features = torch.cat((xy, rgb), dim=1)  # (N, 5)
        kernels.append(normalised_kernel(features, params.bilateral_compat))
    return kernels


@lru_cache(maxsize=CACHED_SIZES)
def smoothness_kernel(
    height: int, width: int, sxy: float, weight: float, dtype: torch.dtype, device: torch.device
) -> PermutohedralLattice:
    """The position-only kernel's lattice, as normalised_kernel: the same for every image."""
    return normalised_kernel(pixel_positions(height, width, dtype, device) / sxy, weight)


def normalised_kernel(features: torch.Tensor, weight: float) -> PermutohedralLattice:
    """The lattice filtering weight D^-1/2 K D^-1/2 of features (N, d), D = diag(K 1)."""
    lattice = PermutohedralLattice.build(features)
    norm = lattice.filter(torch.ones_like(features[:, :1])).squeeze(1).rsqrt()  # (N,)
    return lattice.scaled(norm, weight * norm)


def pixel_positions(
    height: int, width: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Column and row (H * W, 2) of each pixel, in row-major order."""
    rows = torch.arange(height, dtype=dtype, device=device)
    cols = torch.arange(width, dtype=dtype, device=device)
    y, x = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack((x, y), dim=-1).reshape(-1, 2)
