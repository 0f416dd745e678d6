"""The vertex index of a permutohedral lattice (mcis_core.evaluate.lattice), in torch.

Which lattice points the N points' simplices use, and each one's neighbours along the d + 1
blur axes, as Krähenbühl's densecrf (wrapped by pydensecrf) finds them in its hash table:

- A vertex (k, q), k its remainder mod d + 1 and q its first d coordinates div d + 1, is an
  integer code k R + sum_i (q_i - low_i) radix_i. The codes of all N (d + 1) vertex entries
  are sorted once: runs of equal codes are the distinct vertices, and the order groups each
  vertex's entries for the splat.
- On the CPU, numpy sorts (code, entry) packed into one int64 and searches the sorted codes,
  ~10x and ~2x faster there than torch.sort and torch.searchsorted; torch's (as on CUDA)
  give the same tables.
- A neighbour is a code at a fixed offset (per remainder and axis), found by a binary search
  of all M sorted codes per axis; the opposite neighbour by inverting that map.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

CODE_BITS = 62  # vertex codes, and codes plus the blur's offsets, stay below 2^62
NUMPY_ON_CPU = True  # sort and search CPU tensors with numpy (faster there); else torch's


def vertex_codes(base: torch.Tensor, rank: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Integer codes (d + 1, N) of each point's vertices, and the radix of the code.

    Vertex k of a point is (d + 1) (base - [rank < k]) + k (mcis_core.evaluate.lattice); as
    (k, q), q its first d coordinates div (d + 1), its code is k R + sum_i (q_i - low_i)
    radix_i with R = radix[d]. The ranges have a margin of one on either side for the blur's
    neighbours, whose codes are unique too.
    """
    size = base.shape[0]
    low, high = base[:-1].amin(1) - 2, base[:-1].amax(1) + 1  # (d,)
    radix = [1]
    for extent in (high - low + 1).tolist():
        radix.append(radix[-1] * extent)
    if size * radix[-1] >= 2**CODE_BITS:
        raise ValueError(f"lattice too large for int64 codes: {size} x {radix[-1]} vertices")
    strides = torch.tensor(radix[:-1] + [0], device=base.device)  # (d + 1,)
    codes = torch.empty_like(base)
    # Vertex k lowers the coordinates ranked 0, ..., k - 1 by one step of d + 1
    dropped = codes.scatter_(0, rank, strides[:, None].expand_as(rank))
    steps = torch.sub(radix[-1], dropped[:-1]).cumsum_(0)  # (d, N)
    codes[0] = ((base[:-1] - low[:, None]) * strides[:-1, None]).sum(0)  # vertex 0
    torch.add(steps, codes[0], out=codes[1:])
    return codes, radix


def unique_vertices(
    codes: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct codes and the entries grouped by code, of vertex codes (d + 1, N): 5 tensors.

    The distinct codes, sorted (M,); the E = N (d + 1) entries (point, k) sorted by code: where
    each code's run starts (M,), each entry's point (E,) int32 and index point (d + 1) + k
    (E,) int64; and the vertex (the code's rank among the distinct ones) of every entry, by
    index (E,) int32.
    """
    sorted_codes, point, entry = _sort_codes(codes)  # (E,) each
    first = torch.ones_like(sorted_codes, dtype=torch.bool)
    torch.ne(sorted_codes[1:], sorted_codes[:-1], out=first[1:])
    offsets = first.nonzero().squeeze(1)  # (M,)
    vertex = torch.empty(len(entry), dtype=torch.int32, device=entry.device)
    vertex.scatter_(0, entry, first.cumsum(0, dtype=torch.int32) - 1)
    return sorted_codes.index_select(0, offsets).long(), offsets, point, entry, vertex


def _sort_codes(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes (d + 1, N) sorted (E,), each one's point (E,) int32 and index (E,) int64.

    An entry's index is point (d + 1) + k, k its vertex; equal codes keep that order.
    """
    size, points = codes.shape
    bits = (size - 1).bit_length()
    if points << bits >= 2**31:
        raise ValueError(f"too many points for int32 indices: {points} x {size}")
    entry = torch.arange(0, points << bits, 1 << bits, device=codes.device)
    entry = entry + torch.arange(size, device=codes.device)[:, None]  # point << bits | k
    numpy = NUMPY_ON_CPU and codes.device.type == "cpu" and sys.byteorder == "little"
    if numpy and int(codes.max()) < 2**31:
        # Code and entry as the high and low halves of one int64 (numpy sorts values ~10x
        # faster than torch argsorts on the CPU): the sorted halves are views
        packed = np.sort((codes * 2**32).bitwise_or_(entry).view(-1).numpy())
        halves = torch.from_numpy(packed).view(torch.int32).view(-1, 2)
        sorted_codes, entry = halves[:, 1], halves[:, 0]
    else:
        sorted_codes, order = torch.sort(codes.view(-1), stable=True)
        entry = entry.view(-1).index_select(0, order).int()
    point = entry >> bits
    return sorted_codes, point, (point * size).add_(entry & ((1 << bits) - 1)).long()


def blur_tables(
    keys: torch.Tensor, radix: list[int], dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per axis j: each vertex and its two neighbours (d + 1, M, 3), weights (d + 1, M, 3).

    The neighbours along axis j are x - 1 + (d + 1) e_j, looked up in the sorted codes, and
    x + 1 - (d + 1) e_j, by inverting that map; a missing one is the vertex itself, weight 0.
    """
    dim, span, vertices = len(radix) - 1, radix[-1], len(keys)
    table = torch.arange(vertices, dtype=torch.int32, device=keys.device)
    table = table[None, :, None].repeat(dim + 1, 1, 3)  # (d + 1, M, 3), all "itself"
    weights = torch.zeros(table.shape, dtype=dtype, device=keys.device)
    weights[:, :, 0] = 1.0
    # x - 1 has remainder k - 1 and the same q; from remainder 0, remainder d and q - 1
    lowered = keys + torch.where(keys < span, dim * span - sum(radix[:-1]), -span)  # (M,)
    for axis in range(dim + 1):
        query = lowered + radix[axis] if axis < dim else lowered
        found = _search(keys, query)
        have = (keys.index_select(0, found) == query).nonzero().squeeze(1)  # (hits,)
        neighbour = found.index_select(0, have)  # x - 1 + (d + 1) e_j of the vertices `have`
        table[axis, :, 1].scatter_(0, have, neighbour.int())
        table[axis, :, 2].scatter_(0, neighbour, have.int())
        weights[axis, :, 1].index_fill_(0, have, 0.5)
        weights[axis, :, 2].index_fill_(0, neighbour, 0.5)
    return table, weights


def _search(keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Index (Q,) of each query's match in sorted keys (M,), or of an unequal key."""
    if NUMPY_ON_CPU and keys.device.type == "cpu":  # numpy's is ~2x faster there
        found = torch.from_numpy(np.searchsorted(keys.numpy(), queries.numpy()))
    else:
        found = torch.searchsorted(keys, queries)
    return found.clamp_max_(len(keys) - 1)
