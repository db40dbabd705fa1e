"""The Dask dashboard, seen in a real browser, shows zarrflow's tasks while a job runs.

A ``distributed.LocalCluster`` serves its dashboard on 127.0.0.1 at a free
port. Three zarrflow jobs run on it: ``to_zarr`` (``zarrflow-write`` tasks —
Dask fuses each block's read into its write), ``chunk_stream``
(``zarrflow-read``) and a ``parallel_chunk_map`` (``zarrflow-map``) whose
later chunks wait on a ``distributed.Event``, so the map is still running
while the browser looks; the browser starts once the map's progress callback
says its first chunks are done. No sleeps order anything.

Headless Chromium is driven over the DevTools protocol (tornado's websocket
client, already a dependency of distributed). It loads ``/status``; the test
asks BokehJS, in the page, which task names its plots hold, polling a
bounded number of times until all three prefixes are there, and saves a
screenshot to ``docs/images/dashboard.png`` (shown in the README). It then
loads the worker's info page and reads the running ``zarrflow-map`` tasks
from the rendered text. Without Chromium the test fails (scripts/test.sh installs it).
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import json
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest

import zarrflow as zf

PREFIXES = ("zarrflow-read", "zarrflow-write", "zarrflow-map")
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "images" / "dashboard.png"
GATE = f"zarrflow-dashboard-gate-{uuid.uuid4().hex}"  # a distributed.Event's name
FREE_ROWS = 3  # chunk rows the map computes at once; the others wait for GATE
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1400,900",
)

# Every string that starts with "zarrflow-" in the columns of the page's Bokeh models.
BOKEH_TASK_NAMES_JS = """
(() => {
  const found = new Set();
  for (const doc of (window.Bokeh && window.Bokeh.documents) || []) {
    for (const model of doc.all_models) {
      const data = model.data;
      if (!data || typeof data !== "object") continue;
      const columns = data instanceof Map ? [...data.values()] : Object.values(data);
      for (const column of columns) {
        if (!Array.isArray(column)) continue;
        for (const v of column) {
          if (typeof v === "string" && v.startsWith("zarrflow-")) found.add(v);
        }
      }
    }
  }
  return [...found].sort();
})()
"""


def _chromium() -> str:
    """The Chromium executable; a test failure (not a skip, not an error) when it is missing."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "headless Chromium is not installed, and the dashboard test needs a real browser: "
        "`apt-get install -y chromium` (scripts/test.sh, the README's test command, does this)",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gated_mean(idx: tuple[int, ...], chunk: np.ndarray) -> float:
    """The map's per-chunk step: the first rows run free, the rest wait for the browser."""
    if idx[0] >= FREE_ROWS:
        from distributed import Event

        Event(GATE).wait(timeout=120)
    return float(chunk.mean())


class Browser:
    """Headless Chromium over the DevTools protocol: navigate, evaluate, screenshot.

    Parameters
    ----------
    executable
        The Chromium binary.
    profile
        A new, empty directory for ``--user-data-dir``.
    """

    def __init__(self, executable: str, profile: Path) -> None:
        self.profile = profile
        self.log = open(profile.parent / "chromium.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [
                executable,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.ws: Any = None
        self._id = 0

    def _log_tail(self) -> str:
        self.log.flush()
        return (self.profile.parent / "chromium.log").read_text(errors="replace")[-2000:]

    async def connect(self) -> None:
        """Attach to the browser's page once it has written its DevTools port."""
        from tornado.httpclient import AsyncHTTPClient
        from tornado.websocket import websocket_connect

        port_file = self.profile / "DevToolsActivePort"
        for _ in range(600):  # bounded: at most 60 s
            if port_file.exists() and len(port_file.read_text().splitlines()) >= 2:
                break
            if self.proc.poll() is not None:
                pytest.fail(f"Chromium exited ({self.proc.returncode}):\n{self._log_tail()}")
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"Chromium did not open its DevTools port:\n{self._log_tail()}")
        port = int(port_file.read_text().splitlines()[0])
        reply = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/json/list")
        page = next(t for t in json.loads(reply.body) if t["type"] == "page")
        self.ws = await websocket_connect(
            page["webSocketDebuggerUrl"], max_message_size=256 * 2**20
        )
        await self.call("Page.enable")

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events are skipped)."""
        self._id += 1
        await self.ws.write_message(
            json.dumps({"id": self._id, "method": method, "params": params})
        )
        while True:
            message = await asyncio.wait_for(self.ws.read_message(), timeout=60)
            if message is None:
                raise ConnectionError(f"DevTools connection closed during {method}")
            reply = json.loads(message)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    async def goto(self, url: str) -> None:
        """Navigate and wait for the page's load event."""
        await self.call("Page.navigate", url=url)
        for _ in range(600):  # bounded: at most 60 s
            state = await self.evaluate("document.readyState")
            if state == "complete":
                return
            await asyncio.sleep(0.1)
        pytest.fail(f"{url} did not finish loading in the browser")

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def screenshot(self) -> bytes:
        """The page as PNG bytes."""
        return base64.b64decode((await self.call("Page.captureScreenshot", format="png"))["data"])

    async def disconnect(self) -> None:
        """Close the DevTools connection (inside the event loop that opened it)."""
        if self.ws is not None:
            self.ws.close()
            self.ws = None

    def close(self) -> None:
        """Stop this Chromium process (only ours, by its handle)."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


def _small_png(png: bytes) -> bytes:
    """The screenshot with a 256-colour palette (a fraction of the size), when Pillow is here."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib in the test extra
        return png
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


@pytest.fixture
def dashboard_cluster() -> Iterator[tuple[Any, int]]:
    """A LocalCluster with its dashboard on 127.0.0.1 at a free port, and a client."""
    if importlib.util.find_spec("bokeh") is None:
        pytest.fail("bokeh is not installed: the dashboard needs it (pip install -e '.[test]')")
    from distributed import Client, LocalCluster

    port = _free_port()
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=False,
            dashboard_address=f"127.0.0.1:{port}",
            silence_logs=50,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client, port


class Jobs(threading.Thread):
    """zarrflow's jobs on the cluster: to_zarr and a stream to completion, then the gated map.

    ``running`` is set once the map's free chunks are done (the rest wait for
    ``GATE``); ``results`` collects the map's results and ``error`` what failed.
    """

    def __init__(self, client: Any) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.running = threading.Event()
        self.results: list[tuple[tuple[int, ...], float]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # reported by the test
            self.error = e
            self.running.set()

    def _run(self) -> None:
        name = uuid.uuid4().hex
        a = zf.create(f"memory://dash-{name}", shape=(2000, 2000), chunks=(250, 250), dtype="f8")
        a[:] = np.add.outer(np.arange(2000.0), np.arange(2000.0))
        x = a.to_dask(chunks_per_task=1) * 2
        zf.to_zarr(x, f"memory://dash-out-{name}", scheduler=self.client)
        assert sum(1 for _ in a.chunk_stream(parallel=4, scheduler=self.client)) == a.nchunks
        free = FREE_ROWS * a.chunk_grid_shape[1]

        def progress(done: int, total: int) -> None:
            if done >= free:
                self.running.set()

        self.results.extend(
            a.parallel_chunk_map(
                _gated_mean, max_concurrency=4, scheduler=self.client, progress_callback=progress
            )
        )


def _has_all_prefixes(names: list[str]) -> bool:
    return all(any(n.startswith(p) for n in names) for p in PREFIXES)


async def _watch(browser: Browser, base: str, jobs: Jobs, worker: str) -> tuple[list, bytes, str]:
    """Open /status, run the jobs while it watches, and read what the browser shows.

    Returns the zarrflow task names BokehJS holds on /status, a screenshot of
    it, and the text of the worker's info page.
    """
    await browser.connect()
    try:
        await browser.goto(f"{base}/status")
        for _ in range(300):  # bounded: BokehJS builds the page from its websocket
            if await browser.evaluate("!!(window.Bokeh && Bokeh.documents.length)"):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("BokehJS never built /status in the browser")
        jobs.start()
        assert await asyncio.to_thread(jobs.running.wait, 120), "the map never got going"
        assert jobs.error is None, f"a zarrflow job failed: {jobs.error!r}"
        names: list[str] = []
        for _ in range(120):  # bounded: at most ~60 s of re-reading the rendered page
            names = await browser.evaluate(BOKEH_TASK_NAMES_JS) or []
            if _has_all_prefixes(names):
                break
            await asyncio.sleep(0.5)
        png = await browser.screenshot()
        await browser.goto(f"{base}/info/worker/{quote(worker, safe='')}.html")
        text = await browser.evaluate("document.body.innerText")
    finally:
        await browser.disconnect()
    return names, png, text or ""


def test_dashboard_shows_zarrflow_tasks_in_a_browser(dashboard_cluster, tmp_path) -> None:
    chromium = _chromium()
    client, port = dashboard_cluster
    from distributed import Event

    jobs = Jobs(client)
    (profile := tmp_path / "chromium-profile").mkdir()
    browser = Browser(chromium, profile)
    try:
        worker = next(iter(client.scheduler_info()["workers"]))
        names, png, worker_page = asyncio.run(
            _watch(browser, f"http://127.0.0.1:{port}", jobs, worker)
        )
    finally:
        Event(GATE, client=client).set()
        browser.close()
        if jobs.is_alive():
            jobs.join(timeout=120)
    assert _has_all_prefixes(names), f"not all of {PREFIXES} on /status: {names}"
    assert "zarrflow-map" in worker_page, worker_page[:2000]
    assert png.startswith(b"\x89PNG") and len(png) > 20_000, "the screenshot looks empty"
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.write_bytes(_small_png(png))
    assert jobs.error is None and len(jobs.results) == 64
