"""A local HTTP file server with fault injection, for tests of downloads.

    with serve_files({"a.tar": data, "b.tgz": ServedFile(data, drop_after=1000)}) as server:
        url = server.url("b.tgz")  # the first GET of b.tgz stops after 1000 body bytes
        ...
        assert server.ranges("b.tgz") == [None, "bytes=1000-"]

It listens on 127.0.0.1 only, at a free port, and stops when the block ends.
Only open-ended ranges (`Range: bytes=N-`) are honoured; any other Range header
gets the whole file with 200, as from a server without range support.
"""

from __future__ import annotations

import contextlib
import re
import socket
import socketserver
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

REQUEST_TIMEOUT = 5.0  # seconds a handler waits on a silent client


@dataclass
class ServedFile:
    """A file's bytes and the faults to inject when serving them."""

    data: bytes
    drop_after: int | None = None  # body bytes sent before hanging up, on the first drop_times GETs
    drop_times: int = 1
    truncate_to: int | None = None  # file offset past which no byte is ever sent
    ignore_range: bool = False  # answer 200 with the whole file even to a Range request
    gets: int = 0  # GETs of this file answered so far


@dataclass(frozen=True)
class Request:
    """One GET as the server saw it."""

    path: str
    range: str | None


class FileServer(ThreadingHTTPServer):
    """Serves a fixed set of in-memory files and records every request."""

    daemon_threads = True

    def __init__(self, files: dict[str, ServedFile]) -> None:
        self.files = files
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall without a network.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def url(self, name: str) -> str:
        """The http:// URL of a served file (or of an unknown one, for a 404)."""
        return f"http://{self.server_name}:{self.server_port}/{quote(name)}"

    def ranges(self, name: str) -> list[str | None]:
        """The Range header of each request for `name`, in order (None when absent)."""
        with self._lock:
            return [r.range for r in self.requests if r.path == f"/{quote(name)}"]

    def record(self, path: str, range_header: str | None) -> tuple[ServedFile | None, int]:
        """Log a request; return the file it asks for and how many GETs of it came before."""
        with self._lock:
            self.requests.append(Request(path, range_header))
            served = self.files.get(unquote(urlsplit(path).path).lstrip("/"))
            if served is None:
                return None, 0
            served.gets += 1
            return served, served.gets - 1


class _Handler(BaseHTTPRequestHandler):
    server: FileServer
    timeout = REQUEST_TIMEOUT

    def do_GET(self) -> None:
        """Answer with the whole file, a 206 range of it, a 416 or a 404."""
        range_header = self.headers.get("Range")
        served, earlier_gets = self.server.record(self.path, range_header)
        if served is None:
            self.send_error(404)
            return
        size = len(served.data)
        start = None if served.ignore_range else _range_start(range_header)
        if start is not None and start >= size:
            self._send_headers(416, 0, {"Content-Range": f"bytes */{size}"})
            return
        if start is None:
            start = 0
            self._send_headers(200, size, {})
        else:
            self._send_headers(
                206, size - start, {"Content-Range": f"bytes {start}-{size - 1}/{size}"}
            )
        end = size if served.truncate_to is None else min(size, served.truncate_to)
        if served.drop_after is not None and earlier_gets < served.drop_times:
            end = min(end, start + served.drop_after)
        self.wfile.write(served.data[start:end])
        if end < size:
            self._hang_up()

    def _send_headers(self, status: int, length: int, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()

    def _hang_up(self) -> None:
        # A clean FIN, not a reset, so the client surely reads every byte sent before it.
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def log_message(self, fmt: str, *args: object) -> None:
        """Keep test output quiet; `FileServer.requests` is the log."""


def _range_start(header: str | None) -> int | None:
    """N of a `bytes=N-` Range header; None for no header or any other form."""
    match = re.fullmatch(r"bytes=(\d+)-", (header or "").strip())
    return int(match.group(1)) if match else None


def _as_served(content: bytes | Path | ServedFile) -> ServedFile:
    if isinstance(content, ServedFile):
        return content
    return ServedFile(content.read_bytes() if isinstance(content, Path) else content)


@contextlib.contextmanager
def serve_files(files: Mapping[str, bytes | Path | ServedFile]) -> Iterator[FileServer]:
    """Serve `files` (name -> bytes, a path to read, or a ServedFile) until the block ends."""
    server = FileServer({name: _as_served(content) for name, content in files.items()})
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(REQUEST_TIMEOUT)
