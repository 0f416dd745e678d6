"""Pair sampling, views and batching of the classifier's training data."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from mcis_core.classifier.data import JITTER_STEPS, PairDataset, colour_jitter, label_vector
from mcis_core.common.io import read_names
from mcis_core.common.layout import LIST_DIR, read_class_labels
from mcis_core.dataset.voc import VOC_CLASSES
from mcis_core.models.inputs import anchor_views, imagenet_normalize, open_rgb, square, square_image
from mcis_core.training.batches import epoch_batches, shard


@pytest.fixture(scope="module")
def dataset(tiny_voc: Callable[..., Path]) -> PairDataset:
    voc = tiny_voc(6, 14, 2, (40, 56))
    names = read_names(voc / LIST_DIR / "train_aug.txt")
    return PairDataset(
        voc,
        names,
        read_class_labels(voc),
        len(VOC_CLASSES),
        32,  # input_size
        5,  # seed
        view_scales=(1.0, 0.75, 2.0),
        jitter=(0.3, 0.3, 0.3, 0.1),
    )


def test_partner_shares_a_class(dataset: PairDataset) -> None:
    for index in range(len(dataset)):
        for draw in range(10):
            partner = dataset.partner_of(index, np.random.default_rng([draw, index]))
            assert set(dataset.labels[index]) & set(dataset.labels[partner])


def test_items_are_a_function_of_seed_epoch_and_index(dataset: PairDataset) -> None:
    dataset.set_epoch(0)
    first, again = dataset[3], dataset[3]
    assert all(torch.equal(first[k], again[k]) for k in first)
    dataset.set_epoch(1)
    assert not torch.equal(first["anchor"], dataset[3]["anchor"])
    dataset.set_epoch(0)


def test_item_shapes_labels_and_views(dataset: PairDataset) -> None:
    item = dataset[0]
    assert item["anchor"].shape == item["partner"].shape == (3, 32, 32)
    assert [item[f"view{i}"].shape[-1] for i in range(3)] == [32, 24, 64]
    assert torch.equal(item["y_a"], label_vector(dataset.labels[0], len(VOC_CLASSES)))
    # views are not colour-jittered: the flip view is the mirrored plain anchor
    plain = square(open_rgb(dataset.root / "JPEGImages" / f"{dataset.names[0]}.jpg"), 32)
    assert torch.equal(item["view0"], imagenet_normalize(TF.hflip(plain)))
    assert not torch.equal(item["anchor"], imagenet_normalize(plain))


def stripes(side: int) -> Image.Image:
    """Vertical black and white stripes one pixel wide: detail only the full resolution has."""
    row = np.tile(np.array([0, 255], np.uint8), side // 2)
    return Image.fromarray(np.repeat(np.tile(row, (side, 1))[..., None], 3, axis=2))


def test_anchor_views_are_resized_from_the_original_resolution() -> None:
    original = stripes(64)
    views = anchor_views(original, square_image(original, 32), (1.0, 0.75, 2.0))
    assert [tuple(v.shape) for v in views] == [(3, 32, 32), (3, 24, 24), (3, 64, 64)]
    assert torch.equal(views[0], TF.hflip(square(original, 32)))
    assert torch.equal(views[1], square(original, 24))
    assert torch.equal(views[2], square(original, 64))
    # the 2x view keeps the stripes; upscaling the input-size image could not bring them back
    from_input = TF.resize(square(original, 32), [64, 64], antialias=True)
    assert views[2].std() > 0.45 and from_input.std() < 0.05


def test_jitter_order_is_drawn_per_image() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), np.uint8))
    strength = (0.3, 0.3, 0.3, 0.1)
    orders = set()
    for seed in range(40):
        rng = np.random.default_rng(seed)
        factors = [rng.uniform(1 - s, 1 + s) for s in strength[:3]] + [rng.uniform(-0.1, 0.1)]
        order = tuple(int(i) for i in rng.permutation(4))
        expected = image
        for step in order:
            expected = JITTER_STEPS[step](expected, factors[step])
        jittered = colour_jitter(image, strength, np.random.default_rng(seed))
        assert np.array_equal(np.asarray(jittered), np.asarray(expected))
        orders.add(order)
    assert len(orders) > 10  # of the 24 orders


def test_jitter_works_on_8_bit_images_as_the_original() -> None:
    """Pure red with its 8-bit hue moved by int(0.5 * 255) = 127 of 255 steps lands in the
    green-cyan sector at 6 * 127 / 255 = 2.988: (0, 255, 255 * 0.988 = 252), rounded on 8
    bits."""
    red = Image.new("RGB", (4, 4), (255, 0, 0))
    turned = np.asarray(colour_jitter(red, (0.0, 0.0, 0.0, 0.5), FixedDraws(0.5)))
    assert turned.dtype == np.uint8 and (turned == (0, 255, 252)).all()


class FixedDraws:
    """A stand-in generator: every uniform draw is `value`, the steps in their listed order."""

    def __init__(self, value: float) -> None:
        self.value = value

    def uniform(self, low: float, high: float) -> float:
        return min(max(self.value, low), high) if low < high else low

    def permutation(self, n: int) -> np.ndarray:
        return np.arange(n)


def test_the_anchor_may_be_its_own_partner(dataset: PairDataset) -> None:
    partners = {
        (index, dataset.partner_of(index, np.random.default_rng([seed, index])))
        for index in range(len(dataset))
        for seed in range(30)
    }
    assert any(index == partner for index, partner in partners)
    assert any(index != partner for index, partner in partners)


def test_epoch_batches_are_seeded_full_and_disjoint() -> None:
    batches = epoch_batches(23, 4, seed=1, epoch=0)
    assert len(batches) == 5 and all(len(b) == 4 for b in batches)
    flat = [i for b in batches for i in b]
    assert len(set(flat)) == 20 and set(flat) <= set(range(23))
    assert batches == epoch_batches(23, 4, seed=1, epoch=0)
    assert batches != epoch_batches(23, 4, seed=1, epoch=1)


def test_shards_partition_the_global_batch() -> None:
    batch = [7, 3, 9, 1]
    assert shard(batch, 0, 2) + shard(batch, 1, 2) == batch
    assert shard(batch, 0, 1) == batch
