"""The fully connected CRF that DeepLab applies to segmentation scores, in torch.

`dense_crf` runs one of two implementations of the same model, by `params.method`: "lattice"
filters the kernels on the permutohedral lattice as the reference implementation does
(mcis_core.evaluate.lattice_crf; O(N), the evaluate stage's), "exact" evaluates them exactly
(this module; O(N^2), the reference for tests on small images).

Reference: P. Krähenbühl, V. Koltun, "Efficient Inference in Fully Connected CRFs with Gaussian
Edge Potentials", NIPS 2011, as used for post-processing by L.-C. Chen et al., "Semantic Image
Segmentation with Deep Convolutional Nets and Fully Connected CRFs" (DeepLab), ICLR 2015.

Conventions, taken from the reference implementation (Krähenbühl's densecrf code as wrapped by
pydensecrf / pydensecrf2: DenseCRF2D, setUnaryEnergy(-log p), addPairwiseGaussian and
addPairwiseBilateral with their defaults DIAG_KERNEL and NORMALIZE_SYMMETRIC, inference(n)):
- Unary: -log(p) with p clipped to [prob_floor, 1] (as pydensecrf.utils.unary_from_softmax).
  The first Q is softmax(-unary) over the classes, i.e. the clipped probabilities renormalised.
- Features: a pixel's column x and row y in pixels, divided by sxy; for the bilateral kernel
  also its R, G, B values in 0..255, divided by srgb. Each kernel is exp(-|f_i - f_j|^2 / 2):
  sxy and srgb are standard deviations, shared by both axes and all three channels.
- The pixel itself is part of its own message: the library's lattice splats, blurs and slices
  a pixel's value back onto itself, so the diagonal k(i, i) = 1 of K stays in.
- NORMALIZE_SYMMETRIC: each kernel matrix K becomes D^-1/2 K D^-1/2 with D = diag(K 1), the
  row sums including the self term (so they are >= 1; the library's 1e-20 guard is moot).
- Potts compatibility: the library's PottsCompatibility maps the filtered Q to -w Q and the
  inference subtracts it, so one mean-field step is Q = softmax(-unary + sum_k w_k K~_k Q):
  agreeing with similar pixels is rewarded. The paper's penalty w [l_i != l_j] gives the same
  update, up to a per-pixel constant that the softmax cancels.
- Mean-field updates are parallel (every pixel from the previous Q), `iterations` times;
  iterations = 0 returns the first Q.

Where the exact method departs from the library: it evaluates K exactly, never on the lattice.
- The Gaussian (position-only) kernel factorises over rows and columns, so K Q is one (H, H)
  and one (W, W) matrix product per class: exact at O(N (H + W)) cost.
- The bilateral kernel is a dense N x N product built in blocks of `chunk` rows, (chunk, N)
  at most, for the upper triangle only: K is symmetric, so each block also gives its mirror
  image. Pixels are sorted by colour (Z-order) first, so that a block spans a small colour box.
- Squared distances are matmuls of integer factors (coordinates centred on the image, colours
  centred on 128, |v|^2 split into a high and a low limb): every factor has at most 11
  significant bits and every partial sum is an integer below 2^24, so the colour and position
  distances are exact in float32, also when CUDA matmuls use TF32. addmm's beta then scales
  the exact colour distances by -1 / (2 srgb^2) and its alpha the position products by
  -1 / (2 sxy^2): no large terms cancel, so the exponent is good to float32 rounding of its
  own size (float32 results are within 2e-7 of a float64 brute force in the tests).
- Kernel entries below e^-EXPONENT_FLOOR (2e-35, against a self term of 1) are negligible.
  Exponents are floored there, since exp of more negative numbers takes a slow scalar path on
  x86 CPUs (about 100x slower), and column runs whose colour box is so far from a block's that
  every entry is below the floor are skipped. Either changes a row sum or a message by less
  than N e^-80 relative, far below float64 resolution: results match a brute-force product to
  rounding, for every chunk size. A kernel with weight 0 is skipped altogether.

Against pydensecrf2 1.1 at the original's settings (docs/method.md §7.2) about 99.8% of
argmax labels agree (see bench/crf_bench.py); the rest is the lattice's approximation. The
conventions above are also the closest to it: on a test scene the mean |dQ| to the library
is 0.0017, against 0.0076 without the self term and 0.0027 with row (not symmetric)
normalisation.

Cost: O(N^2) per bilateral pass (one for D, one per iteration) against the lattice's O(N): on
one CPU thread about 0.5 s for a 150 x 150 image (pydensecrf: 20 ms) and 40 s for 500 x 375,
in bounded memory; full-size VOC images belong on a GPU.
"""

from __future__ import annotations

import torch

from mcis_core.evaluate.lattice_crf import lattice_crf
from mcis_core.evaluate.params import CrfParams

DEFAULT_CHUNK = 256  # kernel rows per block: a (256, N) float32 block is 192 MB at VOC size
COLUMN_TILE = 64  # columns are skipped in runs of this many pixels (or of `chunk`, if fewer)
EXPONENT_FLOOR = 80.0  # kernel entries below e^-80 are negligible against the self term 1
COLOUR_CENTRE = 128  # centring uint8 colours keeps |c|^2 small for the exact integer factors
LIMB = 2048  # 2^11: TF32 (and float32) matmuls hold integers below it exactly
MAX_SIDE = 2048  # centred coordinates within +-1024 keep |p|^2 <= 2^21, partial sums < 2^24
COLOUR_BITS = 8
CHANNELS = 3
FLOAT_DTYPES = (torch.float32, torch.float64)


def dense_crf(
    image: torch.Tensor, probs: torch.Tensor, params: CrfParams, chunk: int = DEFAULT_CHUNK
) -> torch.Tensor:
    """image (H, W, 3) uint8, probs (C, H, W) -> refined (C, H, W) probabilities (mean-field Q).

    params.method picks the kernels: "lattice" (mcis_core.evaluate.lattice_crf) or "exact"
    (here; chunk applies to it). Runs on probs' device and in its dtype (float32 or float64).
    """
    _check_inputs(image, probs, chunk)
    if params.method == "lattice":
        return lattice_crf(image.to(probs.device), probs, params)
    unary = -probs.clamp(params.prob_floor, 1.0).log()  # (C, H, W)
    q = torch.softmax(-unary, dim=0)
    bilateral = None
    if params.iterations and params.bilateral_compat:
        bilateral = BilateralKernel(
            image.to(probs.device), params.bilateral_sxy, params.bilateral_srgb, chunk, probs.dtype
        )
    for _ in range(params.iterations):
        logits = -unary
        if params.gaussian_compat:
            logits = logits + params.gaussian_compat * gaussian_message(q, params.gaussian_sxy)
        if bilateral is not None:
            logits = logits + params.bilateral_compat * bilateral.message(q)
        q = torch.softmax(logits, dim=0)
    return q


def gaussian_message(q: torch.Tensor, sxy: float) -> torch.Tensor:
    """Symmetrically normalised position-kernel product D^-1/2 K D^-1/2 Q for Q (C, H, W)."""
    _, height, width = q.shape
    rows, cols = _axis_kernel(height, sxy, q), _axis_kernel(width, sxy, q)  # (H, H), (W, W)
    # K = rows (x) cols, so its row sums are the outer product of the factors' row sums
    norm = torch.outer(rows.sum(1), cols.sum(1)).rsqrt()  # (H, W)
    return norm * (rows @ (norm * q) @ cols)  # cols is symmetric


class BilateralKernel:
    """The exact bilateral kernel of one image, over its pixels sorted by colour."""

    def __init__(
        self, image: torch.Tensor, sxy: float, srgb: float, chunk: int, dtype: torch.dtype
    ) -> None:
        height, width, _ = image.shape
        colours = image.reshape(-1, CHANNELS).long()  # (N, 3)
        self.order = torch.argsort(_colour_order_key(colours), stable=True)  # (N,)
        colours = colours[self.order]
        positions = _centred_positions(height, width, image.device)[self.order]  # (N, 2)
        colour_left, colour_right = _squared_distance_factors(colours - COLOUR_CENTRE)
        position_left, position_right = _squared_distance_factors(positions)
        self.colour_left, self.position_left = colour_left.to(dtype), position_left.to(dtype)
        # Right factors stacked as (7 + 6, N): one gather gives contiguous columns for both
        self.right = torch.cat((colour_right, position_right), dim=1).to(dtype).T.contiguous()
        self.colour_scale, self.position_scale = 0.5 / srgb**2, 0.5 / sxy**2
        self.chunk, self.column_tile = chunk, min(chunk, COLUMN_TILE)
        self.block_boxes = _colour_boxes(colours, chunk)  # (blocks, 3) low and high
        self.tile_boxes = _colour_boxes(colours, self.column_tile)  # (tiles, 3) low and high
        ones = torch.ones(len(colours), 1, dtype=dtype, device=image.device)
        self.norm = self.product(ones).rsqrt()  # (N, 1), row sums >= 1 (self term)

    def message(self, q: torch.Tensor) -> torch.Tensor:
        """Symmetrically normalised product D^-1/2 K D^-1/2 Q for Q (C, H, W)."""
        classes = q.shape[0]
        values = q.reshape(classes, -1).T[self.order] * self.norm  # (N, C), colour order
        filtered = self.product(values) * self.norm
        out = torch.empty_like(filtered)
        out[self.order] = filtered  # back to pixel order
        return out.T.reshape(q.shape)

    def product(self, values: torch.Tensor) -> torch.Tensor:
        """K @ values (N, V) in colour order, one block of rows of K's upper triangle at a time."""
        pixels = len(values)
        pixel = torch.arange(pixels, device=values.device)  # (N,)
        tile = pixel // self.column_tile
        out = torch.zeros_like(values)
        for index, start in enumerate(range(0, pixels, self.chunk)):
            stop = min(start + self.chunk, pixels)
            later = torch.nonzero(self._reachable(index)[tile] & (pixel >= stop)).squeeze(1)
            columns = torch.cat((pixel[start:stop], later))
            block = self._block(start, stop, columns)  # (rows, columns)
            out[start:stop] += block @ values[columns]
            # The mirror image of the off-diagonal part: K[later, rows] = block[:, rows:].T
            mirrored = (values[start:stop].T @ block[:, stop - start :]).T  # (later, V)
            out.index_add_(0, later, mirrored)
        return out

    def _reachable(self, index: int) -> torch.Tensor:
        """Column tiles (tiles,) where row block `index` may have an entry above e^-FLOOR.

        The colour term alone bounds an entry by exp(-scale * |dc|^2), and the gap between the
        block's and the tile's colour boxes bounds |dc| from below.
        """
        block_low, block_high = (bound[index] for bound in self.block_boxes)  # (3,) each
        tile_low, tile_high = self.tile_boxes  # (tiles, 3) each
        gap = (tile_low - block_high).clamp_min(0) + (block_low - tile_high).clamp_min(0)
        return self.colour_scale * (gap * gap).sum(1) <= EXPONENT_FLOOR

    def _block(self, start: int, stop: int, columns: torch.Tensor) -> torch.Tensor:
        """Kernel entries (stop - start, len(columns)) of rows start..stop-1, colour order."""
        # Exact integer squared distances; beta and alpha scale the finished products
        right = self.right[:, columns]  # (13, columns)
        split = self.colour_left.shape[1]
        exponent = self.colour_left[start:stop] @ right[:split]
        exponent.addmm_(
            self.position_left[start:stop],
            right[split:],
            beta=-self.colour_scale,
            alpha=-self.position_scale,
        )
        return exponent.clamp_min_(-EXPONENT_FLOOR).exp_()


def _colour_order_key(colours: torch.Tensor) -> torch.Tensor:
    """Z-order (Morton) index (N,) of colours (N, 3) in 0..255: nearby keys, nearby colours."""
    key = torch.zeros(len(colours), dtype=torch.int64, device=colours.device)
    for bit in range(COLOUR_BITS):
        for channel in range(CHANNELS):
            key |= ((colours[:, channel] >> bit) & 1) << (CHANNELS * bit + channel)
    return key


def _centred_positions(height: int, width: int, device: torch.device) -> torch.Tensor:
    """Integer (x, y) (H * W, 2) of each pixel in row-major order, centred on the image."""
    rows = torch.arange(height, device=device) - (height - 1) // 2
    cols = torch.arange(width, device=device) - (width - 1) // 2
    y, x = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack((x, y), dim=-1).reshape(-1, 2)


def _squared_distance_factors(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer factors (N, D + 4) with left_i . right_j = |v_i - v_j|^2 for v (N, D).

    |v|^2 is split as high * LIMB + low so every factor stays below LIMB in significant bits.
    """
    squared = (v * v).sum(1)  # (N,)
    high, low = squared - squared % LIMB, squared % LIMB
    ones = torch.ones_like(squared)
    left = torch.cat((torch.stack((high, low, ones, ones), dim=1), v), dim=1)
    right = torch.cat((torch.stack((ones, ones, high, low), dim=1), -2 * v), dim=1)
    return left, right


def _colour_boxes(colours: torch.Tensor, run: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel minimum and maximum (R, 3) of each run of `run` pixels of colours (N, 3)."""
    index = (torch.arange(len(colours), device=colours.device) // run)[:, None].expand(-1, 3)
    runs = (len(colours) + run - 1) // run
    low = colours.new_full((runs, CHANNELS), 2**COLOUR_BITS)
    high = colours.new_full((runs, CHANNELS), -1)
    return (
        low.scatter_reduce(0, index, colours, reduce="amin"),
        high.scatter_reduce(0, index, colours, reduce="amax"),
    )


def _axis_kernel(length: int, sxy: float, like: torch.Tensor) -> torch.Tensor:
    """exp(-(i - j)^2 / (2 sxy^2)) for pixel indices i, j along one axis: (length, length)."""
    steps = torch.arange(length, dtype=like.dtype, device=like.device)
    exponent = -0.5 * ((steps[:, None] - steps[None, :]) / sxy) ** 2
    return exponent.clamp_min_(-EXPONENT_FLOOR).exp_()


def _check_inputs(image: torch.Tensor, probs: torch.Tensor, chunk: int) -> None:
    """Reject inputs dense_crf cannot handle, saying what was expected."""
    if not isinstance(image, torch.Tensor) or not isinstance(probs, torch.Tensor):
        raise ValueError(
            f"image and probs must be torch tensors, got {type(image).__name__} and "
            f"{type(probs).__name__}"
        )
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[2] != CHANNELS:
        raise ValueError(
            f"image must be RGB uint8 (H, W, 3), got {image.dtype} {tuple(image.shape)}"
        )
    if probs.dtype not in FLOAT_DTYPES or probs.ndim != 3:
        raise ValueError(
            f"probs must be float32 or float64 (C, H, W), got {probs.dtype} {tuple(probs.shape)}"
        )
    if probs.shape[1:] != image.shape[:2] or 0 in probs.shape:
        raise ValueError(
            f"probs (C, H, W) must be non-empty and match image (H, W, 3), got "
            f"{tuple(probs.shape)} and {tuple(image.shape)}"
        )
    if max(image.shape[:2]) > MAX_SIDE:
        raise ValueError(f"image sides must be <= {MAX_SIDE}, got {tuple(image.shape[:2])}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be an int >= 1, got {chunk!r}")
