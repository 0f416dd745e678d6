"""Gaussian filtering on the permutohedral lattice, in torch, for the dense CRF.

A. Adams, J. Baek, M. A. Davis, "Fast High-Dimensional Filtering Using the Permutohedral
Lattice", Eurographics 2010, as used by P. Krähenbühl, V. Koltun, "Efficient Inference in Fully
Connected CRFs with Gaussian Edge Potentials", NIPS 2011 (the CRF: docs/method.md §7.2).

`PermutohedralLattice.build(features).filter(values)` approximates K @ values for the kernel
K_ij = exp(-|f_i - f_j|^2 / 2) of N points with d features in O(N d^2), not O(N^2), per filter:
- Features scaled by sqrt(2/3) (d + 1) are mapped isometrically onto the hyperplane sum x = 0 of
  R^(d+1), tiled by the simplices of the lattice of integer points whose coordinates are all
  congruent mod d + 1. Splat spreads a point's value over its simplex's d + 1 vertices with
  its barycentric weights; blur convolves the lattice with [1/2, 1, 1/2] along each of the
  d + 1 axes in turn (a missing neighbour counts 0); slice reads the vertices back.
- Built once (mcis_core.evaluate.lattice_index: vertices as sorted integer codes, neighbours
  by search), splat, blur and slice are weighted gathers (embedding_bag) over index tables:
  vectorised, the same code on the CPU and on CUDA.
- Slicing divides by the lattice's gain on a constant signal, 2^(d+1) / (sqrt(d + 1)
  (4 pi / 3)^(d/2)) (the blur's gain over the density of lattice points), so that the output
  estimates K @ values itself; the CRF's normalisation cancels it anyway.
- Simplex, ranks (with ties broken alike), vertex and axis order follow Krähenbühl's
  densecrf, as pydensecrf wraps it: both approximate K alike, up to the order of float sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from mcis_core.evaluate.lattice_index import blur_tables, unique_vertices, vertex_codes


@dataclass(frozen=True, eq=False)
class PermutohedralLattice:
    """Index and weight tables of splat, blur and slice: filter(values) ~ K @ values."""

    splat_points: torch.Tensor  # (E,) int32, the point of each splat entry, grouped by vertex
    splat_offsets: torch.Tensor  # (M,) int32, where each vertex's group starts
    splat_weights: torch.Tensor  # (E,) barycentric weights
    blur_vertices: torch.Tensor  # (d + 1, M, 3) int32, per axis: a vertex, its two neighbours
    blur_weights: torch.Tensor  # (d + 1, M, 3) 1, 1/2, 1/2 (0 for a missing neighbour)
    slice_vertices: torch.Tensor  # (N, d + 1) int32, each point's vertices
    slice_weights: torch.Tensor  # (N, d + 1) barycentric weights over the gain

    @classmethod
    def build(cls, features: torch.Tensor) -> PermutohedralLattice:
        """The lattice of points with features (N, d), float32 or float64, in their dtype."""
        points, dim = features.shape
        base, rank, weights = _enclosing_simplex(_elevate(features))  # (d + 1, N) each
        codes, radix = vertex_codes(base, rank)  # (d + 1, N)
        keys, offsets, point, entry, vertex = unique_vertices(codes)  # (M,) x 2, (E,) x 3
        blur_vertices, blur_weights = blur_tables(keys, radix, weights.dtype)
        barycentric = weights.T.contiguous()  # (N, d + 1)
        gain = 2 ** (dim + 1) / (math.sqrt(dim + 1) * (4 * math.pi / 3) ** (dim / 2))
        return cls(
            splat_points=point,
            splat_offsets=offsets.int(),
            splat_weights=barycentric.view(-1).index_select(0, entry),
            blur_vertices=blur_vertices,
            blur_weights=blur_weights,
            slice_vertices=vertex.view(points, dim + 1),
            slice_weights=barycentric / gain,
        )

    @property
    def vertices(self) -> int:
        """Number of lattice points M."""
        return len(self.splat_offsets)

    def filter(self, values: torch.Tensor) -> torch.Tensor:
        """About K @ values for values (N, C) in the lattice's dtype: (N, C)."""
        lattice = _bags(self.splat_points, values, self.splat_weights, self.splat_offsets)
        for vertices, weights in zip(self.blur_vertices, self.blur_weights, strict=True):
            lattice = _bags(vertices, lattice, weights)  # (M, C)
        return _bags(self.slice_vertices, lattice, self.slice_weights)

    def scaled(self, before: torch.Tensor, after: torch.Tensor) -> PermutohedralLattice:
        """The filter diag(after) K diag(before), for per-point factors (N,) each."""
        return replace(
            self,
            splat_weights=self.splat_weights * before.index_select(0, self.splat_points),
            slice_weights=self.slice_weights * after[:, None],
        )


def _elevate(features: torch.Tensor) -> torch.Tensor:
    """Scaled features (N, d) on the hyperplane sum x = 0 of R^(d+1): (d + 1, N).

    Coordinate i is sum_{k >= i} c_k - i c_(i-1), with c_k = f_k s / sqrt((k + 1)(k + 2)) and
    s = sqrt(2/3) (d + 1): an orthonormal basis, so distances are kept (times s). The factors
    and the order of operations are densecrf's, whose float32 results this repeats exactly.
    """
    points, dim = features.shape
    scale = float(np.float32(math.sqrt(2 / 3) * (dim + 1)))
    elevated = torch.empty(dim + 1, points, dtype=features.dtype, device=features.device)
    suffix = torch.zeros_like(elevated[0])
    for i in range(dim, 0, -1):
        factor = float(np.float32(scale / math.sqrt(i * (i + 1))))
        scaled = features[:, i - 1] * factor  # (N,)
        torch.sub(suffix, scaled * i, out=elevated[i])
        suffix += scaled
    elevated[0] = suffix
    return elevated


def _enclosing_simplex(
    elevated: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Remainder-0 vertex / (d + 1), ranks and barycentric weights of each point: (d + 1, N).

    rank_i counts the coordinates whose offset from the remainder-0 vertex is below that of
    coordinate i (ties: the later coordinate counts as below, as in densecrf); vertex k of
    the point's simplex is (d + 1) (base - [rank < k]) + k, coordinatewise.
    """
    size = elevated.shape[0]  # d + 1
    base = (elevated * (1.0 / size)).round_()  # nearest multiple of d + 1, over d + 1
    residual = torch.add(elevated, base, alpha=-size)
    rank = torch.arange(size - 1, -1, -1, dtype=torch.int8, device=elevated.device)
    rank = rank[:, None].repeat(1, elevated.shape[1])  # as if all were tied
    for i in range(size - 1):
        for j in range(i + 1, size):
            less = (residual[i] < residual[j]).view(torch.int8)
            rank[i] -= less
            rank[j] += less
    # The nearest remainder-0 point may be off the plane: move it, and the ranks cyclically
    rank -= base.sum(0).to(torch.int8)
    wrap = (rank < 0).view(torch.int8) - (rank >= size).view(torch.int8)  # (d + 1, N)
    rank = rank.add_(wrap, alpha=size).long()
    wrap = wrap.to(elevated.dtype)
    base -= wrap
    residual.add_(wrap, alpha=size)
    return base.long(), rank, _barycentric(residual, rank)


def _barycentric(residual: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
    """Weights (d + 1, N) of a point's vertices from its offsets from vertex 0 and their ranks.

    Weight k is the gap between the offsets ranked k - 1 and k, over d + 1 (weight 0 wraps).
    """
    size = residual.shape[0]
    ordered = torch.empty_like(residual).scatter_(0, rank, residual)  # ascending offsets
    ordered *= 1.0 / size
    weights = torch.empty_like(residual)
    torch.sub(ordered[1:], ordered[:-1], out=weights[1:])
    torch.sub(ordered[0] + 1, ordered[-1], out=weights[0])
    return weights


def _bags(
    index: torch.Tensor,
    rows: torch.Tensor,
    weights: torch.Tensor,
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weighted sums of rows (R, C) over bags of index: 2-D (B, S), or 1-D cut at offsets (B,)."""
    return F.embedding_bag(index, rows, offsets, mode="sum", per_sample_weights=weights)
