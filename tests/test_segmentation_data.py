"""Scale, mirror, crop and padding of the segmentation training data."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from mcis_core.common.errors import DatasetError
from mcis_core.common.io import read_gray, read_rgb
from mcis_core.common.layout import IGNORE_INDEX, JPEG_DIR, image_path, save_mask
from mcis_core.common.paths import label_path
from mcis_core.models.inputs import imagenet_normalize
from mcis_core.segmentation.data import SegmentationTrainSet

LABEL_VALUES = (0, 3, 15, IGNORE_INDEX)


@pytest.fixture(scope="module")
def voc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three images with labels in four values; 'square' is 24x24, the others 30x40."""
    root = tmp_path_factory.mktemp("voc")
    (root / JPEG_DIR).mkdir()
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for name, (height, width) in (("a", (30, 40)), ("b", (30, 40)), ("square", (24, 24))):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / JPEG_DIR / f"{name}.jpg", quality=95)
        label = rng.choice(np.array(LABEL_VALUES, dtype=np.uint8), (height, width))
        save_mask(root / "labels" / f"{name}.png", label)
    return root


def dataset(voc: Path, names: list[str], crop: int, scales=(0.7, 1.3), seed=0):
    return SegmentationTrainSet(voc, names, voc / "labels", crop, scales, seed=seed)


def test_shapes_and_dtypes(voc: Path) -> None:
    item = dataset(voc, ["a", "b"], crop=16)[1]
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32
    assert item["label"].shape == (16, 16) and item["label"].dtype == torch.int64


def test_items_are_a_function_of_seed_epoch_and_index(voc: Path) -> None:
    first, other = dataset(voc, ["a", "b"], crop=16), dataset(voc, ["a", "b"], crop=16)
    item = first[1]
    assert all(torch.equal(item[k], other[1][k]) for k in item)
    first.set_epoch(1)
    assert not torch.equal(item["image"], first[1]["image"])
    other.set_epoch(1)
    assert all(torch.equal(first[1][k], other[1][k]) for k in item)
    assert not torch.equal(item["image"], dataset(voc, ["a", "b"], crop=16, seed=1)[1]["image"])


def test_small_images_are_padded_with_the_mean_and_ignore(voc: Path) -> None:
    data = dataset(voc, ["a"] * 4, crop=32, scales=(0.5, 0.5))  # 30x40 -> 15x20
    for index in range(len(data)):
        image, label = data[index]["image"], data[index]["label"]
        assert torch.all(label[15:, :] == IGNORE_INDEX) and torch.all(label[:, 20:] == IGNORE_INDEX)
        assert torch.all(image[:, 15:, :] == 0) and torch.all(image[:, :, 20:] == 0)
        assert torch.any(image[:, :15, :20] != 0)


def test_mirrored_item_is_the_mirror_of_the_plain_one(voc: Path) -> None:
    # scale 1 and a crop the size of the image: mirroring is the only random change
    data = dataset(voc, ["square"] * 12, crop=24, scales=(1.0, 1.0))
    image = imagenet_normalize(TF.to_tensor(np.array(read_rgb(image_path(voc, "square")))))
    label = torch.from_numpy(read_gray(label_path(voc / "labels", "square")).astype(np.int64))
    mirrored = []
    for index in range(len(data)):
        item = data[index]
        flipped = not torch.allclose(item["image"], image)
        expected_image, expected_label = (
            (image.flip(-1), label.flip(-1)) if flipped else (image, label)
        )
        assert torch.allclose(item["image"], expected_image)
        assert torch.equal(item["label"], expected_label)
        mirrored.append(flipped)
    assert any(mirrored) and not all(mirrored)


def test_nearest_resize_adds_no_label_values(voc: Path) -> None:
    data = dataset(voc, ["a", "b"] * 5, crop=24, scales=(0.6, 1.4))
    seen = set()
    for index in range(len(data)):
        seen |= set(torch.unique(data[index]["label"]).tolist())
    assert seen <= set(LABEL_VALUES) and len(seen) > 2


def test_image_and_label_sizes_must_agree(voc: Path, tmp_path: Path) -> None:
    save_mask(tmp_path / "a.png", np.zeros((5, 5), dtype=np.uint8))
    data = SegmentationTrainSet(voc, ["a"], tmp_path, 8, (0.7, 1.3), seed=0)
    with pytest.raises(DatasetError, match="differ"):
        data[0]
