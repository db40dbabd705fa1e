"""``LatencyProxy``: a TCP proxy on 127.0.0.1 that adds cloud latency and faults.

The kernel here has no ``netem``, so latency is injected in user space: the
proxy accepts connections on 127.0.0.1, opens one connection to the target
per client connection, and copies bytes both ways with asyncio.

What is delayed
    Each **request**, i.e. each burst of client-to-server bytes that follows
    server-to-client bytes (or opens the connection), waits ``delay`` seconds
    before it is forwarded; the rest of that request's bytes and every response
    byte pass at once. For HTTP/1.1 (one request, then its response, per
    connection at a time) that adds ``delay`` to every request's round trip,
    including the first one on a new connection; connection setup itself is
    not delayed. Concurrent requests on different connections are delayed
    concurrently, as on a real wide-area link.
What can fail
    For each request, with probability ``reset_rate`` the proxy resets the
    connection (TCP RST) instead of forwarding it, so the request is lost and
    the client sees a connection reset; with ``fault_rate`` it answers
    ``fault_response`` (an HTTP error such as 503 SlowDown) and closes; with
    ``stall_rate`` it swallows the request and never answers. The decisions
    come from one seeded random stream.

The settings are plain attributes and may be changed while the proxy runs.
Counters (``connections``, ``requests``, ``resets``, ``faults``, ``stalls``)
say what happened; ``in_flight`` is the number of requests waiting for the
first byte of their response now, and ``peak_in_flight`` the most at once.
Run it standalone with ``python -m zarrflow.testing.latency_proxy --target
127.0.0.1:9000 --delay 0.1``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections.abc import Coroutine, Sequence

__all__ = ["LatencyProxy", "http_error_response"]

_REASONS = {403: "Forbidden", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable"}  # fmt: skip
_CODES = {403: "AccessDenied", 429: "TooManyRequests", 500: "InternalError", 503: "SlowDown"}


def http_error_response(status: int = 503, code: str | None = None, message: str = "") -> bytes:
    """A complete HTTP/1.1 error response with an S3-style XML body, closing the connection.

    Examples
    --------
    >>> http_error_response(503).split(b"\\r\\n")[0]
    b'HTTP/1.1 503 Service Unavailable'
    >>> b"<Code>SlowDown</Code>" in http_error_response(503)
    True
    """
    code = code or _CODES.get(status, "Error")
    message = message or f"injected by zarrflow.testing.latency_proxy ({code})"
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message><RequestId>proxy</RequestId></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n"
    ).encode()
    return head + body


class LatencyProxy:
    """A delaying, fault-injecting TCP proxy on 127.0.0.1 (runs in a background thread).

    Parameters
    ----------
    target : str or (str, int)
        ``"host:port"``, an ``http://host:port`` URL or a ``(host, port)`` pair.
    delay : float
        Seconds added to each request (see the module docstring).
    reset_rate, fault_rate, stall_rate : float
        Probabilities, per request, of a connection reset, of answering
        ``fault_response`` instead of forwarding, and of never answering.
    fault_response : bytes
        What a fault answers (default: HTTP 503 SlowDown).
    seed : int
        Seed of the fault decisions.
    port : int
        Where to listen (0: a free port).

    Examples
    --------
    >>> from zarrflow.testing.http_server import StaticHTTPServer
    >>> import tempfile, pathlib, urllib.request, time
    >>> root = tempfile.mkdtemp()
    >>> _ = pathlib.Path(root, "hello").write_bytes(b"hi")
    >>> with StaticHTTPServer(root) as server, LatencyProxy(server.url, delay=0.05) as proxy:
    ...     t0 = time.perf_counter()
    ...     body = urllib.request.urlopen(proxy.url + "/hello").read()
    ...     body, time.perf_counter() - t0 >= 0.05, proxy.requests
    (b'hi', True, 1)
    """

    def __init__(
        self,
        target: str | tuple[str, int],
        delay: float = 0.0,
        *,
        reset_rate: float = 0.0,
        fault_rate: float = 0.0,
        stall_rate: float = 0.0,
        fault_response: bytes | None = None,
        seed: int = 0,
        port: int = 0,
    ) -> None:
        self.target = _parse_target(target)
        self.delay = float(delay)
        self.reset_rate = float(reset_rate)
        self.fault_rate = float(fault_rate)
        self.stall_rate = float(stall_rate)
        self.fault_response = fault_response or http_error_response(503)
        self.port = port
        self.connections = self.requests = self.resets = self.faults = self.stalls = 0
        self.in_flight = self.peak_in_flight = 0
        self._random = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: where clients connect."""
        return f"http://127.0.0.1:{self.port}"

    def reset_counters(self) -> None:
        """Set every counter back to zero."""
        self.connections = self.requests = self.resets = self.faults = self.stalls = 0
        self.peak_in_flight = self.in_flight

    # life cycle ---------------------------------------------------------------------
    def start(self) -> LatencyProxy:
        """Start listening (returns once the port is bound)."""
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, errors), name="latency-proxy", daemon=True
        )
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    def _run(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
            )
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # reported to start()
            errors.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def stop(self) -> None:
        """Stop listening, drop every connection and end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # one connection ---------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        upstream: asyncio.StreamWriter | None = None
        state: dict[str, bool] = {}
        try:
            up_reader, upstream = await asyncio.open_connection(*self.target)
            state.update(new_request=True, waiting=False)
            await _both(
                self._client_to_server(reader, writer, upstream, state),
                self._server_to_client(up_reader, writer, state),
            )
        except OSError:
            pass
        except asyncio.CancelledError:
            _abort(writer)
        finally:
            if state.get("waiting"):
                self.in_flight -= 1
            for w in (upstream, writer):
                if w is not None:
                    w.close()
            self._tasks.discard(task)

    async def _client_to_server(self, reader, writer, upstream, state) -> None:
        while data := await reader.read(65536):
            if state["new_request"]:
                state["new_request"] = False
                await self._new_request(writer, state)
            upstream.write(data)
            await upstream.drain()
        with contextlib.suppress(OSError):
            upstream.write_eof()

    async def _server_to_client(self, up_reader, writer, state) -> None:
        while data := await up_reader.read(65536):
            state["new_request"] = True
            if state["waiting"]:
                state["waiting"] = False
                self.in_flight -= 1
            writer.write(data)
            await writer.drain()
        writer.close()

    async def _new_request(self, writer: asyncio.StreamWriter, state: dict[str, bool]) -> None:
        """Count a request, maybe fail it, else wait ``delay`` before it is forwarded."""
        self.requests += 1
        state["waiting"] = True
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        draw = self._random.random()
        if draw < self.reset_rate:
            self.resets += 1
            _abort(writer)
            raise _Reset
        draw -= self.reset_rate
        if draw < self.fault_rate:
            self.faults += 1
            writer.write(self.fault_response)
            await writer.drain()
            raise _Reset
        draw -= self.fault_rate
        if draw < self.stall_rate:
            self.stalls += 1
            await asyncio.sleep(3600)  # until the client gives up or the proxy stops
        if self.delay > 0:
            await asyncio.sleep(self.delay)


async def _both(a: Coroutine[None, None, None], b: Coroutine[None, None, None]) -> None:
    """Run both directions until both end; when one fails, stop the other."""
    tasks = [asyncio.ensure_future(a), asyncio.ensure_future(b)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Reset(Exception):
    """This connection ends here (reset or answered by the proxy)."""


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), dropping anything unsent."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _parse_target(target: str | tuple[str, int]) -> tuple[str, int]:
    if isinstance(target, tuple):
        return target[0], int(target[1])
    hostport = target.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: Sequence[str] | None = None) -> None:
    """Run a proxy until stdin closes (see :mod:`zarrflow.testing.processes`)."""
    from zarrflow.testing.processes import DEFAULT_MAX_SECONDS, serve_until_stdin_closes

    p = argparse.ArgumentParser(description="A latency-adding TCP proxy on 127.0.0.1")
    p.add_argument("--target", required=True, help="host:port or http://host:port")
    p.add_argument("--delay", type=float, default=0.1, help="seconds added per request")
    p.add_argument("--reset-rate", type=float, default=0.0)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS)
    args = p.parse_args(argv)
    proxy = LatencyProxy(args.target, args.delay, reset_rate=args.reset_rate, port=args.port)
    proxy.start()
    serve_until_stdin_closes(proxy.port, proxy.stop, args.max_seconds)


if __name__ == "__main__":
    main()
