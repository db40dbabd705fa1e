"""Server processes for tests and benchmarks that always stop by themselves.

A server module run as ``python -m zarrflow.testing.<server> ...`` prints one
line ``PORT <n>`` once it listens on 127.0.0.1, then serves until its standard
input closes (the parent stopped it, or died) or ``--max-seconds`` pass,
whichever comes first. :class:`ServerProcess` starts such a module, reads the
port and stops it; :func:`serve_until_stdin_closes` is the server side.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

__all__ = ["ServerProcess", "serve_until_stdin_closes"]

#: the longest a server process lives unless told otherwise (seconds)
DEFAULT_MAX_SECONDS = 3600.0

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
# Run the server module as __main__ under a bare ``zarrflow`` package: its
# ``__init__`` (numpy, dask, the array stack: seconds of start-up) is not needed
# by servers, which import only the stdlib, ``zarrflow.testing`` and their server.
_BOOTSTRAP = """\
import runpy, sys, types
package = types.ModuleType("zarrflow")
package.__path__ = [{package!r}]
sys.modules["zarrflow"] = package
sys.argv[0] = {module!r}
runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
"""


class ServerProcess:
    """A ``python -m <module>`` server on 127.0.0.1, stopped on :meth:`stop` or exit.

    Parameters
    ----------
    module : str
        A module that prints ``PORT <n>`` and serves until stdin closes.
    args : sequence of str
        Its command-line arguments.
    start_timeout : float
        Seconds to wait for the ``PORT`` line.

    Examples
    --------
    >>> server = ServerProcess("zarrflow.testing.http_server", ["--directory", "."]).start()
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> server.stop()
    """

    def __init__(self, module: str, args: Sequence[str] = (), start_timeout: float = 60.0) -> None:
        self.module = module
        self.args = list(args)
        self.start_timeout = start_timeout
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        """Start the process and wait for its port; raise RuntimeError if it fails."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        bootstrap = _BOOTSTRAP.format(package=str(_PACKAGE_DIR), module=self.module)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", bootstrap, *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        line = _read_line(self._proc, self.start_timeout)
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"{self.module} did not start: {self.stderr_tail()}")
        self.port = int(line.split()[1])
        return self

    def stderr_tail(self, n: int = 2000) -> str:
        """The last ``n`` characters the process wrote to stderr."""
        if self._stderr is None or self._stderr.closed:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-n:]

    def stop(self, timeout: float = 10.0) -> None:
        """Close the server's stdin (it exits), then kill it if it does not."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
            if self._stderr is not None:
                self._stderr.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first line ``proc`` prints, or ``""`` after ``timeout`` seconds."""
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0].strip() if result else ""


def serve_until_stdin_closes(
    port: int, stop: Callable[[], None], max_seconds: float = DEFAULT_MAX_SECONDS
) -> None:
    """Announce ``PORT <port>``, wait for stdin to close or ``max_seconds``, then ``stop()``.

    The server itself runs in other threads; this is the main thread's part.

    Examples
    --------
    >>> import io, sys
    >>> stdin, sys.stdin = sys.stdin, io.StringIO("")  # an already closed parent
    >>> serve_until_stdin_closes(1234, lambda: None, max_seconds=1)
    PORT 1234
    >>> sys.stdin = stdin
    """
    print(f"PORT {port}", flush=True)
    done = threading.Event()

    def watch() -> None:
        try:
            while sys.stdin.read(4096):
                pass
        except (OSError, ValueError):
            pass
        done.set()

    threading.Thread(target=watch, daemon=True).start()
    deadline = time.monotonic() + max_seconds
    while not done.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            break
    stop()
