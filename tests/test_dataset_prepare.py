"""The `download` stage on VOC-shaped archives served from a local HTTP server.

The archives are built here to look like VOCtrainval_11-May-2012.tar and SBD's
benchmark.tgz; every bad case must end with a clear error and no output folder.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml
from PIL import Image

from mcis_core.common.errors import ArchiveError, ChecksumError, DatasetError, DownloadError
from mcis_core.common.io import read_gray, read_names
from mcis_core.common.layout import read_class_labels
from mcis_core.common.params import RemoteFile
from mcis_core.dataset.params import Voc2012Params
from mcis_core.dataset.prepare import prepare_voc2012
from tests.http_server import ServedFile, serve_files
from tests.params import PARAMS_FILE

REPO = Path(__file__).resolve().parents[1]
TRAIN, VAL, SBD_ONLY = ["2007_000001", "2007_000002"], ["2007_000003"], ["2008_000004"]


def _png(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    img = Image.fromarray(mask, mode="P")
    img.putpalette([0, 0, 0, 128, 0, 0] * 128)
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def _tar(members: dict[str, bytes], gz: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _mask(label: int) -> np.ndarray:
    mask = np.zeros((6, 8), np.uint8)
    mask[2:4, 2:5] = label
    return mask


def voc_tar(skip: str | None = None, replace: dict[str, bytes] | None = None) -> bytes:
    """A VOC2012-shaped tar; `skip` leaves out one member, as a damaged mirror might, and
    `replace` swaps members' contents (paths below VOCdevkit/VOC2012/)."""
    root = "VOCdevkit/VOC2012"
    members = {
        f"{root}/ImageSets/Segmentation/train.txt": "".join(f"{n}\n" for n in TRAIN).encode(),
        f"{root}/ImageSets/Segmentation/val.txt": "".join(f"{n}\n" for n in VAL).encode(),
    }
    for i, name in enumerate(TRAIN + VAL + SBD_ONLY):
        jpeg = io.BytesIO()
        Image.new("RGB", (8, 6), (40 * i, 0, 0)).save(jpeg, format="JPEG")
        members[f"{root}/JPEGImages/{name}.jpg"] = jpeg.getvalue()
    for i, name in enumerate(TRAIN + VAL):
        members[f"{root}/SegmentationClass/{name}.png"] = _png(_mask(i + 1))
    members.pop(f"{root}/{skip}", None)
    members.update({f"{root}/{name}": data for name, data in (replace or {}).items()})
    return _tar(members)


def sbd_tgz() -> bytes:
    """A benchmark.tgz-shaped archive with MATLAB class masks."""
    members = {
        "benchmark_RELEASE/dataset/train.txt": f"{SBD_ONLY[0]}\n{TRAIN[0]}\n".encode(),
        "benchmark_RELEASE/dataset/val.txt": f"{VAL[0]}\n".encode(),
    }
    for name, label in [(SBD_ONLY[0], 12), (TRAIN[0], 7), (VAL[0], 7)]:
        mat = io.BytesIO()
        scipy.io.savemat(mat, {"GTcls": {"Segmentation": _mask(label)}})
        members[f"benchmark_RELEASE/dataset/cls/{name}.mat"] = mat.getvalue()
    return _tar(members, gz=True)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _params(server, voc: bytes, sbd: bytes, voc_md5: str | None = None) -> Voc2012Params:
    return Voc2012Params(
        voc_archive=RemoteFile(
            "VOCtrainval_11-May-2012.tar",
            voc_md5 or _md5(voc),
            (server.url("VOCtrainval_11-May-2012.tar"),),
        ),
        aug_archive=RemoteFile("benchmark.tgz", _md5(sbd), (server.url("benchmark.tgz"),)),
        aug_format="sbd",
    )


def test_voc2012_download_builds_the_layout(tmp_path: Path) -> None:
    voc, sbd = voc_tar(), sbd_tgz()
    files = {"VOCtrainval_11-May-2012.tar": ServedFile(voc, drop_after=500), "benchmark.tgz": sbd}
    with serve_files(files) as server:
        counts = prepare_voc2012(_params(server, voc, sbd), tmp_path / "cache", tmp_path / "voc")
        assert server.ranges("VOCtrainval_11-May-2012.tar") == [None, "bytes=500-"]
    out = tmp_path / "voc"
    assert counts == {"train": 2, "val": 1, "train_aug": 3}
    assert read_names(out / "ImageSets/Segmentation/train_aug.txt") == [
        "2007_000001",
        "2007_000002",
        "2008_000004",
    ]
    # VOC's fine mask wins over SBD's for a VOC train image; SBD-only masks are converted
    assert read_class_labels(out) == {
        "2007_000001": [0],
        "2007_000002": [1],
        "2008_000004": [11],
        "2007_000003": [2],
    }
    np.testing.assert_array_equal(
        read_gray(out / "SegmentationClassAug/2008_000004.png"), _mask(12)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "voc"]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "VOCtrainval_11-May-2012.tar",
        "benchmark.tgz",
    ]


def test_md5_mismatch_leaves_no_output(tmp_path: Path) -> None:
    voc, sbd = voc_tar(), sbd_tgz()
    with serve_files({"VOCtrainval_11-May-2012.tar": voc, "benchmark.tgz": sbd}) as server:
        params = _params(server, voc, sbd, voc_md5="0" * 32)
        with pytest.raises(ChecksumError, match=f"expected {'0' * 32}, got {_md5(voc)}"):
            prepare_voc2012(params, tmp_path / "cache", tmp_path / "voc")
    assert not (tmp_path / "voc").exists()
    assert list((tmp_path / "cache").iterdir()) == []


def test_truncated_download_leaves_no_output(tmp_path: Path) -> None:
    voc, sbd = voc_tar(), sbd_tgz()
    files = {
        "VOCtrainval_11-May-2012.tar": ServedFile(voc, truncate_to=len(voc) // 2),
        "benchmark.tgz": sbd,
    }
    with serve_files(files) as server, pytest.raises(DownloadError, match="VOCtrainval"):
        prepare_voc2012(_params(server, voc, sbd), tmp_path / "cache", tmp_path / "voc")
    assert not (tmp_path / "voc").exists()
    assert not (tmp_path / "cache" / "VOCtrainval_11-May-2012.tar").exists()


def test_truncated_archive_without_md5_is_an_archive_error(tmp_path: Path) -> None:
    voc, sbd = voc_tar(), sbd_tgz()
    cut = sbd[: len(sbd) // 2]
    with serve_files({"VOCtrainval_11-May-2012.tar": voc, "benchmark.tgz": cut}) as server:
        params = _params(server, voc, sbd)
        params = Voc2012Params(
            params.voc_archive,
            RemoteFile("benchmark.tgz", None, params.aug_archive.urls),
            params.aug_format,
        )
        with pytest.raises(ArchiveError, match="benchmark.tgz: corrupt or truncated"):
            prepare_voc2012(params, tmp_path / "cache", tmp_path / "voc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


@pytest.mark.parametrize(
    ("skip", "message"),
    [
        (
            "JPEGImages/2008_000004.jpg",
            r"1 image\(s\) named in the image lists are missing.*2008_000004",
        ),
        ("SegmentationClass/2007_000003.png", r"1 mask\(s\) named .* missing.*2007_000003\.png"),
    ],
)
def test_missing_file_named_in_a_list(tmp_path: Path, skip: str, message: str) -> None:
    voc, sbd = voc_tar(skip=skip), sbd_tgz()
    files = {"VOCtrainval_11-May-2012.tar": voc, "benchmark.tgz": sbd}
    with serve_files(files) as server, pytest.raises(DatasetError, match=message):
        prepare_voc2012(_params(server, voc, sbd), tmp_path / "cache", tmp_path / "voc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_stage_reports_one_clear_line(tmp_path: Path) -> None:
    voc, sbd = voc_tar(), sbd_tgz()
    with serve_files({"VOCtrainval_11-May-2012.tar": voc, "benchmark.tgz": sbd}) as server:
        params = yaml.safe_load(PARAMS_FILE.read_text())
        params["base"].update({"data_dir": "data", "download_cache": "cache"})
        params["data"].update(
            {
                "source": "voc2012",
                "voc2012": {
                    "voc_archive": {
                        "filename": "VOCtrainval_11-May-2012.tar",
                        "md5": "1" * 32,
                        "urls": [server.url("VOCtrainval_11-May-2012.tar")],
                    },
                    "aug_archive": {
                        "filename": "benchmark.tgz",
                        "md5": _md5(sbd),
                        "urls": [server.url("benchmark.tgz")],
                    },
                    "aug_format": "sbd",
                },
            }
        )
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        result = subprocess.run(
            [sys.executable, "-m", "stages.download"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "error: " in result.stderr and f"expected {'1' * 32}, got {_md5(voc)}" in result.stderr
    assert not (tmp_path / "data" / "voc").exists() and not (tmp_path / "metrics").exists()
