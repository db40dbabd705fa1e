"""Crash safety: writers killed with SIGKILL at random moments, and cluster workers killed mid-job.

A writer process runs a loop of whole-chunk writes, partial writes, attribute
updates and resizes on two local arrays (Zarr v2 with zstd, Zarr v3 with
zstd + crc32c) and is killed with SIGKILL at a random moment, again and
again. After every kill: the metadata opens, every stored chunk decodes to
values the writer wrote (old or new content, never a torn mix), and the temp
files a kill leaves behind are never listed, read or counted as chunks.

Killed writers are forked from a "zygote" process that has imported zarrflow
once, so each round costs a fork, not an interpreter start. The random delay
before a kill chooses the moment of the crash; nothing in the checks depends
on timing. The control experiment (in-place, non-atomic writes, killed once
half a chunk is written) shows the checks catch a torn chunk.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import zarrflow as zf
from zarrflow.storage import LocalStore
from zarrflow.storage.local import is_temp_name

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the crash harness forks writers"),
]

SHAPE, CHUNKS = (48, 40), (8, 8)
FILL = -1
ARRAYS = {
    "v2.zarr": {"zarr_format": 2, "compressor": "zstd"},
    "v3.zarr": {"zarr_format": 3, "codecs": ["bytes", "zstd", "crc32c"]},
}
METADATA = {"zarr.json", ".zarray", ".zattrs", ".zgroup"}

ZYGOTE = r"""
import os, random, sys, time
import numpy as np
import zarrflow as zf

ROOT, TORN = sys.argv[1], sys.argv[2] == "torn"


def in_place_set(self, key, value):
    # the control experiment: a non-atomic write straight into the file; once half of
    # a chunk is written the writer says so and waits (to be killed right there)
    path = self._path(key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(bytes(value))
        half = len(view) // 2
        os.write(fd, view[:half])
        if not os.path.basename(key) in ("zarr.json", ".zarray", ".zattrs", ".zgroup"):
            sys.stdout.write(f"torn {os.getpid()}\n")
            sys.stdout.flush()
            time.sleep(30)
        os.write(fd, view[half:])
    finally:
        os.close(fd)


def loop(seed):
    if TORN:
        from zarrflow.storage.local import LocalStore
        LocalStore.set = in_place_set
    rng = random.Random(seed)
    arrays = [zf.open_array(os.path.join(ROOT, n), mode="r+") for n in ("v2.zarr", "v3.zarr")]
    sys.stdout.write(f"started {os.getpid()}\n")
    sys.stdout.flush()
    value = seed * 100_000
    while True:
        value += 1
        a = rng.choice(arrays)
        grid = a.chunk_grid_shape
        op = rng.random()
        if op < 0.4:
            idx = tuple(rng.randrange(n) for n in grid)
            a.write_chunk(idx, np.full(a.chunks, value, a.dtype))
        elif op < 0.75:
            start = [rng.randrange(s) for s in a.shape]
            stop = [rng.randrange(b + 1, s + 1) for b, s in zip(start, a.shape)]
            a[tuple(slice(b, e) for b, e in zip(start, stop))] = value
        elif op < 0.85:
            a[...] = value
        elif op < 0.95:
            a.attrs.update(value=value, note="x" * rng.randrange(200))
        else:
            a.resize(rng.randrange(30, 49), rng.randrange(30, 41))


for line in sys.stdin:
    command, argument = line.split()
    if command == "fork":
        pid = os.fork()
        if pid == 0:
            try:
                loop(int(argument))
            finally:
                os._exit(0)
        sys.stdout.write(f"forked {pid}\n")
    elif command == "reap":
        os.waitpid(int(argument), 0)
        sys.stdout.write(f"reaped {argument}\n")
    sys.stdout.flush()
"""


class Zygote:
    """A process that has imported zarrflow and forks writer loops on request."""

    def __init__(self, root: Path, torn: bool = False) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE, str(root), "torn" if torn else "atomic"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def _send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def _lines(self) -> Iterator[str]:
        assert self.process.stdout is not None
        while line := self.process.stdout.readline():
            yield line.strip()
        raise AssertionError(f"the zygote exited with {self.process.wait()}")

    def _wait_for(self, *words: str) -> dict[str, int]:
        """Read lines until each of ``words`` was seen once for one pid: word -> pid."""
        seen: dict[str, int] = {}
        for line in self._lines():
            word, pid = line.split()
            if word in words:
                seen[word] = int(pid)
            if len(seen) == len(words) and len(set(seen.values())) == 1:
                return seen
        raise AssertionError("unreachable")

    def start_writer(self, seed: int) -> int:
        """Fork a writer; return its pid once it has opened the arrays and is writing."""
        self._send(f"fork {seed}")
        return self._wait_for("forked", "started")["forked"]

    def wait_until_torn(self, pid: int) -> None:
        """Wait until the (non-atomic) writer has half-written a chunk."""
        assert self._wait_for("torn")["torn"] == pid

    def kill(self, pid: int) -> None:
        """SIGKILL the writer and wait until it is gone."""
        os.kill(pid, signal.SIGKILL)
        self._send(f"reap {pid}")
        assert self._wait_for("reaped")["reaped"] == pid

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def make_arrays(root: Path) -> None:
    zf.open_group(str(root), mode="w")
    for name, settings in ARRAYS.items():
        a = zf.create(
            str(root / name), shape=SHAPE, chunks=CHUNKS, dtype="i4", fill_value=FILL, **settings
        )
        a[...] = 0


def chunk_files(array_root: Path) -> set[str]:
    """Keys of the chunk files on disk, found without zarrflow (temp files excluded)."""
    keys = set()
    for directory, _, files in os.walk(array_root):
        for name in files:
            if name in METADATA or is_temp_name(name):
                continue
            keys.add(
                os.path.relpath(os.path.join(directory, name), array_root).replace(os.sep, "/")
            )
    return keys


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and is_temp_name(p.name)]


def check_arrays(root: Path, max_value: int) -> list[str]:
    """Everything wrong with the arrays after a crash (an empty list when all is well)."""
    problems = []
    for name in ARRAYS:
        try:
            a = zf.open_array(str(root / name), mode="r")
        except zf.ZarrflowError as e:
            return [f"{name}: metadata does not open after a crash: {e}"]
        value = a.attrs.get("value", 0)
        if not isinstance(value, int) or not 0 <= value <= max_value:
            problems.append(f"{name}: attribute value {value!r} was never written")
        listed = set(LocalStore(root / name).list_prefix(""))
        if any(is_temp_name(k.rpartition("/")[2]) for k in listed):
            problems.append(f"{name}: a temp file is listed as a key")
        grid = a.chunk_grid_shape
        on_disk = {  # chunk files of the current grid, found by walking the directory
            k
            for k in chunk_files(root / name)
            if (c := a.metadata.parse_chunk_key(k)) is not None
            and all(0 <= i < n for i, n in zip(c, grid, strict=True))
        }
        stored = set(a.stored_chunk_keys())
        if stored != on_disk or a.nchunks_initialized != len(on_disk):
            problems.append(f"{name}: listing {sorted(stored ^ on_disk)} disagrees with the disk")
        for key in sorted(stored):
            coords = a.metadata.parse_chunk_key(key)
            try:
                chunk = a.read_chunk(coords)
            except zf.CorruptChunkError as e:
                problems.append(f"{name}: torn chunk {key}: {e}")
                continue
            bad = chunk[(chunk != FILL) & ((chunk < 0) | (chunk > max_value))]
            if bad.size:
                problems.append(f"{name}: chunk {key} holds values never written: {bad[:5]}")
        try:
            a[...]
        except zf.ZarrflowError as e:
            problems.append(f"{name}: reading the whole array fails: {e}")
    return problems


def crash_rounds(root: Path, rounds: int, seed: int, torn: bool = False) -> Iterator[list[str]]:
    """Kill a writer ``rounds`` times at random moments; yield the problems after each kill."""
    rng = random.Random(seed)
    zygote = Zygote(root, torn=torn)
    try:
        for i in range(1, rounds + 1):
            pid = zygote.start_writer(i)
            if torn:
                zygote.wait_until_torn(pid)
            else:  # the moment of the crash
                time.sleep(rng.choice([0.0, 0.001, rng.uniform(0, 0.02), rng.uniform(0, 0.15)]))
            zygote.kill(pid)
            yield check_arrays(root, max_value=(i + 1) * 100_000)
    finally:
        zygote.close()


def test_writers_killed_at_random_moments_never_tear_chunks(tmp_path: Path) -> None:
    make_arrays(tmp_path)
    for n, problems in enumerate(crash_rounds(tmp_path, rounds=30, seed=1), 1):
        assert not problems, f"after kill {n}: {problems}"
    # the arrays are still writable after all those crashes
    a = zf.open_array(str(tmp_path / "v3.zarr"), mode="r+")
    a[...] = 7
    assert (a[...] == 7).all()


def test_the_crash_check_detects_non_atomic_writes(tmp_path: Path) -> None:
    """The control: a writer writing in place, killed with half a chunk written, is caught."""
    make_arrays(tmp_path)
    for n, problems in enumerate(crash_rounds(tmp_path, rounds=3, seed=2, torn=True), 1):
        assert any("torn chunk" in p for p in problems), f"kill {n} went unnoticed"


def test_temp_files_left_by_a_crash_are_never_read_or_listed(tmp_path: Path) -> None:
    make_arrays(tmp_path)
    for name in ARRAYS:
        a = zf.open_array(str(tmp_path / name), mode="r+")
        a[...] = 5
        for coords in [(0, 0), (2, 3)]:
            key = a.chunk_key(coords)
            directory, _, base = key.rpartition("/")
            folder = tmp_path / name / directory if directory else tmp_path / name
            # what a kill between writing the temp file and renaming it leaves behind
            (folder / f".{base}.{os.urandom(8).hex()}.tmp").write_bytes(b"torn\x00garbage")
        (tmp_path / name / f"..zarray.{os.urandom(8).hex()}.tmp").write_bytes(b"{")
        (tmp_path / name / f".zarr.json.{os.urandom(8).hex()}.tmp").write_bytes(b"{")
    assert len(temp_files(tmp_path)) == 8
    assert not check_arrays(tmp_path, max_value=5)
    for name in ARRAYS:
        a = zf.open_array(str(tmp_path / name), mode="r")
        assert a.nchunks_initialized == a.nchunks
        assert (a[...] == 5).all()
        assert len(list(a.chunk_stream(skip_missing=True))) == a.nchunks
    assert sorted(zf.open_group(str(tmp_path), mode="r")) == sorted(ARRAYS)


# -- a cluster worker killed in the middle of to_zarr -------------------------------------------
def _write_progress(dask_scheduler) -> dict[str, object]:
    """Scheduler-side: finished write tasks, and the workers running write tasks now."""
    done = sum(
        1
        for ts in dask_scheduler.tasks.values()
        if ts.prefix.name == "zarrflow-write" and ts.state == "memory"
    )
    busy = {
        ws.address: sum(1 for ts in ws.processing if ts.prefix.name == "zarrflow-write")
        for ws in dask_scheduler.workers.values()
    }
    return {"done": done, "busy": busy}


def test_to_zarr_finishes_when_a_worker_is_killed_mid_job(tmp_path: Path) -> None:
    import dask.array as da
    from distributed import Client, LocalCluster

    from zarrflow.testing.faults import FaultyStore

    source = np.random.default_rng(3).integers(0, 1000, size=(128, 128)).astype("i4")
    x = da.from_array(source, chunks=(16, 16))  # 64 write tasks
    # every chunk write takes 30 ms (storage latency as load), so the job lasts a while
    store = FaultyStore(
        LocalStore(tmp_path / "out.zarr"), latency=0.03, latency_rate=1.0, ops=("set",)
    )
    target = zf.create(store, shape=source.shape, chunks=(16, 16), dtype="i4")
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
            silence_logs=50,
        ) as cluster,
        Client(cluster) as client,
    ):
        job = client.compute(zf.to_zarr(x, target, compute=False))
        deadline = time.monotonic() + 30
        while True:  # poll the scheduler until the job is well under way
            progress = client.run_on_scheduler(_write_progress)
            busy = [w for w, n in progress["busy"].items() if n]
            if progress["done"] >= 8 and busy:
                break
            assert time.monotonic() < deadline, f"the job never got going: {progress}"
            time.sleep(0.01)
        pids = client.run(os.getpid)
        victim = busy[0]
        os.kill(pids[victim], signal.SIGKILL)
        job.result(timeout=60)
        assert progress["done"] < 64, "the job had finished before the kill"
        assert pids[victim] not in client.run(os.getpid).values(), "the worker did not die"
    np.testing.assert_array_equal(
        zf.open_array(LocalStore(tmp_path / "out.zarr"), mode="r")[...], source
    )
