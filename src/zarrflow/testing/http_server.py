"""``StaticHTTPServer``: serve a directory's files over HTTP on 127.0.0.1, as an object store.

A read-only object store in miniature: ``GET`` and ``HEAD`` of files, single
``Range: bytes=`` requests (206 / 416), 404 for anything that is not a file
(directories are never listed), HTTP/1.1 keep-alive, and a listen backlog of
1024 — Python's ``ThreadingHTTPServer`` keeps 5 by default, which drops
connections (1 s SYN retransmits) as soon as dozens of requests arrive at once.

Run it in a thread (:class:`StaticHTTPServer`) or as a process of its own
(``python -m zarrflow.testing.http_server --directory D``, see
:mod:`zarrflow.testing.processes`), which keeps its Python work off the
client's GIL in benchmarks.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import threading
from collections.abc import Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["StaticHTTPServer"]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True
    allow_reuse_address = True


class _Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_head(self):  # type: ignore[override]
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404, "Not Found")
            return None
        size = os.path.getsize(path)
        span = _parse_range(self.headers.get("Range"), size)
        if span == "unsatisfiable":
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        f = open(path, "rb")  # noqa: SIM115 - closed by the base class after copyfile
        start, end = span if span else (0, size)
        f.seek(start)
        self.send_response(206 if span else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        if span:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = end - start
        return f

    def copyfile(self, source, outputfile) -> None:  # type: ignore[override]
        shutil.copyfileobj(_Limited(source, self._remaining), outputfile)


class _Limited:
    """A file object that reads at most ``n`` bytes."""

    def __init__(self, f: Any, n: int) -> None:
        self.f, self.n = f, n

    def read(self, size: int = -1) -> bytes:
        size = self.n if size < 0 else min(size, self.n)
        data = self.f.read(size)
        self.n -= len(data)
        return data


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end) of a single-range header, None for no range, ``"unsatisfiable"``.

    Examples
    --------
    >>> _parse_range("bytes=2-4", 10), _parse_range("bytes=-3", 10), _parse_range("bytes=7-", 10)
    ((2, 5), (7, 10), (7, 10))
    >>> _parse_range("bytes=12-", 10), _parse_range(None, 10)
    ('unsatisfiable', None)
    """
    match = _RANGE.match(header.strip()) if header else None
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    if start >= size or start >= end:
        return "unsatisfiable"
    return start, end


class StaticHTTPServer:
    """Serve ``directory`` at ``http://127.0.0.1:<port>/`` from a background thread.

    Parameters
    ----------
    directory : str or os.PathLike
        The files to serve (read-only).
    port : int
        Where to listen (0: a free port).

    Examples
    --------
    >>> import tempfile, pathlib, urllib.request
    >>> root = tempfile.mkdtemp()
    >>> _ = pathlib.Path(root, "a.bin").write_bytes(b"0123456789")
    >>> with StaticHTTPServer(root) as server:
    ...     request = urllib.request.Request(server.url + "/a.bin", headers={"Range": "bytes=2-4"})
    ...     urllib.request.urlopen(request).read()
    b'234'
    """

    def __init__(self, directory: str | os.PathLike[str], port: int = 0) -> None:
        self.directory = os.fspath(directory)
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StaticHTTPServer:
        """Bind and start serving."""

        def handler(*args: Any, **kwargs: Any) -> _Handler:
            return _Handler(*args, directory=self.directory, **kwargs)

        self._server = _Server(("127.0.0.1", self.port), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="static-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> StaticHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Serve a directory until stdin closes (see :mod:`zarrflow.testing.processes`)."""
    from zarrflow.testing.processes import DEFAULT_MAX_SECONDS, serve_until_stdin_closes

    p = argparse.ArgumentParser(description="A static file server on 127.0.0.1")
    p.add_argument("--directory", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS)
    args = p.parse_args(argv)
    server = StaticHTTPServer(args.directory, args.port).start()
    serve_until_stdin_closes(server.port, server.stop, args.max_seconds)


if __name__ == "__main__":
    main()
