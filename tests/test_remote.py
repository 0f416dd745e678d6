"""Tests of mcis_core.download: resumable verified fetches and safe extraction, all offline."""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
import zipfile
from pathlib import Path

import pytest

from mcis_core.common.errors import ArchiveError, ChecksumError, DownloadError
from mcis_core.common.params import RemoteFile
from mcis_core.remote.archives import extract
from mcis_core.remote.download import (
    fetch,
    md5sum,
)
from tests.http_server import ServedFile, serve_files

NAME = "archive.bin"
DATA = random.Random(0).randbytes(300_000)
CUT = 70_000  # where interrupted transfers stop

FAST = {"retries": 2, "backoff": 0.0, "timeout": 5.0, "progress": False}
MEMBERS = {
    "top.txt": b"hello\n",
    "dir/nested.bin": random.Random(1).randbytes(5_000),
    "dir/sub/empty.txt": b"",
}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def remote(*urls: str, data: bytes = DATA) -> RemoteFile:
    return RemoteFile(NAME, md5(data), tuple(urls))


def cache_listing(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_md5sum_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(DATA)
    assert md5sum(path, chunk_size=4096) == md5(DATA)


def test_http_download_is_verified_then_served_from_cache(tmp_path: Path) -> None:
    with serve_files({NAME: DATA}) as server:
        spec = remote(server.url(NAME))
        path = fetch(spec, tmp_path, **FAST)
        assert path == tmp_path / NAME and path.read_bytes() == DATA
        assert cache_listing(tmp_path) == [NAME]
        assert fetch(spec, tmp_path, **FAST) == path
        assert server.ranges(NAME) == [None]


def test_interrupted_download_resumes_with_range(tmp_path: Path) -> None:
    with serve_files({NAME: ServedFile(DATA, drop_after=CUT)}) as server:
        path = fetch(remote(server.url(NAME)), tmp_path, **FAST)
        assert server.ranges(NAME) == [None, f"bytes={CUT}-"]
    assert path.read_bytes() == DATA
    assert cache_listing(tmp_path) == [NAME]


def test_repeated_drops_resume_each_time(tmp_path: Path) -> None:
    with serve_files({NAME: ServedFile(DATA, drop_after=CUT, drop_times=2)}) as server:
        path = fetch(remote(server.url(NAME)), tmp_path, **FAST)
        assert server.ranges(NAME) == [None, f"bytes={CUT}-", f"bytes={2 * CUT}-"]
    assert path.read_bytes() == DATA


def test_part_left_by_earlier_run_is_resumed(tmp_path: Path) -> None:
    (tmp_path / f"{NAME}.part").write_bytes(DATA[:CUT])
    with serve_files({NAME: DATA}) as server:
        path = fetch(remote(server.url(NAME)), tmp_path, **FAST)
        assert server.ranges(NAME) == [f"bytes={CUT}-"]
    assert path.read_bytes() == DATA
    assert cache_listing(tmp_path) == [NAME]


def test_server_ignoring_range_restarts_from_zero(tmp_path: Path) -> None:
    (tmp_path / f"{NAME}.part").write_bytes(b"x" * CUT)  # garbage: kept bytes would show
    with serve_files({NAME: ServedFile(DATA, ignore_range=True)}) as server:
        path = fetch(remote(server.url(NAME)), tmp_path, **FAST)
        assert server.ranges(NAME) == [f"bytes={CUT}-"]
    assert path.read_bytes() == DATA


def test_complete_part_answered_416_is_kept(tmp_path: Path) -> None:
    (tmp_path / f"{NAME}.part").write_bytes(DATA)
    with serve_files({NAME: DATA}) as server:
        path = fetch(remote(server.url(NAME)), tmp_path, **FAST)
        assert server.ranges(NAME) == [f"bytes={len(DATA)}-"]
    assert path.read_bytes() == DATA


def test_bad_part_answered_416_is_downloaded_again(tmp_path: Path) -> None:
    (tmp_path / f"{NAME}.part").write_bytes(b"x" * len(DATA))
    with serve_files({NAME: DATA}) as server:
        path = fetch(remote(server.url(NAME)), tmp_path, **FAST)
        assert server.ranges(NAME) == [f"bytes={len(DATA)}-", None]
    assert path.read_bytes() == DATA


def test_md5_mismatch_raises_and_leaves_nothing(tmp_path: Path) -> None:
    expected = md5(b"other bytes")
    with serve_files({NAME: DATA}) as server:
        spec = RemoteFile(NAME, expected, (server.url(NAME),))
        with pytest.raises(ChecksumError) as caught:
            fetch(spec, tmp_path, **FAST)
    message = str(caught.value)
    assert str(tmp_path / NAME) in message
    assert expected in message and md5(DATA) in message
    assert cache_listing(tmp_path) == []


def test_corrupt_mirror_is_skipped_for_a_good_one(tmp_path: Path) -> None:
    corrupt = DATA[:-1] + b"?"
    with serve_files({"bad": corrupt, "good": DATA}) as server:
        spec = remote(server.url("bad"), server.url("good"))
        assert fetch(spec, tmp_path, **FAST).read_bytes() == DATA


def test_md5_is_compared_case_insensitively(tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(DATA)
    spec = RemoteFile(NAME, md5(DATA).upper(), (str(source),))
    assert fetch(spec, tmp_path / "cache", **FAST).read_bytes() == DATA


def test_permanently_truncated_file_fails_after_retries(tmp_path: Path) -> None:
    with serve_files({NAME: ServedFile(DATA, truncate_to=CUT)}) as server:
        url = server.url(NAME)
        with pytest.raises(DownloadError) as caught:
            fetch(remote(url), tmp_path, **FAST)
        assert server.ranges(NAME) == [None, f"bytes={CUT}-", f"bytes={CUT}-"]
    assert not isinstance(caught.value, ChecksumError)
    assert NAME in str(caught.value) and url in str(caught.value)
    assert not (tmp_path / NAME).exists()


def test_404_is_not_retried_and_the_mirror_is_used(tmp_path: Path) -> None:
    with serve_files({"mirror.bin": DATA}) as server:
        spec = remote(server.url("missing.bin"), server.url("mirror.bin"))
        assert fetch(spec, tmp_path, **FAST).read_bytes() == DATA
        assert server.ranges("missing.bin") == [None]


def test_all_urls_failing_names_each_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.bin"
    with serve_files({}) as server, pytest.raises(DownloadError) as caught:
        fetch(remote(server.url("gone.bin"), str(missing)), tmp_path / "cache", **FAST)
    message = str(caught.value)
    assert "404" in message and str(missing) in message and NAME in message


@pytest.mark.parametrize("kind", ["file_url", "absolute_path", "relative_path"])
def test_local_sources_are_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    source = tmp_path / "source dir" / "src.bin"
    source.parent.mkdir()
    source.write_bytes(DATA)
    monkeypatch.chdir(tmp_path)
    url = {
        "file_url": source.as_uri(),
        "absolute_path": str(source),
        "relative_path": "source dir/src.bin",
    }[kind]
    path = fetch(remote(url), tmp_path / "cache", **FAST)
    assert path.read_bytes() == DATA
    assert cache_listing(tmp_path / "cache") == [NAME]


def test_corrupted_cached_file_is_downloaded_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / NAME).write_bytes(b"stale")
    with serve_files({NAME: DATA}) as server:
        path = fetch(remote(server.url(NAME)), tmp_path, **FAST)
    assert path.read_bytes() == DATA
    assert "warning" in capsys.readouterr().err


def test_no_url_configured(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=f"no URL configured for {NAME}"):
        fetch(remote(), tmp_path, **FAST)


def write_archive(path: Path, members: dict[str, bytes]) -> Path:
    """Write a tar (compression from the suffix) or zip holding `members`."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return path
    mode = {".tar": "w", ".tgz": "w:gz", ".bz2": "w:bz2"}[path.suffix]
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("filename", ["a.tar", "a.tgz", "a.tar.bz2", "a.zip"])
def test_extract_round_trip(tmp_path: Path, filename: str) -> None:
    archive = write_archive(tmp_path / filename, MEMBERS)
    out = tmp_path / "out"
    out.mkdir()
    extract(archive, out, progress=False)
    assert tree(out) == MEMBERS


@pytest.mark.parametrize("filename", ["cut.tgz", "cut.zip"])
def test_truncated_archive_raises_archive_error(tmp_path: Path, filename: str) -> None:
    members = {"big.bin": random.Random(2).randbytes(200_000), "after.txt": b"x"}
    archive = write_archive(tmp_path / filename, members)
    archive.write_bytes(archive.read_bytes()[:100_000])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ArchiveError, match="corrupt or truncated") as caught:
        extract(archive, out, progress=False)
    assert str(archive) in str(caught.value)


def unsafe_tar(path: Path, member: tarfile.TarInfo) -> Path:
    """A tar holding one good file, then `member`."""
    with tarfile.open(path, "w") as tar:
        good = tarfile.TarInfo("good.txt")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"ok"))
        tar.addfile(member, io.BytesIO(b"evil") if member.isfile() else None)
    return path


def evil_member(name: str, link: str | None = None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    if link is None:
        info.size = 4
    else:
        info.type, info.linkname = tarfile.SYMTYPE, link
    return info


# Each case builds its member from the test's tmp_path, the folder holding the target.
UNSAFE_MEMBERS = {
    "dotdot": lambda root: evil_member("../evil"),
    "nested-dotdot": lambda root: evil_member("dir/../../evil"),
    "absolute": lambda root: evil_member(f"{root}/evil"),
    "symlink-out": lambda root: evil_member("link", link="../evil"),
    "symlink-absolute": lambda root: evil_member("link", link=f"{root}/evil"),
}


@pytest.mark.parametrize("case", UNSAFE_MEMBERS)
def test_unsafe_tar_member_is_refused(tmp_path: Path, case: str) -> None:
    member = UNSAFE_MEMBERS[case](tmp_path)
    archive = unsafe_tar(tmp_path / "evil.tar", member)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ArchiveError) as caught:
        extract(archive, out, progress=False)
    assert str(archive) in str(caught.value) and member.name in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar", "out"]
    assert tree(out) == {"good.txt": b"ok"}


def test_unsafe_zip_member_is_refused(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "evil.zip", {"good.txt": b"ok", "../evil": b"evil"})
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ArchiveError, match="unsafe member") as caught:
        extract(archive, out, progress=False)
    assert str(archive) in str(caught.value)
    assert not (tmp_path / "evil").exists() and list(out.iterdir()) == []
