"""The embedded OpenMoji dataset: determinism, exact masks, VOC conventions."""

from dataclasses import replace

import numpy as np
import pytest

from mcis_core.common.layout import IGNORE_INDEX
from mcis_core.dataset.embedded import CLASS_GLYPHS, DISTRACTOR_GLYPHS, _glyph, fine_mask, generate
from mcis_core.dataset.voc import VOC_CLASSES, mask_classes
from tests.params import section

EMBEDDED = section("data").embedded
SMALL = replace(EMBEDDED, train_images=3, aug_images=3, val_images=2, image_size=(60, 80))


def test_every_class_has_artwork_and_every_glyph_renders() -> None:
    assert set(CLASS_GLYPHS) == set(VOC_CLASSES)
    for text in [g for glyphs in CLASS_GLYPHS.values() for g in glyphs] + list(DISTRACTOR_GLYPHS):
        glyph = _glyph(text)
        alpha = np.asarray(glyph.getchannel("A"))
        assert glyph.mode == "RGBA" and (alpha > 0).mean() > 0.2, text
        rgb = np.asarray(glyph.convert("RGB"))[alpha > 128]
        assert rgb.std() > 10, f"{text!r} rendered without colour"


def test_generation_is_deterministic_and_seed_dependent() -> None:
    first, second = list(generate(SMALL, seed=3)), list(generate(SMALL, seed=3))
    other = list(generate(SMALL, seed=4))
    for a, b in zip(first, second, strict=True):
        assert (
            a.name == b.name and np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
        )
    assert any(not np.array_equal(a.image, c.image) for a, c in zip(first, other, strict=True))


def test_worker_processes_draw_the_same_samples_in_order() -> None:
    alone, shared = list(generate(SMALL, seed=3)), list(generate(SMALL, seed=3, workers=2))
    assert [s.name for s in shared] == [s.name for s in alone]
    for a, b in zip(alone, shared, strict=True):
        assert a.split == b.split and np.array_equal(a.image, b.image), a.name
        assert np.array_equal(a.mask, b.mask), a.name


def test_samples_follow_size_split_and_label_rules() -> None:
    samples = list(generate(SMALL, seed=0))
    assert [s.split for s in samples] == ["train"] * 3 + ["aug"] * 3 + ["val"] * 2
    for s in samples:
        h, w = s.mask.shape
        assert 60 <= h <= 80 and 60 <= w <= 80 and s.image.shape == (h, w, 3)
        classes = mask_classes(s.mask, len(VOC_CLASSES))
        assert 1 <= len(classes) <= SMALL.max_classes
        assert set(np.unique(s.mask)) <= {0, *(c + 1 for c in classes)}


def test_object_pixels_differ_from_a_redrawn_background() -> None:
    # the masks are exact: where the mask says object, the image shows artwork, so
    # object and background colour statistics differ clearly
    s = next(generate(replace(EMBEDDED, train_images=1, aug_images=0, val_images=0), seed=1))
    fg = s.image[s.mask > 0].astype(float)
    bg = s.image[s.mask == 0].astype(float)
    assert fg.size and bg.size
    assert np.abs(fg.mean(0) - bg.mean(0)).max() > 5 or abs(fg.std() - bg.std()) > 5


def test_fine_mask_draws_void_band_on_label_edges() -> None:
    mask = np.zeros((5, 6), np.uint8)
    mask[1:4, 2:5] = 7
    expected = np.array([
        [0, 255, 255, 255, 255, 255],
        [0, 255, 255, 255, 255, 255],
        [0, 255, 255, 7, 255, 255],
        [0, 255, 255, 255, 255, 255],
        [0, 255, 255, 255, 255, 255],
    ], np.uint8)  # fmt: skip
    np.testing.assert_array_equal(fine_mask(mask), expected)
    assert fine_mask(np.full((4, 4), 3, np.uint8)).max() == 3


@pytest.mark.parametrize("n", [1, 2])
def test_max_classes_bound(n: int) -> None:
    params = replace(
        EMBEDDED, train_images=10, aug_images=0, val_images=0, max_classes=n, image_size=(60, 70)
    )
    assert all(len(mask_classes(s.mask, len(VOC_CLASSES))) <= n for s in generate(params, seed=0))
    assert IGNORE_INDEX not in {int(v) for s in generate(params, seed=0) for v in np.unique(s.mask)}
