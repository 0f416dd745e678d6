"""Safe extraction of tar and zip archives: members that would land outside the target
folder (absolute paths, `..`, links pointing out) are refused before anything is written."""

from __future__ import annotations

import os
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from mcis_core.common.errors import ArchiveError

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2")
# Extraction filters arrived in Python 3.11.4; older releases rely on `_check_name` alone.
TAR_FILTER: dict[str, str] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
TAR_FILTER_ERROR: type[Exception] | tuple[()] = getattr(tarfile, "FilterError", ())


def extract(archive: Path, into: Path, *, progress: bool = True) -> None:
    """Extract a .tar, .tar.gz/.tgz, .tar.bz2 or .zip archive into the existing folder `into`."""
    archive, into = Path(archive), Path(into)
    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            _extract_zip(archive, into, progress)
        elif name.endswith(TAR_SUFFIXES):
            _extract_tar(archive, into, progress)
        else:
            raise ArchiveError(f"{archive}: unknown archive type (expected tar, tgz, tbz2 or zip)")
    except TAR_FILTER_ERROR as err:
        raise ArchiveError(f"{archive}: unsafe member: {err}") from err
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as err:
        # An OSError with an errno comes from the file system (disk full, missing archive),
        # not from bad archive bytes; the caller must not take it for a corrupt download.
        if isinstance(err, OSError) and err.errno is not None:
            raise
        raise ArchiveError(f"{archive}: corrupt or truncated archive: {err}") from err


def _extract_tar(archive: Path, into: Path, progress: bool) -> None:
    """Extract a tar archive member by member, checking each before it is written."""
    with tarfile.open(archive, "r:*") as tar, _member_bar(archive, None, progress) as bar:
        tar.extractall(into, members=_checked_tar_members(tar, archive, bar), **TAR_FILTER)


def _checked_tar_members(
    tar: tarfile.TarFile, archive: Path, bar: tqdm
) -> Iterator[tarfile.TarInfo]:
    """Yield the members of a tar as it is read, refusing unsafe ones."""
    for member in tar:
        _check_name(archive, member.name)
        if member.issym():
            _check_symlink(archive, member.name, member.linkname)
        elif member.islnk():
            _check_name(archive, member.linkname)
        bar.update()
        yield member


def _extract_zip(archive: Path, into: Path, progress: bool) -> None:
    """Extract a zip archive after checking every member name."""
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in members:
            _check_name(archive, info.filename)
        with _member_bar(archive, len(members), progress) as bar:
            for info in members:
                zf.extract(info, into)
                bar.update()


def _check_name(archive: Path, name: str) -> None:
    """Refuse a member path that is absolute or has a `..` component."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise ArchiveError(f"{archive}: unsafe member {name!r} would be written outside")


def _check_symlink(archive: Path, name: str, target: str) -> None:
    """Refuse a symlink whose target is absolute or resolves outside the archive root."""
    resolved = os.path.normpath(PurePosixPath(name).parent / target)
    if PurePosixPath(target).is_absolute() or resolved.split("/")[0] == "..":
        raise ArchiveError(f"{archive}: symlink {name!r} -> {target!r} points outside")


def _member_bar(archive: Path, total: int | None, progress: bool) -> tqdm:
    """A progress bar counting extracted members."""
    return tqdm(total=total, desc=f"extract {archive.name}", unit="file", disable=not progress)
