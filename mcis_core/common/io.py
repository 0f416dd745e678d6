"""Atomic file and folder writes, canonical pickling, image reading and writing, name lists.

Every artifact of the pipeline is written to a temporary path beside its final
place and renamed at the end, so an interrupted stage never leaves an output
that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mcis_core.common.errors import DatasetError


def scratch_prefix(dest: Path) -> str:
    """Name prefix of the temporary siblings of `dest`."""
    return f".{dest.name}.tmp-"


def remove_stale_scratch(dest: Path) -> None:
    """Delete temporary siblings of `dest` that an interrupted run left behind."""
    for stale in dest.parent.glob(f"{scratch_prefix(dest)}*"):
        shutil.rmtree(stale) if stale.is_dir() and not stale.is_symlink() else stale.unlink()


def shared_scratch(dest: Path) -> Path:
    """The temporary sibling of `dest` with a fixed name, which other processes can find."""
    return dest.parent / f"{scratch_prefix(dest)}shared"


@contextlib.contextmanager
def scratch_dir(dest: str | Path, shared: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `dest` (at `shared_scratch(dest)` if `shared`), removed
    afterwards (and by the next run if this one is killed)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(dest)
    if shared:
        tmp = shared_scratch(dest)
        tmp.mkdir()
    else:
        tmp = Path(tempfile.mkdtemp(prefix=scratch_prefix(dest), dir=dest.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would make outputs private to their writer
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(dest: str | Path, shared: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder (see `scratch_dir`) that replaces `dest` when the block
    succeeds."""
    dest = Path(dest)
    with scratch_dir(dest, shared) as tmp:
        yield tmp
        if dest.exists():
            shutil.rmtree(dest) if dest.is_dir() and not dest.is_symlink() else dest.unlink()
        os.replace(tmp, dest)


@contextlib.contextmanager
def atomic_file(dest: str | Path, mode: str = "w") -> Iterator:
    """Open a temporary file that replaces `dest` when the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(dest)
    fd, tmp = tempfile.mkstemp(prefix=scratch_prefix(dest), dir=dest.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make outputs private to their writer
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def canonical(value: Any) -> Any:
    """`value` with every string interned, so that equal states pickle to equal bytes.

    Pickle writes a string once per object and refers back to it after: a resumed run's
    history, read from a checkpoint, holds other string objects than the code's literals,
    and the same state would otherwise be written differently than in an uninterrupted run.
    """
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        copy = type(value)((canonical(k), canonical(v)) for k, v in value.items())
        if hasattr(value, "_metadata"):  # a module state dict's version information
            copy._metadata = canonical(value._metadata)
        return copy
    if isinstance(value, list | tuple):
        return type(value)(canonical(v) for v in value)
    return value


def files_digest(files: Iterable[Path], root: Path) -> str:
    """md5 over the paths relative to `root` and the contents of `files`, in the given order."""
    digest = hashlib.md5()
    for file in files:
        digest.update(str(file.relative_to(root)).encode())
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def write_json(path: str | Path, data: object) -> None:
    """Write `data` as indented, key-sorted JSON, atomically."""
    with atomic_file(path) as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def read_names(path: str | Path) -> list[str]:
    """Read a list file with one image name per line."""
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def write_names(path: str | Path, names: Sequence[str]) -> None:
    """Write one image name per line."""
    Path(path).write_text("".join(f"{n}\n" for n in names))


@contextlib.contextmanager
def opened_image(path: str | Path) -> Iterator[Image.Image]:
    """An image file, decoded; a missing or unreadable one is a DatasetError naming it."""
    try:
        with Image.open(path) as img:
            img.load()
            yield img
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DatasetError(f"{path}: unreadable image ({err})") from None


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB."""
    with opened_image(path) as img:
        return np.array(img.convert("RGB"))


def read_gray(path: str | Path) -> np.ndarray:
    """Read a single-channel image (a palette PNG gives its indices) as (H, W) uint8."""
    with opened_image(path) as img:
        if img.mode not in ("L", "P"):
            img = img.convert("L")
        return np.array(img)


def save_gray(path: str | Path, array: np.ndarray) -> None:
    """Save an (H, W) uint8 array as a grayscale PNG."""
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode="L").save(path, format="PNG")
