# %% [markdown]
# # Parallel I/O and safe concurrent writes
#
# Zarr's chunked layout makes parallel I/O natural: a chunk is read,
# decompressed and written on its own. ExZarr's parallel I/O guide builds
# on that and makes a series of claims. This notebook checks them against
# zarrflow, where every chunk read or write is a Dask task:
#
# 1. a read that spans many chunks gets faster when the chunks are read in
#    parallel;
# 2. so does a write;
# 3. concurrent reads are always safe;
# 4. concurrent *partial* writes to one chunk lose updates unless they are
#    coordinated — zarrflow coordinates them with conditional writes, and the
#    strategies the guide names (partitioning, locking, batch-and-merge) are
#    zarrflow's write plans `aligned`, `lock` and `rechunk`.

# %% [markdown]
# > **About the numbers.** Every timing in this notebook is measured when it
# > runs, on whatever machine runs it — nothing is pasted in. On a laptop, a
# > CI runner or a shared server the absolute times move from run to run; the
# > *ratios* between measurements taken in the same run are what to read.
# > The text says what to expect and why; the cells print what actually happened.

# %%
import contextlib
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dask
import dask.array as da
import matplotlib.pyplot as plt
import numpy as np

import zarrflow as zf
from zarrflow.storage import MemoryStore
from zarrflow.storage.wrapper import StoreWrapper

workdir = tempfile.mkdtemp(prefix="zarrflow-nb02-")
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
# ## A test array
#
# 2048×2048 `float32` (16 MiB) in 256×256 chunks: 64 chunks of 256 KiB,
# zstd, on local disk.

# %%
rng = np.random.default_rng(0)
y, x = np.mgrid[0:2048, 0:2048]
data = (np.sin(x / 150) * np.cos(y / 110) + rng.normal(0, 0.01, x.shape)).astype("float32")
del x, y

a = zf.create(
    f"{workdir}/field.zarr", shape=data.shape, chunks=(256, 256), dtype="float32", compressor="zstd"
)
a[:] = data
print(a)
print("chunk grid:", a.chunk_grid_shape, "=", a.nchunks, "chunks")


# %% [markdown]
# ## 1. Parallel reads
#
# `a[0:1024, 0:1024]` touches 16 chunks, `a[:]` all 64. zarrflow reads a
# selection of at least `zarrflow.inline_chunks` chunks (8 by default) as a
# Dask graph on the threaded scheduler, each task decoding its chunks
# straight into the output array; smaller selections are read inline,
# where a graph would cost more than it saves. To measure the difference
# we run the same reads with Dask's synchronous scheduler — one chunk after
# another in the calling thread.


# %%
def compare(fn, repeat=5):
    with dask.config.set(scheduler="sync"):
        sequential = median_time(fn, repeat)
    with dask.config.set(scheduler="threads"):
        parallel = median_time(fn, repeat)
    return sequential, parallel


results = {
    "read 16 chunks": compare(lambda: a[0:1024, 0:1024]),
    "read 64 chunks": compare(lambda: a[:]),
}
for name, (seq, par) in results.items():
    print(
        f"{name}: sequential {seq * 1e3:6.1f} ms, threads {par * 1e3:6.1f} ms, "
        f"speedup {seq / par:.2f}x"
    )


# %% [markdown]
# ## 2. Parallel writes
#
# `a[...] = value` encodes and stores chunks the same way: a graph of write
# tasks when the selection spans many chunks. Compressing usually costs more
# CPU than decompressing (see the table in notebook 03), so a write has more
# work to spread over the cores — and it also creates a file per chunk.


# %%
def write_all():
    a[:] = data


results["write 64 chunks"] = compare(write_all, repeat=3)
seq, par = results["write 64 chunks"]
print(
    f"write 64 chunks: sequential {seq * 1e3:.1f} ms, threads {par * 1e3:.1f} ms, "
    f"speedup {seq / par:.2f}x"
)

names = list(results)
plt.figure(figsize=(6, 3.5))
plt.bar(names, [s / p for s, p in results.values()])
plt.axhline(1, color="gray", lw=1)
plt.axhline(cores, color="gray", ls=":", label=f"{cores} cores")
plt.ylabel("speedup of threads over sequential")
plt.legend()
plt.show()

# %% [markdown]
# On *N* free cores the ceiling is *N*× for these CPU-bound reads and
# writes. You will see less when the machine is busy, and on fast codecs
# the copy into the output array and the task hand-offs take a share that
# does not shrink with more threads. Against a high-latency store the
# picture changes completely — see notebook 01, Step 6.
#
# ## Reading and writing through Dask: `to_dask` and `to_zarr`
#
# `a.to_dask()` is a lazy `dask.array` whose every block is one zarrflow
# read task. Small chunks are grouped so one task reads about 4 MiB
# (`zarrflow.task_target_bytes`) — the "several chunks per task" rule
# explained in notebook 04; `chunks_per_task=1` gives one task per chunk.

# %%
x = a.to_dask()
x1 = a.to_dask(chunks_per_task=1)
print(f"default:           {x.npartitions:3d} tasks of {x.chunksize}")
print(f"chunks_per_task=1: {x1.npartitions:3d} tasks of {x1.chunksize}")

t_default = median_time(lambda: float(x.mean().compute()), 3)
t_single = median_time(lambda: float(x1.mean().compute()), 3)
print(f"mean(): {t_default * 1e3:.1f} ms grouped, {t_single * 1e3:.1f} ms one chunk per task")
assert np.isclose(float(x.mean().compute()), data.mean(dtype="float64"), rtol=1e-5)

# %% [markdown]
# `zf.to_zarr(dask_array, target)` writes any dask array, one write task per
# block. Here: standardise the field and store it as a new array with the
# same chunks.

# %%
z = (x - x.mean()) / x.std()
out = zf.to_zarr(z, f"{workdir}/standardised.zarr", chunks=(256, 256))
print(out)
expected = (data - data.mean(dtype="float64")) / data.std(dtype="float64")
print("max abs error:", float(np.abs(out[:] - expected).max()))

# %% [markdown]
# ## 3. Concurrent reads are safe
#
# Reads never lock: a stored chunk is immutable bytes, and each read
# decodes its own copy. Eight threads reading overlapping regions all get
# the right data.

# %%
regions = [(slice(i * 100, i * 100 + 700), slice(0, 2048, 3)) for i in range(8)]
with ThreadPoolExecutor(8) as pool:
    blocks = list(pool.map(lambda r: a[r], regions))
print("all correct:", all(np.array_equal(b, data[r]) for b, r in zip(blocks, regions, strict=True)))

# %% [markdown]
# ## 4. Concurrent writes: the lost update
#
# Writing *part* of a chunk is a read-modify-write: read the stored chunk,
# change some elements, store the whole chunk again. Two writers doing that
# at once on the same chunk both read the old chunk, and the second store
# erases the first writer's change. zarrflow prevents it with *conditional*
# writes: the chunk is read together with its generation, and the merged
# chunk is stored only if the generation is still the same; a writer that
# lost the race reads the chunk again and retries (see
# `docs/reliability.md`). That holds between any writers — threads,
# processes, machines — on every store with generations (local files,
# memory, S3). The per-chunk locks zarrflow also takes (a thread lock in a
# process, a `distributed.Lock` on a cluster) only make writers take turns,
# so that fewer of them have to retry. Writes that cover whole chunks need
# neither.
#
# To *see* the race, this demonstration switches **both** off —
# `dask.config.set({"zarrflow.conditional_writes": False, "zarrflow.lock": "none"})`,
# settings meant for tests, benchmarks and exactly this demonstration —
# and forces the worst interleaving with a store whose chunk reads wait for
# each other: a chunk read blocks until all four writers are reading (or
# 2 s have passed). That makes the demonstration deterministic instead of a
# matter of luck. Then the same four writers run with the defaults, and
# once more with only the locks off, to show which mechanism does the work.


# %%
class RendezvousStore(StoreWrapper):
    """Chunk reads wait until `parties` readers arrive (or `timeout` passes).

    Everything else, generations and conditional writes included, is the
    inner store's (StoreWrapper forwards it).
    """

    def __init__(self, inner, parties, timeout=2.0):
        super().__init__(inner)
        self.barrier = threading.Barrier(parties, timeout=timeout)

    def meet(self, key):
        if "/c/" in f"/{key}":  # a chunk key, not metadata
            # if the others do not come within the timeout, carry on alone
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait()

    def get(self, key):  # the plain read of a read-modify-write
        value = self.inner.get(key)
        self.meet(key)
        return value

    def get_versioned(self, key):  # the read of a conditional read-modify-write
        value = self.inner.get_versioned(key)
        self.meet(key)
        return value


def four_writers(settings):
    """Four threads each write two columns of the same 8x8 chunk, under `settings`."""
    store = RendezvousStore(MemoryStore(), parties=4)
    target = zf.create(store, shape=(8, 8), chunks=(8, 8), dtype="int32")

    def writer(i):
        target[:, 2 * i : 2 * i + 2] = i + 1

    with dask.config.set(settings):
        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    return target[:], elapsed


# %% tags=["readme-figure"]
unsafe, t_unsafe = four_writers({"zarrflow.conditional_writes": False, "zarrflow.lock": "none"})
safe, t_safe = four_writers({})  # the defaults: conditional writes on, locks "auto"
unlocked, t_unlocked = four_writers({"zarrflow.lock": "none"})  # conditional writes alone
expected = np.repeat(np.arange(1, 5, dtype="int32"), 2)[None, :].repeat(8, 0)

fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
for ax, img, title in [
    (axes[0], expected, "intended"),
    (axes[1], unsafe, "conditional writes off,\nlocks off (demo only)"),
    (axes[2], safe, "defaults: conditional writes,\nlocks auto"),
    (axes[3], unlocked, "conditional writes,\nlocks off"),
]:
    ax.imshow(img, vmin=0, vmax=4, cmap="viridis")
    ax.set(title=title, xticks=[], yticks=[])
plt.tight_layout()
plt.show()

lost = sorted(set(range(1, 5)) - set(np.unique(unsafe)))
print(f"both off:                writers {lost} lost their update ({t_unsafe:.2f} s)")
print(f"defaults:                correct = {np.array_equal(safe, expected)} ({t_safe:.2f} s)")
print(
    f"conditional, no locks:   correct = {np.array_equal(unlocked, expected)} ({t_unlocked:.2f} s)"
)

# %% [markdown]
# With both mechanisms off, all four writers read the empty chunk and only
# the last store survives. With the defaults nothing is lost: the writers
# take turns at the lock, each reading the chunk its predecessor stored, and
# each store is conditional besides. With the locks off but conditional
# writes on, nothing is lost either: all four read the same generation, one
# store succeeds, the other three find the generation changed, read again
# and retry — the locks only spare them those retries. (The runs take
# about 2 s only because our rendezvous store waits 2 s for readers that
# never come once the writers no longer read together. A real store does
# not wait.)
#
# ## Write plans: aligned, rechunk, lock
#
# `to_zarr` writes a dask array block by block, and blocks that do not line
# up with chunks are the lost-update situation at scale: two blocks share a
# chunk, and each writes part of it. `zf.plan_write` shows what zarrflow will
# do about it, and `to_zarr(..., strategy=)` overrides the choice:
#
# * **`aligned`** — when every block boundary is on a chunk boundary: each
#   chunk has one writer, no locks. (The ExZarr guide's *partition work*.)
# * **`rechunk`** — the default when blocks cut chunks: the dask array is
#   rechunked so each chunk has one writer; no locks; works on every
#   scheduler, processes included. (*Batch and merge*.)
# * **`lock`** — when asked for: blocks stay as they are, and each shared
#   chunk is written under its lock, each write a conditional read-modify-write.

# %%
target = zf.create(f"{workdir}/plans.zarr", shape=data.shape, chunks=(256, 256), dtype="float32")
whole = tuple(slice(0, s) for s in target.shape)

aligned = da.from_array(data, chunks=(512, 1024))  # multiples of 256
unaligned = da.from_array(data, chunks=(300, 300))  # cuts chunks

for name, arr, strategy in [
    ("aligned blocks", aligned, "auto"),
    ("unaligned blocks", unaligned, "auto"),
    ("unaligned blocks", unaligned, "lock"),
]:
    plan = zf.plan_write(arr.chunks, target, whole, strategy=strategy)
    print(
        f"{name:17s} strategy={strategy!r:7s} -> {plan.strategy:8s} "
        f"shared chunk boundaries: {plan.shared_chunks:2d}  ({plan.reason})"
    )

# %% [markdown]
# Asking for `aligned` when blocks are not aligned is refused rather than
# silently unsafe:

# %%
try:
    zf.to_zarr(unaligned, target, strategy="aligned")
except zf.ZarrflowError as e:
    print(type(e).__name__, "-", e)

# %% [markdown]
# Both safe plans give the same, correct array. Which is faster depends on
# the shape of the mismatch: `rechunk` moves data between tasks before
# writing, `lock` writes each shared chunk several times (once per block
# touching it, each a read-modify-write) and makes those writers wait for
# each other.

# %%
plan_times = {}
for strategy in ["rechunk", "lock"]:

    def write(strategy=strategy):
        zf.to_zarr(unaligned, target, strategy=strategy)

    plan_times[strategy] = median_time(write, 3)
    assert np.array_equal(target[:], data)
plan_times["aligned (512x1024 blocks)"] = median_time(lambda: zf.to_zarr(aligned, target), 3)
for k, v in plan_times.items():
    print(f"{k:26s} {v * 1e3:7.1f} ms")

# %% [markdown]
# ## Summary
#
# * Reads and writes spanning many chunks run as parallel Dask tasks; on a
#   CPU-bound local store expect at most *cores*× — measure it (above).
# * Reads never need coordination.
# * Whole-chunk writes need none either; partial writes are conditional
#   (stored only if the chunk is unchanged since it was read, else retried),
#   so concurrent writers to one chunk never lose an update; the per-chunk
#   locks only make them take turns.
# * For a whole dask array, `to_zarr` picks a plan: aligned blocks are
#   written as they are, unaligned ones are rechunked to one writer per chunk
#   (or, with `strategy="lock"`, written under per-chunk locks).
#   `zf.plan_write` tells you which, and why.
#
# **Next:** `03_codecs.ipynb` — what the codec costs, and whether threads
# really decode in parallel in Python.

# %%
shutil.rmtree(workdir, ignore_errors=True)
print("removed", workdir)
