"""VOC conventions, SBD conversion and the layout builder."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from mcis_core.common.errors import DatasetError
from mcis_core.common.io import read_gray, read_names, write_names
from mcis_core.common.layout import read_class_labels, read_classes, save_mask, voc_palette
from mcis_core.dataset.sbd import convert_sbd, read_sbd_mask
from mcis_core.dataset.voc import VOC_CLASSES, build_layout, mask_classes, train_aug_names


def test_palette_matches_the_published_voc_colours() -> None:
    palette = np.array(voc_palette()).reshape(256, 3)
    assert palette[0].tolist() == [0, 0, 0]
    assert palette[1].tolist() == [128, 0, 0]  # aeroplane
    assert palette[15].tolist() == [192, 128, 128]  # person
    assert palette[20].tolist() == [0, 64, 128]  # tvmonitor
    assert palette[255].tolist() == [224, 224, 192]  # void


def test_mask_round_trip_and_classes(tmp_path: Path) -> None:
    mask = np.array([[0, 1, 255], [15, 15, 20]], np.uint8)
    save_mask(tmp_path / "m.png", mask)
    with Image.open(tmp_path / "m.png") as img:
        assert img.mode == "P"
    np.testing.assert_array_equal(read_gray(tmp_path / "m.png"), mask)
    assert mask_classes(mask, len(VOC_CLASSES)) == [0, 14, 19]


def test_train_aug_is_aug_plus_train_minus_val() -> None:
    assert train_aug_names(["a", "b", "v1"], ["t", "b"], ["v1", "v2"]) == ["a", "b", "t"]


def _fake_voc(root: Path, train: list[str], val: list[str], extra_jpegs: list[str]) -> Path:
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    for i, name in enumerate(train + val + extra_jpegs):
        Image.new("RGB", (8, 6), (i, 0, 0)).save(voc / "JPEGImages" / f"{name}.jpg")
    for i, name in enumerate(train + val):
        mask = np.zeros((6, 8), np.uint8)
        mask[1:3, 1:3] = i + 1
        mask[0, 0] = 255
        save_mask(voc / "SegmentationClass" / f"{name}.png", mask)
    write_names(voc / "ImageSets/Segmentation/train.txt", train)
    write_names(voc / "ImageSets/Segmentation/val.txt", val)
    return voc


def _fake_aug(root: Path, names: list[str], label: int) -> Path:
    root.mkdir(parents=True)
    for name in names:
        save_mask(root / f"{name}.png", np.full((6, 8), label, np.uint8))
    return root


def test_build_layout(tmp_path: Path) -> None:
    voc = _fake_voc(tmp_path / "x", ["t1", "t2"], ["v1"], ["s1", "s2"])
    aug = _fake_aug(tmp_path / "aug", ["s1", "s2", "t1", "v1"], label=5)
    out = tmp_path / "out"
    out.mkdir()
    counts = build_layout(voc, aug, out)
    assert counts == {"train": 2, "val": 1, "train_aug": 4}
    assert read_names(out / "ImageSets/Segmentation/train_aug.txt") == ["s1", "s2", "t1", "t2"]
    assert read_classes(out) == VOC_CLASSES
    labels = read_class_labels(out)
    # fine masks win over the aug ones for VOC images; converted ones keep their label
    assert labels == {"s1": [4], "s2": [4], "t1": [0], "t2": [1], "v1": [2]}
    assert read_gray(out / "SegmentationClassAug/t1.png")[0, 0] == 255
    assert sorted(p.stem for p in (out / "JPEGImages").glob("*.jpg")) == [
        "s1",
        "s2",
        "t1",
        "t2",
        "v1",
    ]


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        (
            "JPEGImages/t2.jpg",
            r"1 image\(s\) named in the image lists are missing, e\.g\. .*t2\.jpg",
        ),
        ("SegmentationClass/v1.png", r"1 mask\(s\) .* missing, e\.g\. .*v1\.png"),
    ],
)
def test_build_layout_names_missing_files(tmp_path: Path, remove: str, message: str) -> None:
    voc = _fake_voc(tmp_path / "x", ["t1", "t2"], ["v1"], [])
    (voc / remove).unlink()
    with pytest.raises(DatasetError, match=message):
        build_layout(voc, _fake_aug(tmp_path / "aug", [], 1), tmp_path / "out")


def test_sbd_mat_conversion(tmp_path: Path) -> None:
    dataset = tmp_path / "benchmark_RELEASE" / "dataset"
    (dataset / "cls").mkdir(parents=True)
    seg = np.array([[0, 3, 3], [0, 20, 0]], np.uint8)
    gt = {"Segmentation": seg, "Boundaries": np.zeros((1, 20)), "CategoriesPresent": [3, 20]}
    scipy.io.savemat(dataset / "cls" / "2008_000001.mat", {"GTcls": gt})
    write_names(dataset / "train.txt", ["2008_000001"])
    write_names(dataset / "val.txt", [])
    np.testing.assert_array_equal(read_sbd_mask(dataset / "cls" / "2008_000001.mat"), seg)
    assert convert_sbd(dataset, tmp_path / "png") == ["2008_000001"]
    np.testing.assert_array_equal(read_gray(tmp_path / "png" / "2008_000001.png"), seg)
    write_names(dataset / "val.txt", ["2008_000002"])
    with pytest.raises(DatasetError, match=r"2008_000002\.mat"):
        convert_sbd(dataset, tmp_path / "png2")
