"""Tests of the saliency sources: MB+ maps computed in worker processes, a local folder of
maps, an archive of maps (both checked by the same code), and the ground-truth foreground (an
analysis upper bound)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mcis_core.common.errors import ConfigError, DatasetError
from mcis_core.common.io import read_gray, read_rgb
from mcis_core.common.layout import TRAIN_AUG, aug_mask_path, image_path, read_split, save_mask
from mcis_core.common.params import RemoteFile, check_params_file
from mcis_core.saliency.maps import (
    compute_saliency_maps,
    copy_saliency_maps,
    fetch_saliency_maps,
    ground_truth_saliency_maps,
    mask_foreground,
)
from mcis_core.saliency.mbplus import compute_saliency
from mcis_core.sections import SECTIONS
from tests.params import section
from tests.test_faults import fails, ok, set_params
from tests.test_params import _params_with
from tests.tiny import write_tiny_project


@pytest.fixture
def voc(tiny_voc) -> Path:
    return tiny_voc(3, 3, 2, (40, 56))


def write_maps(folder: Path, voc: Path, names: list[str]) -> dict[str, bytes]:
    """One random grayscale map per name, the size of its image: {name: PNG bytes}."""
    rng = np.random.default_rng(0)
    written = {}
    for name in names:
        with Image.open(image_path(voc, name)) as img:
            width, height = img.size
        path = folder / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8), "L").save(path)
        written[name] = path.read_bytes()
    return written


def listing(folder: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted(folder.iterdir())}


# --- MB+ in worker processes -------------------------------------------------------------------


def test_worker_processes_write_the_maps_of_one_process(voc: Path, tmp_path: Path) -> None:
    names = read_split(voc, TRAIN_AUG)
    params = replace(section("saliency").compute, batch_size=2)  # several batches
    for workers in (1, 2):
        (tmp_path / str(workers)).mkdir()
        compute_saliency_maps(voc, names, tmp_path / str(workers), params, workers)
    assert listing(tmp_path / "2") == listing(tmp_path / "1")
    for name in names:  # each map is MB+ of its image alone
        alone = compute_saliency(
            [read_rgb(image_path(voc, name))],
            max_side=params.max_side,
            sweeps=params.sweeps,
            boundary_width=params.boundary_width,
        )[0]
        assert np.array_equal(read_gray(tmp_path / "2" / f"{name}.png"), alone), name


# --- a folder of maps ---------------------------------------------------------------------------


def test_folder_maps_are_copied_unchanged(voc: Path, tmp_path: Path) -> None:
    names = read_split(voc, TRAIN_AUG)
    maps = write_maps(tmp_path / "maps", voc, names)
    (tmp_path / "maps/notes.txt").write_text("not a map")  # other files are left alone
    out = tmp_path / "out"
    out.mkdir()
    copy_saliency_maps(tmp_path / "maps", voc, names, out)
    assert listing(out) == maps
    assert {n: b for n, b in listing(tmp_path / "maps").items() if n != "notes"} == maps


def test_folder_maps_in_subfolders_and_colour_are_normalised(voc: Path, tmp_path: Path) -> None:
    names = read_split(voc, TRAIN_AUG)
    write_maps(tmp_path / "maps/nested", voc, names)
    rgb = tmp_path / "maps/nested" / f"{names[0]}.png"
    gray = read_gray(rgb)
    Image.fromarray(np.repeat(gray[..., None], 3, axis=-1), "RGB").save(rgb)
    out = tmp_path / "out"
    out.mkdir()
    copy_saliency_maps(tmp_path / "maps", voc, names, out)
    with Image.open(out / f"{names[0]}.png") as adopted:
        assert adopted.mode == "L"
        np.testing.assert_array_equal(np.asarray(adopted), gray)


def _drop_first(folder: Path, name: str) -> str:
    (folder / f"{name}.png").unlink()
    return f"{folder / name}.png: no saliency map for training image {name} (1 of"


def _shrink_first(folder: Path, name: str) -> str:
    Image.new("L", (7, 5)).save(folder / f"{name}.png")
    return f"{folder / name}.png: saliency map is 7x5 but"


def _corrupt_first(folder: Path, name: str) -> str:
    (folder / f"{name}.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return f"{folder / name}.png: unreadable image"


@pytest.mark.parametrize("fault", [_drop_first, _shrink_first, _corrupt_first])
def test_a_bad_folder_map_is_named(voc: Path, tmp_path: Path, fault) -> None:
    names = read_split(voc, TRAIN_AUG)
    write_maps(tmp_path / "maps", voc, names)
    expected = fault(tmp_path / "maps", names[0])
    with pytest.raises(DatasetError) as err:
        copy_saliency_maps(tmp_path / "maps", voc, names, tmp_path)
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)


def test_a_missing_folder_is_named(voc: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nope: no such folder of saliency maps"):
        copy_saliency_maps(tmp_path / "nope", voc, read_split(voc, TRAIN_AUG), tmp_path)


# --- an archive of maps: the same checks -------------------------------------------------------


def _zip_maps(folder: Path, archive: Path) -> RemoteFile:
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.iterdir()):
            handle.write(path, f"sal/{path.name}")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    return RemoteFile(archive.name, md5, (str(archive),))


def test_archive_maps_are_kept_unchanged(voc: Path, tmp_path: Path) -> None:
    names = read_split(voc, TRAIN_AUG)
    maps = write_maps(tmp_path / "maps", voc, names)
    remote = _zip_maps(tmp_path / "maps", tmp_path / "sal.zip")
    out = tmp_path / "out"
    out.mkdir()
    fetch_saliency_maps(remote, tmp_path / "cache", voc, names, out)
    assert listing(out) == maps


def test_a_wrong_size_archive_map_is_named_inside_the_archive(voc: Path, tmp_path: Path) -> None:
    names = read_split(voc, TRAIN_AUG)
    write_maps(tmp_path / "maps", voc, names)
    _shrink_first(tmp_path / "maps", names[0])
    remote = _zip_maps(tmp_path / "maps", tmp_path / "sal.zip")
    out = tmp_path / "out"
    out.mkdir()
    cached = tmp_path / "cache/sal.zip"
    with pytest.raises(DatasetError, match=rf"^{cached}/sal/{names[0]}\.png: saliency map is 7x5"):
        fetch_saliency_maps(remote, tmp_path / "cache", voc, names, out)


# --- the ground truth's foreground ---------------------------------------------------------------


def test_mask_foreground_by_hand() -> None:
    mask = np.array([[0, 1, 255], [20, 0, 0]], dtype=np.uint8)
    expected = np.array([[0, 255, 255], [255, 0, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(mask_foreground(mask), expected)


def test_ground_truth_maps_are_the_aug_masks_foreground(tmp_path: Path) -> None:
    voc = tmp_path / "voc"
    aug_mask_path(voc, "a").parent.mkdir(parents=True)
    save_mask(aug_mask_path(voc, "a"), np.array([[0, 3, 3], [255, 0, 15]]))
    save_mask(aug_mask_path(voc, "b"), np.zeros((2, 3)))
    out = tmp_path / "out"
    out.mkdir()
    ground_truth_saliency_maps(voc, ["a", "b"], out)
    np.testing.assert_array_equal(read_gray(out / "a.png"), [[0, 255, 255], [255, 0, 255]])
    np.testing.assert_array_equal(read_gray(out / "b.png"), np.zeros((2, 3)))
    with Image.open(out / "a.png") as saved:
        assert saved.mode == "L"


# --- params --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"saliency.source": "folder"}, r"saliency\.folder: required when saliency\.source is"),
        ({"saliency.source": "folder", "saliency.folder": ""}, r"saliency\.folder: required when"),
        ({"saliency.folder": 3}, r"saliency\.folder: expected a string, got 3"),
        ({"saliency.source": "gt"}, r"saliency\.source: 'gt' is not one of .*'ground_truth'"),
        ({"saliency.folders": "x"}, r"saliency: unknown key `folders` \(did you mean `folder`"),
    ],
)
def test_bad_saliency_params_name_the_key(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_params_file(SECTIONS, _params_with(tmp_path, changes))


def test_folder_and_ground_truth_params_are_accepted(tmp_path: Path) -> None:
    folder = {"saliency.source": "folder", "saliency.folder": "maps"}
    assert check_params_file(SECTIONS, _params_with(tmp_path, folder))["saliency"].folder == "maps"
    truth = {"saliency.source": "ground_truth"}
    assert check_params_file(SECTIONS, _params_with(tmp_path, truth))["saliency"].folder is None


# --- the stage ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project with its dataset built."""
    project = tmp_path_factory.mktemp("sources")
    write_tiny_project(project)
    ok(project, "download")
    return project


def test_the_stage_copies_a_folder_and_a_bad_one_fails_in_one_line(
    downloaded: Path, tmp_path: Path
) -> None:
    voc = downloaded / "data/voc"
    names = read_split(voc, TRAIN_AUG)
    maps = write_maps(tmp_path / "maps", voc, names)
    set_params(downloaded, {"saliency.source": "folder", "saliency.folder": str(tmp_path / "maps")})
    ok(downloaded, "saliency")
    assert listing(downloaded / "data/saliency") == maps
    (tmp_path / "maps" / f"{names[-1]}.png").unlink()
    message = fails(downloaded, "saliency")
    assert message.startswith(f"error: {tmp_path / 'maps' / names[-1]}.png: no saliency map")
    assert listing(downloaded / "data/saliency") == maps  # the last good output stays


def test_the_ground_truth_stage_warns_and_scores_perfectly(downloaded: Path) -> None:
    set_params(downloaded, {"saliency.source": "ground_truth"})
    printed = ok(downloaded, "saliency")
    # (stages.saliency is not imported here: its package pins CPU kernels in os.environ)
    warning = [line for line in printed.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "ground_truth" in warning[0] and "upper bound" in warning[0]
    voc = downloaded / "data/voc"
    for name in read_split(voc, TRAIN_AUG):
        expected = mask_foreground(read_gray(aug_mask_path(voc, name)))
        np.testing.assert_array_equal(read_gray(downloaded / f"data/saliency/{name}.png"), expected)
    scores = json.loads((downloaded / "metrics/saliency.json").read_text())
    assert scores["mae"] == 0.0 and scores["max_fbeta"] == 1.0
