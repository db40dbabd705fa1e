# %% [markdown]
# # Chunk streaming: sequential vs parallel
#
# Chunk streaming processes a Zarr array one chunk at a time, so an array
# far larger than memory can be scanned with a small, fixed amount of RAM.
# This notebook follows ExZarr's chunk-streaming livebook step by step, with
# zarrflow's `Array.chunk_stream` — and measures each claim instead of
# asserting it.
#
# **What you will learn**
#
# * sequential streaming (`parallel=1`) and its grid order;
# * parallel streaming, ordered and unordered;
# * bounded concurrency — and why it pays off for slow storage but hardly
#   at all for in-memory decoding on a few cores;
# * progress callbacks;
# * filtering chunks *before* they are read (proved with read counts);
# * the memory bound of a parallel stream.
#
# **Core principle:** chunks are independent. Each one is stored, compressed
# and decoded on its own, so they can be read in any order and at the same
# time. In zarrflow every chunk read is a Dask task.

# %% [markdown]
# > **About the numbers.** Every timing in this notebook is measured when it
# > runs, on whatever machine runs it — nothing is pasted in. On a laptop, a
# > CI runner or a shared server the absolute times move from run to run; the
# > *ratios* between measurements taken in the same run are what to read.
# > The text says what to expect and why; the cells print what actually happened.

# %%
import functools
import itertools
import os
import shutil
import sys
import tempfile
import time
import tracemalloc

import matplotlib.pyplot as plt
import numpy as np

import zarrflow as zf
from zarrflow.parallel.progress import TextProgressBar
from zarrflow.storage import Store

workdir = tempfile.mkdtemp(prefix="zarrflow-nb01-")
cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
print(f"zarrflow {zf.__version__} | {cores} cores | scratch directory {workdir}")


def median_time(fn, repeat=5, warmup=True):
    """Median wall time of fn() in seconds (after one warm-up run, unless warmup=False)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


# %% [markdown]
# ## Step 1: a test array
#
# The *seed* workload of zarrflow's benchmarks: a 1000×1000 `int32` array
# in 100×100 chunks (100 chunks), zstd-compressed, on local disk. We fill
# every chunk — a chunk that was never written is not stored at all and
# reads as the fill value without touching storage, which would make the
# streams below look faster than they are. The data is a smooth field
# plus noise, so it compresses like real measurements do.

# %%
rng = np.random.default_rng(42)
y, x = np.mgrid[0:1000, 0:1000]
data = (1000 * np.sin(x / 70) * np.cos(y / 90) + rng.normal(0, 20, x.shape)).astype("int32")

a = zf.create(
    f"{workdir}/seed.zarr", shape=(1000, 1000), chunks=(100, 100), dtype="int32", compressor="zstd"
)
a[:] = data
print(a.info)

# %% [markdown]
# ## Step 2: sequential streaming
#
# `a.chunk_stream()` returns a lazy iterator of `(chunk_index, chunk)` pairs.
# With the default `parallel=1` each chunk is read in your own thread, in
# grid order: `(0, 0), (0, 1), …, (0, 9), (1, 0), …`. A chunk arrives as a
# decoded NumPy array (chunks at the array's far edge arrive trimmed to the
# array's shape). Nothing is read until you ask for the next item, and
# closing the iterator stops it.

# %%
stream = a.chunk_stream()
t0 = time.perf_counter()
for idx, chunk in itertools.islice(stream, 10):
    print(idx, chunk.shape, chunk.dtype, f"{chunk.nbytes:,} bytes")
stream.close()  # stop early: nothing more is read
print(f"first 10 chunks in {(time.perf_counter() - t0) * 1e3:.1f} ms")

# %% [markdown]
# ## Step 3: processing chunks
#
# A per-chunk statistic is the typical use: here the sum of every chunk,
# checked against NumPy on the same region. `a.chunk_slices(idx)` is the
# region of the array a chunk covers.

# %%
sums = {idx: int(chunk.sum(dtype="int64")) for idx, chunk in a.chunk_stream()}
assert all(sums[i] == data[a.chunk_slices(i)].sum(dtype="int64") for i in sums)
print(len(sums), "chunk sums; the first three:", list(sums.items())[:3])

# %% [markdown]
# Sequential streaming is the right choice when order matters (a running
# state carried from one chunk to the next), when you are debugging, or when
# the work per chunk dwarfs the read.
#
# ## Step 4: parallel, unordered
#
# `parallel=N` keeps up to *N* chunk reads in flight, as Dask tasks on the
# threaded scheduler (or on a cluster, see notebook 05). With
# `ordered=False` a chunk is handed to you as soon as it is decoded, so the
# arrival order can differ from the grid order.

# %%
grid = list(itertools.product(range(10), range(10)))
arrival = [idx for idx, _ in a.chunk_stream(parallel=4, ordered=False)]
print("every chunk exactly once:", sorted(arrival) == grid)
print("arrived in grid order:   ", arrival == grid)
print("first arrivals:", arrival[:8])

# %% [markdown]
# ## Step 5: parallel, ordered
#
# With `ordered=True` (the default) reads still run ahead in parallel, but
# finished chunks wait in a small buffer until every earlier chunk has been
# handed over. You get grid order and concurrent reads.

# %%
in_order = [idx for idx, _ in a.chunk_stream(parallel=4, ordered=True)]
print("grid order:", in_order == grid)

# %% [markdown]
# ## Step 6: bounded concurrency — two very different workloads
#
# How much does `parallel=N` buy? It depends on what a chunk read spends its
# time on:
#
# * **decode-bound** — the seed array on local disk (in the page cache):
#   reading 40 KB from memory is nearly free, decompression is the work, and
#   decompression needs a CPU core. No more than *cores* chunks can decode
#   at once.
# * **latency-bound** — the same array behind a store that waits 5 ms on
#   every read, like an object store across a network. A waiting reader
#   needs no core, so more readers in flight means more chunks per second,
#   up to what the store allows.
#
# The wrapper below simulates the latency. zarrflow's stores are small
# classes with `get` / `get_range` / `set` / `delete` / `list_prefix`, so
# wrapping one takes a few lines (the same trick counts reads in Step 8).


# %%
class WrappedStore(Store):
    """A store that forwards to another one; subclasses change what a read does."""

    def __init__(self, inner):
        self.inner = inner
        self.url, self.read_only = inner.url, inner.read_only

    def get(self, key):
        return self.inner.get(key)

    def get_range(self, key, request):
        return self.inner.get_range(key, request)

    def set(self, key, value):
        self.inner.set(key, value)

    def delete(self, key):
        self.inner.delete(key)

    def list_prefix(self, prefix):
        return self.inner.list_prefix(prefix)


class LatencyStore(WrappedStore):
    """Every read waits `latency` seconds first, like a request over a network."""

    def __init__(self, inner, latency):
        super().__init__(inner)
        self.latency = latency

    def get(self, key):
        time.sleep(self.latency)
        return self.inner.get(key)

    def get_range(self, key, request):
        time.sleep(self.latency)
        return self.inner.get_range(key, request)


slow = zf.open_array(LatencyStore(a.store, latency=0.005), mode="r")


# %%
def stream_all(array, parallel, ordered):
    return sum(1 for _ in array.chunk_stream(parallel=parallel, ordered=ordered))


levels = [1, 2, 4, 8]
timings = {}
runs = [("decode-bound", a, 5, True), ("latency-bound", slow, 2, False)]
for label, array, repeat, warmup in runs:
    for ordered in (True, False):
        timings[label, ordered] = [
            median_time(functools.partial(stream_all, array, p, ordered), repeat, warmup)
            for p in levels
        ]

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, label in zip(axes, ["decode-bound", "latency-bound"], strict=True):
    for ordered, style in [(True, "o-"), (False, "s--")]:
        ms = np.array(timings[label, ordered]) * 1e3
        ax.plot(levels, ms, style, label=f"ordered={ordered}")
    ideal = timings[label, True][0] * 1e3 / np.array(levels)
    ax.plot(levels, ideal, ":", color="gray", label="perfect scaling")
    ax.set(
        title=f"{label}: 100 chunks",
        xlabel="parallel",
        ylabel="time (ms)",
        xscale="log",
        yscale="log",
    )
    ax.set_xticks(levels, labels=[str(p) for p in levels])
    ax.minorticks_off()
    ax.legend()
plt.tight_layout()
plt.show()

for label in ["decode-bound", "latency-bound"]:
    seq = timings[label, True][0]
    best = {p: seq / t for p, t in zip(levels, timings[label, False], strict=True)}
    print(
        f"{label:14s} speedup over parallel=1 (unordered): "
        + ", ".join(f"{p}: {s:.1f}x" for p, s in best.items())
    )


# %% [markdown]
# **How to read this.** The latency-bound stream should fall close to the
# "perfect scaling" line: eight readers waiting at once cut the waiting
# nearly eight-fold, on any number of cores. The decode-bound stream cannot
# do better than the number of cores (printed at the top), and with chunks
# this small (40 KB, tens of microseconds to decode) handing chunks between
# threads costs about as much as decoding them. So zarrflow times the first
# chunks of a local stream, and a stream projected to finish within
# `zarrflow.stream_inline_seconds` (25 ms) simply goes on in your thread:
# the decode-bound curve is flat at about the sequential time, whatever
# `parallel` says. That is the honest version of the livebook's
# "diminishing returns"; notebook 04 shows where such small-chunk time goes.
#
# The latency-bound stream leaves your thread after its first chunk (5 ms
# is already slow), and the same timing sizes its tasks: about 2 ms of work
# each, here one chunk per task, so 8 readers really keep 8 requests in
# flight. Ordered and unordered cost about the same here: every chunk takes
# about as long as every other, so the in-order buffer rarely waits.
# Unordered pays off when some chunks are much slower than others (a cold
# cache, a slow request). On a cluster, or with `timeout=`, streams always
# run as tasks.
#
# ## Step 7: progress
#
# `progress_callback(done, total)` is called after each chunk is handed to
# you, **in your thread** — so it can safely update a widget, a log or a
# progress bar. `total` counts the chunks the stream will yield (after any
# filter).


# %%
def report(done, total):
    if done % 25 == 0 or done == total:
        print(f"progress: {done}/{total} chunks ({done / total:.0%})")


count = sum(1 for _ in a.chunk_stream(parallel=4, progress_callback=report))
print("streamed", count, "chunks")

# %% [markdown]
# zarrflow ships a one-line text bar, `zarrflow.parallel.progress.TextProgressBar`,
# that fits the same slot (the CLI uses it). Library code never prints:
# progress is always something you pass in.

# %%
bar = TextProgressBar("latency-bound stream", stream=sys.stdout)
for _ in slow.chunk_stream(parallel=8, progress_callback=bar):
    pass


# %% [markdown]
# ## Step 8: filtering — before the read, not after
#
# ExZarr's livebook filters the stream *after* reading (`Stream.filter` on
# the pairs), so every chunk is still fetched and decoded. zarrflow's
# `filter=` receives only the chunk index and runs **before** any read: a
# chunk it rejects is never requested from storage. A store wrapper that
# counts chunk reads shows the difference.


# %%
class CountingStore(WrappedStore):
    """Counts reads of chunk keys (metadata reads are not counted)."""

    def __init__(self, inner):
        super().__init__(inner)
        self.chunk_reads = 0

    def get(self, key):
        if not key.endswith((".json", ".zarray", ".zattrs", ".zgroup")):
            self.chunk_reads += 1  # a race between threads can only undercount
        return self.inner.get(key)


counting = CountingStore(a.store)
b = zf.open_array(counting, mode="r")
first_two_rows = lambda idx: idx[0] < 2  # noqa: E731

counting.chunk_reads = 0
kept = [idx for idx, _ in b.chunk_stream(parallel=4) if first_two_rows(idx)]
after = counting.chunk_reads

counting.chunk_reads = 0
kept2 = [idx for idx, _ in b.chunk_stream(parallel=4, filter=first_two_rows)]
before = counting.chunk_reads

counting.chunk_reads = 0
block = b[0:200, :]  # the same region as a slice
sliced = counting.chunk_reads

assert kept == kept2
print(f"chunks kept: {len(kept)}")
print(f"filter after reading (in the loop): {after:3d} chunk reads")
print(f"filter= before reading:             {before:3d} chunk reads")
print(f"slice b[0:200, :]:                   {sliced:3d} chunk reads")

# %% [markdown]
# Use `filter=` for selections that are about *which chunks* (a row of the
# chunk grid, chunks listed in an external index, every tenth chunk); use a
# slice when you want a rectangular region as one array; and pass
# `skip_missing=True` to stream only the chunks that are actually stored
# (one listing of the store instead of a read per chunk).
#
# ## Step 9: memory
#
# Each chunk handed to you is a full decoded array, and parallel reads run
# ahead of you. zarrflow bounds how far: at most **2 × parallel** chunks
# exist at once — the ones being read plus as many finished ones waiting for
# you — times the per-task batch for chunks under 256 KiB, plus the chunk
# your loop is holding. A consumer that stops early cancels the reads not
# yet started. Here is the estimate for the seed array:

# %%
chunk_bytes = 100 * 100 * a.dtype.itemsize
batch = max(1, min(64, (256 * 1024) // chunk_bytes))  # chunks per task (< 256 KiB chunks)
print(f"chunk: {chunk_bytes / 1024:.0f} KiB, {batch} chunks per task")
for p in (1, 4, 8, 16):
    held = 1 if p == 1 else 2 * p * batch
    print(f"parallel={p:2d}: at most {held:3d} chunks = {held * chunk_bytes / 2**20:5.2f} MiB")

# %% [markdown]
# The estimate is only useful if it holds, so let us measure it. With
# 256×256 `int32` chunks (256 KiB, one chunk per task) we stream 32 chunks
# and record the peak of Python's traced memory (`tracemalloc`, which sees
# NumPy's buffers), in units of one chunk. Expect the peak at or below
# **2 × parallel + 1**: the window, plus the chunk your loop still holds
# (compressed bytes of the chunks being decoded add a little).

# %%
side = 256
big = zf.create(f"{workdir}/big.zarr", shape=(32 * side, side), chunks=(side, side), dtype="int32")
rows, cols = np.mgrid[0 : big.shape[0], 0:side]
big[:] = (rows // 7 + cols // 5).astype("int32")  # compresses well
del rows, cols
big_chunk = side * side * 4

peaks = {}
for p in (1, 2, 4, 8):
    tracemalloc.start()
    for _ in big.chunk_stream(parallel=p, ordered=False):
        pass
    peaks[p] = tracemalloc.get_traced_memory()[1] / big_chunk
    tracemalloc.stop()

ps = list(peaks)
plt.figure(figsize=(6, 3.5))
plt.bar([str(p) for p in ps], [peaks[p] for p in ps], label="measured peak")
plt.plot([str(p) for p in ps], [2 * p + 1 for p in ps], "ko--", label="2 × parallel + 1")
plt.xlabel("parallel")
plt.ylabel("peak traced memory (chunks)")
plt.title(f"streaming {big.nchunks} chunks of {big_chunk // 1024} KiB")
plt.legend()
plt.show()
print({p: round(v, 1) for p, v in peaks.items()})

# %% [markdown]
# The peak tracks the parallelism, never the array: stream 32 chunks or 32
# million, the peak is the same. For large chunks pick `parallel` from
# memory first — a 1000×1000 `float64` chunk is 8 MB, so `parallel=16` can
# hold about 32 of them (256 MB).
#
# ## Key takeaways
#
# 1. Sequential streaming (`parallel=1`) is simple, ordered, and reads in
#    your thread.
# 2. Parallel streaming pays off in proportion to how much of a read is
#    *waiting* (network, disk) rather than *computing* (decoding on a few
#    cores). Measure your own store: the two curves above differ by an order
#    of magnitude.
# 3. `ordered=True` keeps grid order for the price of a small buffer; it
#    only costs time when chunk read times are very uneven.
# 4. `filter=` skips chunks before they are read.
# 5. Memory is bounded by `2 × parallel` chunks (times a small batch for
#    tiny chunks), whatever the array's size.
#
# **Next:** `02_parallel_io.ipynb` (parallel reads and writes, and writes
# that never lose an update), `04_profiling.ipynb` (where a read's time
# goes), `05_distributed.ipynb` (the same streams on a cluster).

# %%
shutil.rmtree(workdir, ignore_errors=True)
print("removed", workdir)
