"""Unsupervised salient object detection: the MB+ method, written in torch.

Reference: J. Zhang, S. Sclaroff, Z. Lin, X. Shen, B. Price, R. Mech, "Minimum Barrier Salient
Object Detection at 80 FPS", ICCV 2015. MB+ is the paper's full method:

1. resize so the longer side is at most `max_side` (the paper's 300) and convert to CIE Lab;
2. minimum barrier distance (MBD) of every pixel to the image border, per Lab channel,
   approximated by FastMBD-style raster / anti-raster scans, summed over the channels;
3. the image-boundary contrast map "B": Mahalanobis distance of each pixel's colour to the
   top, bottom, left and right border regions, combined as sum minus maximum so that one
   border touched by the object is discounted; added to the MBD map;
4. post-processing: morphological smoothing, centre bias, sigmoid contrast enhancement;
5. bilinear resize back to the input size, as uint8 (255 = salient).

Approximations and choices not fixed by the paper:
- Each scan pass is separable: rows top-down (each row vectorised, upper neighbour), then
  columns left-right (left neighbour); the backward pass mirrors it. FastMBD visits both
  neighbours per pixel in one raster pass; the separable order is a vectorisable variant.
  Like FastMBD it is an upper bound of the exact distance.
- Smoothing is opening by reconstruction then closing by reconstruction. Erosion and
  dilation use a square window (a separable running max, as a max-pool would) of width
  alpha * sqrt(mean map value), alpha = 50 at the paper's 300-px scale and scaled with the
  working image size. The reconstruction itself is exact (8-connected): raster sweeps, each
  row or column dilated from its three neighbours on the previous line, until nothing changes.
- Centre bias: a separable Gaussian centred in the image, sigma = CENTRE_SIGMA_FRACTION of
  each side. Border-region covariances get a ridge of COVARIANCE_RIDGE Lab units^2 so flat
  borders stay invertible. The logistic output is rescaled so map values 0 and 1 stay 0 and 1.

Batching: images are sorted by working size and grouped into chunks. The barrier transform and
the reconstructions run on a padded canvas whose padding can never win, using only elementwise
ops that give the same bits at any position (max, min, add, sign, 0/1 select); everything with
reductions or transcendental functions runs per image on tensors of the same shape and layout as
for a lone image. A batch therefore gives byte-identical output to one-at-a-time calls.

Speed: the scans are thousands of small tensor ops, bound by per-op overhead, so on the CPU one
intra-op thread is as fast as several and far faster when other processes compete for the
cores (torch.set_num_threads(1) in the caller); batching amortises the overhead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mcis_core.common.device import default_device

# sRGB -> CIE XYZ (D65) -> CIE Lab, the constants skimage.color.rgb2lab uses
SRGB_LINEAR_LIMIT = 0.04045
SRGB_LINEAR_SLOPE = 12.92
SRGB_OFFSET = 0.055
SRGB_GAMMA = 2.4
XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
D65_WHITE = (0.95047, 1.0, 1.08883)
LAB_CUBE_LIMIT = 0.008856
LAB_LINEAR_SLOPE = 7.787
LAB_LINEAR_OFFSET = 16.0 / 116.0

REFERENCE_SIDE = 300  # image side at which the paper's pixel-valued parameters apply
SMOOTHING_ALPHA = 50.0  # smoothing window width = alpha * sqrt(mean saliency) at 300 px
MAX_RECONSTRUCTION_SWEEPS = 32  # a safety net: natural images converge in about 6
COVARIANCE_RIDGE = 1.0  # Lab units^2 added to border covariances
CENTRE_SIGMA_FRACTION = 0.5  # centre-bias Gaussian sigma relative to each image side
CONTRAST_GAIN = 10.0  # the paper's b
CONTRAST_MIDPOINT = 0.5
MAX_CHUNK_PIXELS = 1 << 21  # padded canvas pixels per chunk, bounds memory use
UINT8_MAX = 255

Step = Callable[[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]], None]
LineSplitter = Callable[[int], list[tuple[torch.Tensor, ...]]]  # scan dim -> per-line views
ROW_DIM, COLUMN_DIM = 0, 1  # of the scan layout (H, W, ...)
UNREACHED = 1e30  # finite "infinity" of the barrier scan, so arithmetic on it never makes NaN


def compute_saliency(
    images: Sequence[np.ndarray],
    *,
    max_side: int,
    sweeps: int,
    boundary_width: int,
    device: torch.device | None = None,
) -> list[np.ndarray]:
    """Saliency maps (H, W) uint8 for RGB uint8 images (H, W, 3) of any sizes."""
    _check_arguments(images, max_side, sweeps, boundary_width)
    device = device or default_device()
    shapes = [working_shape(image.shape[:2], max_side) for image in images]
    maps: dict[int, np.ndarray] = {}
    for chunk in _chunks(shapes):
        labs = [_prepare_lab(images[i], shapes[i], device) for i in chunk]
        for i, saliency in zip(chunk, _saliency_chunk(labs, sweeps, boundary_width), strict=True):
            maps[i] = _to_uint8(saliency, images[i].shape[:2])
    return [maps[i] for i in range(len(images))]


def iter_saliency(
    images: Iterable[np.ndarray], *, batch_size: int = 16, **kwargs
) -> Iterator[np.ndarray]:
    """Stream saliency maps in input order, computing `batch_size` images at a time."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch: list[np.ndarray] = []
    for image in images:
        batch.append(image)
        if len(batch) == batch_size:
            yield from compute_saliency(batch, **kwargs)
            batch = []
    if batch:
        yield from compute_saliency(batch, **kwargs)


def working_shape(shape: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(h, w) after shrinking so the longer side is at most `max_side`; never enlarges."""
    height, width = shape
    longer = max(height, width)
    if longer <= max_side:
        return height, width
    scale = max_side / longer
    return max(1, round(height * scale)), max(1, round(width * scale))


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """CIE Lab (D65, 2 degree observer) of sRGB in [0, 1]: (..., 3, H, W) -> (..., 3, H, W)."""
    linear = torch.where(
        rgb > SRGB_LINEAR_LIMIT,
        ((rgb + SRGB_OFFSET) / (1 + SRGB_OFFSET)) ** SRGB_GAMMA,
        rgb / SRGB_LINEAR_SLOPE,
    )
    red, green, blue = linear.unbind(-3)
    # Weighted sums instead of a matmul keep every pixel's arithmetic independent of the batch
    x, y, z = (
        (row[0] * red + row[1] * green + row[2] * blue) / white
        for row, white in zip(XYZ_FROM_RGB, D65_WHITE, strict=True)
    )
    fx, fy, fz = (_lab_compand(t) for t in (x, y, z))
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def minimum_barrier_distance(
    values: torch.Tensor,
    sizes: Sequence[tuple[int, int]] | None = None,
    *,
    sweeps: int,
) -> torch.Tensor:
    """Raster-scan minimum barrier distance to the image border, per channel of (B, C, H, W).

    `sizes` gives each image's (h, w) when images are padded top-left onto the canvas; the
    result is +inf outside them. Values must be finite and far below UNREACHED in magnitude.
    """
    batch, channels, height, width = values.shape
    sizes = sizes or [(height, width)] * batch
    barrier = _barrier_distance(values.permute(2, 3, 0, 1), sizes, sweeps)  # (H, W, B, C)
    valid, _ = _extent_masks(sizes, height, width, values.device)  # (H, W, B)
    return barrier.masked_fill(~valid[..., None], math.inf).permute(2, 3, 0, 1)


def boundary_contrast(lab: torch.Tensor, width: int) -> torch.Tensor:
    """MB+ image-boundary contrast map (h, w) in [0, 1] of a Lab image (3, h, w)."""
    _, height, image_width = lab.shape
    rows, cols = min(width, height), min(width, image_width)
    regions = (lab[:, :rows], lab[:, height - rows :], lab[:, :, :cols], lab[:, :, -cols:])
    pixels = lab.reshape(3, -1)  # (3, N)
    distances = torch.stack([_mahalanobis(pixels, region.reshape(3, -1)) for region in regions])
    maps = _minmax_scale(distances.reshape(len(regions), height, image_width))  # (4, h, w)
    return _minmax_scale(maps.sum(0) - maps.amax(0))


def _check_arguments(
    images: Sequence[np.ndarray], max_side: int, sweeps: int, boundary_width: int
) -> None:
    """Reject settings and images the method cannot handle."""
    if max_side < 1 or sweeps < 1 or boundary_width < 1:
        raise ValueError(
            f"max_side, sweeps and boundary_width must be >= 1, got {max_side}, {sweeps}, "
            f"{boundary_width}"
        )
    for index, image in enumerate(images):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
            raise ValueError(
                f"image {index}: expected non-empty RGB uint8 (H, W, 3), got {image.dtype} "
                f"{image.shape}"
            )


def _chunks(shapes: Sequence[tuple[int, int]]) -> Iterator[list[int]]:
    """Indices grouped by similar working shape, each group's padded canvas within budget."""
    chunk: list[int] = []
    height = width = 0
    for index in sorted(range(len(shapes)), key=lambda i: shapes[i]):
        grown_h, grown_w = max(height, shapes[index][0]), max(width, shapes[index][1])
        if chunk and (len(chunk) + 1) * grown_h * grown_w > MAX_CHUNK_PIXELS:
            yield chunk
            chunk, grown_h, grown_w = [], *shapes[index]
        chunk.append(index)
        height, width = grown_h, grown_w
    if chunk:
        yield chunk


def _prepare_lab(image: np.ndarray, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Lab image (3, h, w) at the working size."""
    rgb = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    rgb = rgb.permute(2, 0, 1).float() / UINT8_MAX  # (3, H, W)
    if tuple(rgb.shape[1:]) != shape:
        rgb = F.interpolate(
            rgb[None], size=shape, mode="bilinear", align_corners=False, antialias=True
        )[0].clamp(0.0, 1.0)
    return rgb_to_lab(rgb)


def _lab_compand(t: torch.Tensor) -> torch.Tensor:
    """The CIE Lab nonlinearity: cube root above a small limit, linear below."""
    return torch.where(
        t > LAB_CUBE_LIMIT,
        t.clamp_min(LAB_CUBE_LIMIT) ** (1.0 / 3.0),
        LAB_LINEAR_SLOPE * t + LAB_LINEAR_OFFSET,
    )


def _saliency_chunk(
    labs: Sequence[torch.Tensor], sweeps: int, boundary_width: int
) -> list[torch.Tensor]:
    """Saliency maps (h, w) in [0, 1] for Lab images (3, h, w) at their working sizes."""
    sizes = [tuple(lab.shape[1:]) for lab in labs]
    canvas = _scan_canvas([lab.permute(1, 2, 0) for lab in labs], 0.0)  # (H, W, B, 3)
    barriers = _scan_crops(_barrier_distance(canvas, sizes, sweeps), sizes)  # (h, w, 3) each
    raw = [
        _minmax_scale(_minmax_scale(barrier.sum(-1)) + boundary_contrast(lab, boundary_width))
        for barrier, lab in zip(barriers, labs, strict=True)
    ]
    return [_enhance(saliency) for saliency in _smooth(raw)]


def _mahalanobis(pixels: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Distance (N,) of pixels (3, N) to the colour distribution of a region (3, M)."""
    mean = region.mean(1, keepdim=True)  # (3, 1)
    centred = region - mean
    ridge = COVARIANCE_RIDGE * torch.eye(3, dtype=region.dtype, device=region.device)
    precision = torch.linalg.inv(centred @ centred.T / region.shape[1] + ridge)  # (3, 3)
    offset = pixels - mean
    return (offset * (precision @ offset)).sum(0).clamp_min(0.0).sqrt()


def _minmax_scale(maps: torch.Tensor) -> torch.Tensor:
    """Min-max scale each (h, w) map of (..., h, w) to [0, 1]; constant maps become 0."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    span = maps.amax(dim=(-2, -1), keepdim=True) - low
    return (maps - low) / torch.where(span > 0, span, 1.0)


def _smooth(maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Opening by reconstruction followed by closing by reconstruction, per map (h, w)."""
    radii = [_smoothing_radius(saliency) for saliency in maps]
    eroded = [-_dilate(-m, r) for m, r in zip(maps, radii, strict=True)]
    opened = _reconstruct_by_dilation(eroded, maps)
    dilated = [_dilate(m, r) for m, r in zip(opened, radii, strict=True)]
    # Closing by reconstruction is the dual of opening: reconstruct the negated maps
    negated = _reconstruct_by_dilation([-m for m in dilated], [-m for m in opened])
    return [-m for m in negated]


def _smoothing_radius(saliency: torch.Tensor) -> int:
    """Half-width of the smoothing window: alpha * sqrt(mean) in 300-px units, scaled."""
    scale = max(saliency.shape) / REFERENCE_SIDE
    width = SMOOTHING_ALPHA * scale * math.sqrt(saliency.mean().item())
    return round(width / 2)


def _dilate(saliency: torch.Tensor, radius: int) -> torch.Tensor:
    """Grayscale dilation of (h, w) by a (2r+1)-square window, ignoring outside the image."""
    return _window_max(_window_max(saliency, radius).T, radius).T


def _window_max(rows: torch.Tensor, radius: int) -> torch.Tensor:
    """Max over [j - r, j + r] along the last dim of (h, w); outside the map counts as -inf."""
    width, size = rows.shape[-1], 2 * radius + 1
    window = F.pad(rows, (radius, radius), value=-math.inf)  # (h, w + 2r)
    # Doubling: after each step entry j holds the max over [j, j + 2 * span), log(size) ops
    span = 1
    while 2 * span <= size:
        window = torch.maximum(window[..., :-span], window[..., span:])
        span *= 2
    # Two overlapping windows of length span cover [j, j + size)
    return torch.maximum(window[..., :width], window[..., size - span : size - span + width])


def _reconstruct_by_dilation(
    markers: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """Grayscale reconstruction by dilation of each marker (h, w) under its mask (h, w)."""
    sizes = [tuple(mask.shape) for mask in masks]
    # -inf padding and margin never raise a neighbour, so each image reconstructs as if alone
    ceiling = _scan_canvas(masks, -math.inf, margin=1)  # (H + 2, W + 2, B)
    level = _scan_canvas(markers, -math.inf, margin=1)
    for _ in range(MAX_RECONSTRUCTION_SWEEPS):
        previous = level.clone()
        _raster_sweep(_neighbourhood_lines(ceiling, level), _reconstruction_step)
        if torch.equal(level, previous):
            break
    return _scan_crops(level, sizes, margin=1)


def _enhance(saliency: torch.Tensor) -> torch.Tensor:
    """Centre bias, then the sigmoid contrast enhancement, of a map (h, w) in [0, 1]."""
    height, width = saliency.shape
    biased = _minmax_scale(saliency * _centre_gaussian(height, width, saliency))
    low, high = (1.0 / (1.0 + math.exp(-CONTRAST_GAIN * (v - CONTRAST_MIDPOINT))) for v in (0, 1))
    return (torch.sigmoid(CONTRAST_GAIN * (biased - CONTRAST_MIDPOINT)) - low) / (high - low)


def _centre_gaussian(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian (h, w) peaking at the image centre."""

    def profile(length: int) -> torch.Tensor:
        offsets = torch.arange(length, dtype=like.dtype, device=like.device) - (length - 1) / 2
        return torch.exp(-0.5 * (offsets / (CENTRE_SIGMA_FRACTION * length)) ** 2)

    return profile(height)[:, None] * profile(width)[None, :]


def _to_uint8(saliency: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a [0, 1] map to the input size, as uint8 on the CPU."""
    if tuple(saliency.shape) != tuple(shape):
        saliency = F.interpolate(
            saliency[None, None], size=tuple(shape), mode="bilinear", align_corners=False
        )[0, 0]
    scaled = torch.round(saliency.clamp(0.0, 1.0) * UINT8_MAX)
    return scaled.to(torch.uint8).cpu().numpy()


def _barrier_distance(
    canvas: torch.Tensor, sizes: Sequence[tuple[int, int]], sweeps: int
) -> torch.Tensor:
    """Barrier distance of every channel of a scan-layout canvas (H, W, B, C) to its border."""
    height, width, batch, channels = canvas.shape
    valid, seeds = (
        mask[..., None].expand(-1, -1, -1, channels).reshape(height, width, 1, batch * channels)
        for mask in _extent_masks(sizes, height, width, canvas.device)
    )  # (H, W, 1, B * C)
    values = canvas.reshape(height, width, 1, batch * channels)
    # A path interval is packed as (upper, -lower) so one maximum extends both bounds.
    # Padding and unreached pixels hold (UNREACHED, UNREACHED): a barrier no real path exceeds
    guide = torch.cat((values, -values), dim=2).masked_fill(~valid, UNREACHED)  # (H, W, 2, B * C)
    bounds = guide.masked_fill(~seeds, UNREACHED)
    for _ in range(sweeps):
        _raster_sweep(_barrier_lines(guide, bounds), _barrier_step)
    return (bounds[:, :, 0] + bounds[:, :, 1]).reshape(height, width, batch, channels)


def _extent_masks(
    sizes: Sequence[tuple[int, int]], height: int, width: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks (H, W, B) of the pixels inside each image and of each image's border pixels."""
    rows = torch.arange(height, device=device).view(height, 1, 1)
    cols = torch.arange(width, device=device).view(1, width, 1)
    heights = torch.tensor([h for h, _ in sizes], device=device).view(1, 1, -1)
    widths = torch.tensor([w for _, w in sizes], device=device).view(1, 1, -1)
    valid = (rows < heights) & (cols < widths)
    edge = (rows == 0) | (cols == 0) | (rows == heights - 1) | (cols == widths - 1)
    return valid, valid & edge


def _scan_canvas(maps: Sequence[torch.Tensor], fill: float, margin: int = 0) -> torch.Tensor:
    """Place (h, w, ...) maps on a `fill` canvas in scan layout (H, W, B, ...).

    Maps start at (margin, margin); the canvas extends `margin` beyond the largest map.
    """
    height = max(m.shape[0] for m in maps) + 2 * margin
    width = max(m.shape[1] for m in maps) + 2 * margin
    canvas = maps[0].new_full((height, width, len(maps), *maps[0].shape[2:]), fill)
    for index, m in enumerate(maps):
        canvas[margin : margin + m.shape[0], margin : margin + m.shape[1], index] = m
    return canvas


def _scan_crops(
    canvas: torch.Tensor, sizes: Sequence[tuple[int, int]], margin: int = 0
) -> list[torch.Tensor]:
    """Per-image (h, w, ...) crops of a canvas (H, W, B, ...), each freshly allocated."""
    # Fresh contiguous copies give later per-image ops the same memory layout as a lone image
    return [
        canvas[margin : margin + h, margin : margin + w, index].clone(
            memory_format=torch.contiguous_format
        )
        for index, (h, w) in enumerate(sizes)
    ]


def _raster_sweep(lines_along: LineSplitter, step: Step) -> None:
    """A forward (rows down, columns right) then backward (rows up, columns left) pass.

    Tensors are in scan layout (H, W, ...): a row is one contiguous block and a column a
    strided run of contiguous blocks, so neither direction needs a transposed copy.
    """
    for reverse in (False, True):
        for dim in (ROW_DIM, COLUMN_DIM):
            lines = lines_along(dim)
            offset = 1 if reverse else -1
            order = range(len(lines) - 2, -1, -1) if reverse else range(1, len(lines))
            for index in order:
                step(lines[index + offset], lines[index])


def _barrier_lines(guide: torch.Tensor, bounds: torch.Tensor) -> LineSplitter:
    """Scan lines of the barrier transform: (guide, bounds) per row or column."""
    return lambda dim: list(zip(guide.unbind(dim), bounds.unbind(dim), strict=True))


def _neighbourhood_lines(ceiling: torch.Tensor, level: torch.Tensor) -> LineSplitter:
    """Scan lines of the reconstruction: (ceiling, level, level shifted back, level shifted on).

    The maps carry a one-pixel margin, so the in-line shifts index the interior only.
    """

    def lines_along(dim: int) -> list[tuple[torch.Tensor, ...]]:
        across = COLUMN_DIM if dim == ROW_DIM else ROW_DIM
        inner = level.shape[across] - 2
        views = (
            ceiling.narrow(across, 1, inner),
            level.narrow(across, 1, inner),
            level.narrow(across, 0, inner),
            level.narrow(across, 2, inner),
        )
        return list(zip(*(view.unbind(dim) for view in views), strict=True))

    return lines_along


def _barrier_step(previous: tuple[torch.Tensor, ...], current: tuple[torch.Tensor, ...]) -> None:
    """Take the neighbour's path interval extended by this pixel when its barrier is smaller."""
    _, previous_bounds = previous
    guide, bounds = current  # (..., 2, N): upper bound and negated lower bound
    via = torch.maximum(previous_bounds, guide)
    gain = (bounds[..., 0, :] + bounds[..., 1, :]) - (via[..., 0, :] + via[..., 1, :])
    # lerp with 0/1 weights is an exact select, and unlike torch.where it is vectorised on CPU
    take = gain.sign_().clamp_(min=0.0).unsqueeze(-2)
    torch.lerp(bounds, via, take, out=bounds)


def _reconstruction_step(
    previous: tuple[torch.Tensor, ...], current: tuple[torch.Tensor, ...]
) -> None:
    """Geodesic dilation from the three 8-connected neighbours on the previous line."""
    _, previous_level, previous_before, previous_after = previous
    ceiling, level, _, _ = current
    reach = torch.maximum(torch.maximum(previous_before, previous_level), previous_after)
    torch.minimum(torch.maximum(level, reach), ceiling, out=level)
