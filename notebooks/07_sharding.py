# %% [markdown]
# # Sharding: layout, request counts, and when shards help
#
# A Zarr v3 array can pack many *inner chunks* into one stored object, a
# **shard** (the `sharding_indexed` codec). The chunk stays the unit of
# compression and of reading; the shard becomes the unit of storage. This
# notebook shows what that changes on disk, counts the storage requests
# reads and writes make, and ends with when to use shards.
#
# `zf.create(..., chunks=inner_chunk_shape, shards=shard_shape)` makes a
# sharded array (v3 only).

# %% [markdown]
# > **About the numbers.** Every timing in this notebook is measured when it
# > runs, on whatever machine runs it — nothing is pasted in. On a laptop, a
# > CI runner or a shared server the absolute times move from run to run; the
# > *ratios* between measurements taken in the same run are what to read.
# > The text says what to expect and why; the cells print what actually happened.

# %%
import os
import shutil
import tempfile
import threading
import time

import matplotlib.pyplot as plt
import numpy as np

import zarrflow as zf
from zarrflow.storage import Store

workdir = tempfile.mkdtemp(prefix="zarrflow-nb07-")
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
# ## Layout on disk
#
# The same 2048×2048 `uint16` image, chunked 128×128 (256 chunks), stored
# twice: once with one object per chunk, once in 512×512 shards of 16 inner
# chunks each. We count the files each one writes.


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


class CountingStore(WrappedStore):
    """Counts requests and bytes by kind: whole-object reads, ranged reads, writes."""

    def __init__(self, inner):
        super().__init__(inner)
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.counts = {"get": 0, "get_range": 0, "set": 0, "bytes read": 0}

    def _add(self, kind, value):
        with self.lock:
            self.counts[kind] += 1
            self.counts["bytes read"] += len(value or b"") if kind != "set" else 0

    def get(self, key):
        value = self.inner.get(key)
        self._add("get", value)
        return value

    def get_range(self, key, request):
        value = self.inner.get_range(key, request)
        self._add("get_range", value)
        return value

    def set(self, key, value):
        self._add("set", None)
        self.inner.set(key, value)


# %%
rng = np.random.default_rng(3)
yy, xx = np.mgrid[0:2048, 0:2048]
noise = rng.normal(0, 50, xx.shape)
image = (30000 + 20000 * np.sin(xx / 200) * np.cos(yy / 170) + noise).astype("uint16")
del yy, xx, noise

plain = zf.create(f"{workdir}/plain.zarr", shape=image.shape, chunks=(128, 128), dtype="uint16")
sharded = zf.create(
    f"{workdir}/sharded.zarr",
    shape=image.shape,
    chunks=(128, 128),
    shards=(512, 512),
    dtype="uint16",
)
plain[:] = image
sharded[:] = image


def files(path):
    found = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    return len(found), sum(os.path.getsize(f) for f in found)


for name, arr, path in [
    ("one object per chunk", plain, f"{workdir}/plain.zarr"),
    ("512x512 shards", sharded, f"{workdir}/sharded.zarr"),
]:
    count, size = files(path)
    print(f"{name:22s} {count:4d} files, {size / 2**20:5.2f} MiB  ({arr.chunks=}, {arr.shards=})")
print()
print(sharded.info)

# %% [markdown]
# In a sharded array, `a.chunks` is the **inner** chunk shape and `a.shards`
# the shard shape (the regular grid of stored objects), as in zarr-python.
# Each shard object holds its encoded inner chunks back to back plus an
# *index* — an `(offset, length)` pair per inner chunk — at its end (or
# start). Missing inner chunks take no space; a shard with no data is not
# stored at all.
#
# ## Request counts
#
# A reader of a sharded array fetches the index of a shard (one small
# ranged read), then only the byte ranges of the inner chunks it needs —
# adjacent ranges coalesced into one request. Reading a whole shard can
# skip the index request altogether: fetch the object once and split it.
# We count requests for four reads of each layout.

# %%
reads = {
    "one inner chunk [0:128, 0:128]": (slice(0, 128), slice(0, 128)),
    "one shard's area [0:512, 0:512]": (slice(0, 512), slice(0, 512)),
    "a row band [0:128, :]": (slice(0, 128), slice(None)),
    "whole array": (slice(None), slice(None)),
}
table = []
for layout, arr in [("per chunk", plain), ("sharded", sharded)]:
    counting = CountingStore(arr.store)
    view = zf.open_array(counting, mode="r")
    for what, sel in reads.items():
        counting.reset()
        got = view[sel]
        assert np.array_equal(got, image[sel])
        c = counting.counts
        table.append((what, layout, c["get"], c["get_range"], c["bytes read"]))

print(f"{'read':34s} {'layout':10s} {'get':>5s} {'ranged':>7s} {'KiB read':>9s}")
for what, layout, g, r, b in table:
    print(f"{what:34s} {layout:10s} {g:5d} {r:7d} {b / 1024:9.0f}")

# %%
whats = list(reads)
per = [next(t for t in table if t[0] == w and t[1] == "per chunk") for w in whats]
sh = [next(t for t in table if t[0] == w and t[1] == "sharded") for w in whats]
pos = np.arange(len(whats))
plt.figure(figsize=(9, 3.8))
plt.bar(pos - 0.2, [t[2] + t[3] for t in per], 0.4, label="one object per chunk")
plt.bar(pos + 0.2, [t[2] + t[3] for t in sh], 0.4, label="512×512 shards")
plt.xticks(pos, whats, rotation=12)
plt.yscale("log")
plt.ylabel("storage requests")
plt.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# On an object store every request costs latency (tens of milliseconds) and
# money, and providers limit requests per second per prefix
# ([S3](https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html),
# [GCS](https://cloud.google.com/storage/docs/request-rate)); S3's
# `ListObjectsV2` returns at most 1,000 keys per call, so listing a million
# chunks takes a thousand requests. Fewer, larger objects are cheaper on
# all three counts — while a reader can still fetch a single small chunk.
#
# ## Writes: the shard is the unit
#
# A shard is one object, so writing part of it is a read-modify-write of the
# whole shard, and concurrent writers to one shard take the shard's lock
# (the same per-object lock as a partial chunk write). Writes that cover
# whole shards need no read and no lock. Count the requests for writing one
# inner chunk versus one whole shard:

# %%
counting = CountingStore(sharded.store)
view = zf.open_array(counting, mode="r+")
for what, sel in [
    ("one inner chunk", (slice(0, 128), slice(0, 128))),
    ("one whole shard", (slice(0, 512), slice(0, 512))),
]:
    counting.reset()
    view[sel] = image[sel]
    c = counting.counts
    print(f"write {what:16s}: {c['get'] + c['get_range']} reads, {c['set']} writes")

# %% [markdown]
# ## Streaming a sharded array
#
# `chunk_stream` and `parallel_chunk_map` go over the **inner** chunks, shard
# by shard, one task reading a group of a shard's inner chunks with one index
# request — so the unit you process stays small while the unit of I/O is
# large.

# %%
counting = CountingStore(sharded.store)
view = zf.open_array(counting, mode="r")
counting.reset()
first = [idx for idx, _ in view.chunk_stream(parallel=4)][:6]  # reads them all
print("first inner chunk indices streamed:", first)
n_inner = view.nchunks  # inner chunks: nchunks counts them, nshards the shards
print(
    f"requests to stream all {n_inner} inner chunks:",
    counting.counts["get"] + counting.counts["get_range"],
)

# %% [markdown]
# ## When shards help — and when they don't
#
# * **Yes:** many small chunks on an object store (millions of objects,
#   per-request cost, listing) — the main reason shards exist.
# * **Yes:** file systems with small-file limits (inode quotas, HPC parallel
#   file systems).
# * **Yes:** data written once, in whole shards (ingest, `to_zarr` with
#   shard-aligned blocks) — no read-modify-write at all.
# * **Fine:** reads of single small chunks at random — an index read plus
#   one range read per chunk (indices are cached per operation).
# * **No:** many writers updating small parts of one shard at the same
#   time — they serialise on the shard's lock and each rewrites the whole
#   shard.
# * **Little to gain:** local disk, chunks already ≥ 1 MiB.
#
# Pick the inner chunk for the **reads** you expect (the unit of decoding)
# and the shard for the **storage** (objects of tens to hundreds of MiB on
# object stores), and write in whole shards where you can.

# %%
shutil.rmtree(workdir, ignore_errors=True)
print("removed", workdir)
