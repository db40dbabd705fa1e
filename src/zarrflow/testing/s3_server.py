"""``S3Server``: moto's S3-compatible server in a child process on 127.0.0.1.

Tests and benchmarks talk to a real HTTP server through s3fs, exactly as they
would to a cloud bucket: requests are signed, sent over TCP, answered with S3's
XML. moto's server is started as ``python -m zarrflow.testing.s3_server`` (a
free port, a listen backlog of 1024, threads per connection), which keeps its
Python work (about 5–7 ms per request) off the client's GIL, and stops when the
parent closes its stdin or dies (see :mod:`zarrflow.testing.processes`).

Writes of one key are serialised (:class:`SerialWrites`): moto checks a
conditional PUT's ``If-Match`` / ``If-None-Match`` and stores the object in
two steps, so two concurrent conditional PUTs of one key could both pass the
check; S3 itself makes the check and the write one atomic step. Requests for
different keys still run concurrently.

moto and s3fs must both be installed; pin ``s3fs>=2023.1`` next to
``moto[server]`` (an unpinned pair can resolve to s3fs 0.4, which has no
``endpoint_url``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from zarrflow.testing.processes import DEFAULT_MAX_SECONDS, ServerProcess

__all__ = ["S3Server", "SerialWrites"]

#: credentials moto accepts (it does not check them)
CREDENTIALS = {"key": "testing", "secret": "testing"}
REGION = "us-east-1"


class S3Server:
    """An S3-compatible server (moto) on 127.0.0.1, in a child process.

    Parameters
    ----------
    max_seconds : float
        The longest the server process lives, whatever happens to its parent.

    Examples
    --------
    >>> import zarrflow as zf
    >>> with S3Server() as s3:
    ...     s3.create_bucket("doc")
    ...     a = zf.create("s3://doc/a.zarr", shape=(4,), dtype="i2",
    ...                   storage_options=s3.storage_options())
    ...     a[:] = [1, 2, 3, 4]
    ...     zf.open("s3://doc/a.zarr", mode="r", storage_options=s3.storage_options())[:]
    array([1, 2, 3, 4], dtype=int16)
    """

    def __init__(self, max_seconds: float = DEFAULT_MAX_SECONDS) -> None:
        self._process = ServerProcess(
            "zarrflow.testing.s3_server", ["--max-seconds", str(max_seconds)]
        )

    @property
    def port(self) -> int:
        return self._process.port

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``: the server's S3 endpoint."""
        return self._process.url

    def storage_options(self, endpoint_url: str | None = None, **extra: Any) -> dict[str, Any]:
        """s3fs options for this server, or for ``endpoint_url`` (a proxy in front of it).

        Examples
        --------
        >>> sorted(S3Server().storage_options("http://127.0.0.1:1"))
        ['client_kwargs', 'endpoint_url', 'key', 'secret']
        """
        return {
            "endpoint_url": endpoint_url or self.endpoint_url,
            **CREDENTIALS,
            "client_kwargs": {"region_name": REGION},
            **extra,
        }

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name`` (through s3fs, signed like any S3 request)."""
        import s3fs

        fs = s3fs.S3FileSystem(**self.storage_options(), skip_instance_cache=True)
        fs.call_s3("create_bucket", Bucket=name)

    def start(self) -> S3Server:
        """Start the server process and wait until it listens."""
        self._process.start()
        return self

    def stop(self) -> None:
        """Stop the server process (all its data is gone)."""
        self._process.stop()

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SerialWrites:
    """WSGI middleware: PUT, POST and DELETE requests of one path run one at a time.

    Makes a conditional write's check and store atomic, as on S3.

    Examples
    --------
    >>> def app(environ, start_response):
    ...     return [environ["PATH_INFO"].encode()]
    >>> SerialWrites(app)({"REQUEST_METHOD": "PUT", "PATH_INFO": "/b/k"}, None)
    [b'/b/k']
    """

    def __init__(self, app: Any) -> None:
        import threading

        self.app = app
        self._guard = threading.Lock()
        self._locks: dict[str, Any] = {}
        self._new_lock = threading.Lock

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") not in ("PUT", "POST", "DELETE"):
            return self.app(environ, start_response)
        path = f"{environ.get('HTTP_HOST', '')}{environ.get('PATH_INFO', '')}"
        with self._guard:
            lock = self._locks.setdefault(path, self._new_lock())
        with lock:
            return self.app(environ, start_response)


def main(argv: Sequence[str] | None = None) -> None:
    """Run moto's S3 server on 127.0.0.1 until stdin closes."""
    import logging
    import threading

    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug import serving

    from zarrflow.testing.processes import serve_until_stdin_closes

    p = argparse.ArgumentParser(description="moto's S3 server on 127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS)
    args = p.parse_args(argv)
    serving.ThreadedWSGIServer.request_queue_size = 1024  # a deep listen backlog
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    app = SerialWrites(DomainDispatcherApplication(create_backend_app))
    server = serving.make_server("127.0.0.1", args.port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    serve_until_stdin_closes(server.server_port, server.shutdown, args.max_seconds)


if __name__ == "__main__":
    main()
