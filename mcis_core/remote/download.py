"""Resumable, md5-verified downloads into a cache folder.

`fetch` brings a `RemoteFile` into the download cache: it streams into
`<filename>.part`, resumes an interrupted transfer with an HTTP Range request,
falls back to mirrors, and renames the `.part` onto its final name only once its
md5 matches, so a file with the final name in the cache is always a verified one.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from mcis_core.common.errors import ChecksumError, DownloadError
from mcis_core.common.params import RemoteFile

USER_AGENT = "mcis-pipeline/0.1 (python-urllib)"
CHUNK_SIZE = 1 << 16
# Client errors that may succeed when asked again; any other 4xx is final for that URL.
RETRYABLE_4XX = (408, 416, 429)


def md5sum(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex md5 digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    remote: RemoteFile,
    cache_dir: Path,
    *,
    retries: int = 3,
    timeout: float = 60.0,
    backoff: float = 1.0,
    progress: bool = True,
) -> Path:
    """Return the path cache_dir/remote.filename holding a verified copy of the file."""
    cache_dir = Path(cache_dir)
    final = cache_dir / remote.filename
    if final.exists():
        if _md5_matches(final, remote.md5):
            return final
        _warn(f"{final}: md5 does not match {remote.md5}; downloading it again")
        final.unlink()
    if not remote.urls:
        raise DownloadError(
            f"no URL configured for {remote.filename}: set the `urls` key of this file in "
            f"params.yaml (e.g. data.voc2012.voc_archive.urls) or place a verified copy at {final}"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    failures: list[tuple[str, DownloadError]] = []
    for url in remote.urls:
        try:
            _fetch_url(url, part, final, remote, retries, timeout, backoff, progress)
        except DownloadError as err:
            failures.append((url, err))
            continue
        os.replace(part, final)
        return final
    raise _all_failed(remote.filename, failures)


def _fetch_url(
    url: str,
    part: Path,
    final: Path,
    remote: RemoteFile,
    retries: int,
    timeout: float,
    backoff: float,
    progress: bool,
) -> None:
    """Bring one URL's copy into `part` and verify it; raise DownloadError on failure."""
    source = _local_source(url)
    if source is None:
        _download_http(url, part, remote, retries, timeout, backoff, progress)
    else:
        _copy_local(source, part, remote.filename, progress)
    if remote.md5 is None:
        return
    actual = md5sum(part)
    if actual != remote.md5.lower():
        part.unlink()
        raise ChecksumError(f"{final}: md5 mismatch: expected {remote.md5}, got {actual}")


def _all_failed(filename: str, failures: list[tuple[str, DownloadError]]) -> DownloadError:
    """One error listing each URL's last error; a ChecksumError if any URL gave bad data."""
    detail = "\n".join(f"  {url}: {err}" for url, err in failures)
    if any(isinstance(err, ChecksumError) for _, err in failures):
        return ChecksumError(f"could not download a verified {filename}:\n{detail}")
    return DownloadError(f"could not download {filename}:\n{detail}")


def _local_source(url: str) -> Path | None:
    """The file a file:// URL or plain path names; None for an http(s) URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("http", "https"):
        return None
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if "://" in url:
        raise DownloadError(f"unsupported URL scheme {parts.scheme!r}")
    return Path(url).expanduser()


def _copy_local(source: Path, part: Path, filename: str, progress: bool) -> None:
    """Copy a local file into `part` from scratch, with a progress bar."""
    try:
        with open(source, "rb") as src, open(part, "wb") as out:
            total = os.fstat(src.fileno()).st_size
            with _bar(total, 0, filename, progress) as bar:
                while chunk := src.read(CHUNK_SIZE):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as err:
        raise DownloadError(f"cannot copy {source}: {err}") from err


def _download_http(
    url: str,
    part: Path,
    remote: RemoteFile,
    retries: int,
    timeout: float,
    backoff: float,
    progress: bool,
) -> None:
    """Fill `part` from `url`, resuming after each transient failure up to `retries` times."""
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            _http_attempt(url, part, remote, timeout, progress)
            return
        except urllib.error.HTTPError as err:
            err.close()
            if 400 <= err.code < 500 and err.code not in RETRYABLE_4XX:
                raise DownloadError(f"HTTP {err.code} {err.reason}") from err
            last = err
        except (OSError, http.client.HTTPException) as err:
            last = err
        if attempt < retries:
            time.sleep(backoff * 2**attempt)
    raise DownloadError(f"gave up after {retries + 1} attempts: {last!r}")


def _http_attempt(url: str, part: Path, remote: RemoteFile, timeout: float, progress: bool) -> None:
    """One GET that resumes (or restarts) `part`; raises when the body is cut short."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as err:
        if err.code != 416 or offset == 0:
            raise
        # The server has no bytes past our offset: the .part is complete, or it is bad.
        err.close()
        if _part_complete(part, remote.md5, err.headers.get("Content-Range")):
            return
        _warn(f"{part}: server refused to resume and the partial file is bad; restarting")
        part.unlink()
        offset = 0
        response = _open(url, offset, timeout)
    with response:
        _receive(response, part, offset, remote.filename, progress)


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    """Send a GET, asking for the bytes from `offset` on when it is not zero."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _part_complete(part: Path, md5: str | None, content_range: str | None) -> bool:
    """Whether a .part the server will not extend is the whole file."""
    if md5 is not None:
        return _md5_matches(part, md5)
    total = re.fullmatch(r"bytes \*/(\d+)", (content_range or "").strip())
    return total is not None and int(total.group(1)) == part.stat().st_size


def _receive(
    response: http.client.HTTPResponse, part: Path, offset: int, filename: str, progress: bool
) -> None:
    """Stream a response body into `part`, appending on 206 and starting over otherwise."""
    if response.status == 206:
        start = _range_start(response.headers.get("Content-Range"))
        if start != offset:
            part.unlink()
            raise ConnectionError(f"server resumed at byte {start}, not {offset}; restarting")
    else:
        offset = 0
    length = response.headers.get("Content-Length")
    expected = int(length) if length is not None else None
    total = None if expected is None else offset + expected
    received = 0
    with (
        open(part, "ab" if offset else "wb") as out,
        _bar(total, offset, filename, progress) as bar,
    ):
        while chunk := response.read(CHUNK_SIZE):
            out.write(chunk)
            bar.update(len(chunk))
            received += len(chunk)
    if expected is not None and received < expected:
        raise ConnectionError(f"connection closed after {offset + received} of {total} bytes")


def _range_start(content_range: str | None) -> int | None:
    """First byte position of a `Content-Range: bytes START-END/TOTAL` header."""
    match = re.match(r"bytes (\d+)-", (content_range or "").strip())
    return int(match.group(1)) if match else None


def _md5_matches(path: Path, md5: str | None) -> bool:
    """Whether a file has the expected md5; a file without one is trusted."""
    return md5 is None or md5sum(path) == md5.lower()


def _bar(total: int | None, initial: int, filename: str, progress: bool) -> tqdm:
    """A byte progress bar on stderr."""
    return tqdm(
        total=total,
        initial=initial,
        desc=filename,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not progress,
    )


def _warn(message: str) -> None:
    """Print a warning line to stderr."""
    print(f"warning: {message}", file=sys.stderr)
