# %% [markdown]
# # Codecs: v2 compressors, v3 pipelines, and the GIL
#
# A Zarr codec turns a chunk into stored bytes and back. This notebook shows
# how zarrflow spells codecs for both Zarr formats, measures compression
# ratio and encode/decode speed per codec on a realistic field, and then
# tests a claim from ExZarr's parallel I/O guide:
#
# > *Python's Global Interpreter Lock prevents threads from executing
# > Python bytecode in parallel … CPU-bound operations (decompression,
# > codec pipeline execution) are serialized.*
#
# The first half of that sentence is true; the conclusion does not follow.
# The GIL serialises *Python bytecode*; a C extension may release it while
# it works on a buffer. numcodecs' Cython codecs wrap their C calls in
# `with nogil:` (for example `ZSTD_decompress` in
# [numcodecs/zstd.pyx](https://github.com/zarr-developers/numcodecs/blob/main/numcodecs/zstd.pyx)
# and `LZ4_decompress_safe` in `lz4.pyx`), and CPython's `zlib`, `bz2` and
# `lzma` modules release it around their library calls. We measure what
# that means per codec, below.

# %% [markdown]
# > **About the numbers.** Every timing in this notebook is measured when it
# > runs, on whatever machine runs it — nothing is pasted in. On a laptop, a
# > CI runner or a shared server the absolute times move from run to run; the
# > *ratios* between measurements taken in the same run are what to read.
# > The text says what to expect and why; the cells print what actually happened.

# %%
import functools
import json
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import matplotlib.pyplot as plt
import numpy as np

import zarrflow as zf
from zarrflow.codecs import CodecPipeline

workdir = tempfile.mkdtemp(prefix="zarrflow-nb03-")
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
# ## Zarr v2: one compressor, optional filters
#
# A v2 array stores a `compressor` (a numcodecs config) and a list of
# `filters` (numcodecs configs applied before it) in `.zarray`. `create`
# takes a compressor as a name, `(name, {options})`, a numcodecs codec, a
# config dict, or `None`.

# %%
v2 = zf.create(
    f"{workdir}/v2.zarr",
    shape=(1000, 1000),
    chunks=(250, 250),
    dtype="int32",
    zarr_format=2,
    compressor=("blosc", {"cname": "lz4", "clevel": 5, "shuffle": 1}),
    filters=[("delta", {"dtype": "<i4"})],
)
print(json.dumps(json.loads(v2.metadata.to_documents()[".zarray"]), indent=1))

# %% [markdown]
# ## Zarr v3: a codec pipeline
#
# A v3 array stores one `codecs` list in `zarr.json`, in three stages:
# array→array codecs (`transpose`, filters), exactly one array→bytes codec
# (`bytes`, or `sharding_indexed`), then bytes→bytes codecs (compressors,
# `crc32c` checksums). The same `compressor=` and `filters=` arguments build
# that list; `codecs=` gives it explicitly.

# %%
v3 = zf.create(
    f"{workdir}/v3.zarr", shape=(1000, 1000), chunks=(250, 250), dtype="int32", compressor="zstd"
)
print(json.dumps(v3.metadata.codecs, indent=1))

v3_explicit = zf.create(
    f"{workdir}/v3x.zarr",
    shape=(1000, 1000),
    chunks=(250, 250),
    dtype="int32",
    codecs=[
        {"name": "bytes", "configuration": {"endian": "little"}},
        {
            "name": "blosc",
            "configuration": {
                "cname": "zstd",
                "clevel": 3,
                "shuffle": "bitshuffle",
                "typesize": 4,
                "blocksize": 0,
            },
        },
        {"name": "crc32c"},
    ],
)
print([c["name"] for c in v3_explicit.metadata.codecs])

# %% [markdown]
# Both arrays hold the same data and read the same way; only the stored
# description differs. zarrflow writes exactly what zarr-python 3 writes, so
# either library reads the other's arrays.
#
# ## A realistic field
#
# Compression ratios depend entirely on the data, so a benchmark on random
# numbers (incompressible) or zeros (trivially compressible) says nothing.
# We use a smooth 2-D field with measurement-like noise, stored as
# `float32` — like the *large* workload of zarrflow's benchmarks, smaller.

# %%
rng = np.random.default_rng(1)
y, x = np.mgrid[0:1024, 0:1024]
field = (
    20
    + 8 * np.sin(x / 90) * np.cos(y / 60)
    + 0.5 * np.sin((x + y) / 15)
    + rng.normal(0, 0.05, x.shape)
).astype("float32")
del x, y

plt.figure(figsize=(4, 4))
plt.imshow(field, cmap="RdBu_r")
plt.title("the test field (1024 × 1024 float32)")
plt.axis("off")
plt.show()

# %% [markdown]
# ## Ratio and speed per codec
#
# For each codec we create an array with 256×256 chunks, then time the
# codec pipeline zarrflow builds for it (`zarrflow.codecs.CodecPipeline`)
# encoding and decoding the 8 chunks of the field's top half, in one
# thread: codec cost only — no storage, no scheduling. Speeds are MB/s of
# uncompressed data.

# %%
CODECS = {
    "zstd-3": "zstd",
    "zstd-9": ("zstd", {"level": 9}),
    "blosc-lz4 shuffle": ("blosc", {"cname": "lz4", "clevel": 5, "shuffle": 1}),
    "blosc-zstd bitshuffle": ("blosc", {"cname": "zstd", "clevel": 3, "shuffle": 2}),
    "lz4": "lz4",
    "gzip-5": ("gzip", {"level": 5}),
    "zlib-5": ("zlib", {"level": 5}),
    "bz2": "bz2",
    "lzma": ("lzma", {"preset": 1}),
    "none": None,
}
chunk_shape = (256, 256)
chunks = [
    np.ascontiguousarray(field[i : i + 256, j : j + 256])
    for i in range(0, 512, 256)
    for j in range(0, 1024, 256)
]
nbytes = sum(c.nbytes for c in chunks)


def pipeline_for(name, shape=chunk_shape):
    arr = zf.create(
        f"memory://nb03-{name}-{shape[0]}",
        shape=shape,
        chunks=shape,
        dtype="float32",
        compressor=CODECS[name],
        overwrite=True,
    )
    return CodecPipeline.from_metadata(arr.metadata)


def encode_all(pipe):
    return [pipe.encode(c) for c in chunks]


def decode_all(pipe, encoded, out):
    for e in encoded:
        pipe.decode(e, out=out)


rows = []
for name in CODECS:
    pipe = pipeline_for(name)
    encoded = [pipe.encode(c) for c in chunks]  # also the warm-up
    out = np.empty(chunk_shape, dtype="float32")
    assert np.array_equal(pipe.decode(encoded[5]), chunks[5])
    repeat = 1 if name in ("bz2", "lzma") else 3  # the slow ones: one timed run
    t_enc = median_time(functools.partial(encode_all, pipe), repeat, warmup=False)
    t_dec = median_time(functools.partial(decode_all, pipe, encoded, out), repeat, warmup=False)
    rows.append((name, nbytes / sum(map(len, encoded)), nbytes / t_enc / 1e6, nbytes / t_dec / 1e6))

print(f"{'codec':22s} {'ratio':>6s} {'encode MB/s':>12s} {'decode MB/s':>12s}")
for name, ratio, enc, dec in rows:
    print(f"{name:22s} {ratio:6.2f} {enc:12.0f} {dec:12.0f}")

# %%
names = [r[0] for r in rows]
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=True)
for ax, col, title, log in [
    (axes[0], 1, "compression ratio", False),
    (axes[1], 2, "encode MB/s (1 thread)", True),
    (axes[2], 3, "decode MB/s (1 thread)", True),
]:
    ax.barh(names, [r[col] for r in rows], color="tab:blue" if col == 1 else "tab:orange")
    ax.set_title(title)
    if log:
        ax.set_xscale("log")
axes[0].invert_yaxis()
plt.tight_layout()
plt.show()


# %% [markdown]
# What to look for: blosc with a shuffle filter compresses floating-point
# data better than a compressor without one (shuffling groups the similar
# high-order bytes of neighbouring floats); plain `lz4` barely compresses
# noisy floats at all; a higher zstd level costs encode time and may gain
# little ratio on noisy data (compare zstd-3 and zstd-9) while decoding
# stays fast; gzip/zlib are slower at both ends; bz2 and lzma buy some ratio
# with a great deal of time — compare them with blosc + bitshuffle. `none`
# is the ceiling — a copy. Read the printed table for this machine's
# numbers.
#
# ## Do threads decode in parallel?
#
# Two measurements per codec, in the same run:
#
# 1. **GIL probe.** A worker thread decodes one 8 MiB chunk after another —
#    a worker thread, as in a Dask task. Meanwhile a probe thread wakes
#    every half millisecond and needs the GIL for a moment to count. If the
#    codec holds the GIL while it works, the probe stalls until the call
#    returns; if the codec releases it, the probe keeps counting. We report
#    the probe's rate while the worker decodes divided by its rate while the
#    worker sleeps: near 1 = the GIL is free during decoding, near 0 = held.
#    A pure-Python loop (which holds the GIL and yields it only at the
#    interpreter's 5 ms switch interval) is the reference for "held".
# 2. **Thread scaling.** Decode 16 chunks of 256 KiB with 1 thread and with
#    `max(2, cores)` threads, and report the wall-time speedup. A
#    GIL-releasing codec can approach *cores*× on an idle machine; a
#    GIL-holding one stays at 1×.
#
# The probe answers *whether* the GIL is released. The speedup is what you
# get on this machine right now — on a busy or small machine it can fall
# far below the ideal for reasons that have nothing to do with the GIL
# (other processes on the cores, two threads sharing one core). bz2 and
# lzma are left out to keep the notebook quick; CPython's `_bz2` and
# `_lzma` modules release the GIL around their library calls too
# (`Py_BEGIN_ALLOW_THREADS` in `Modules/_bz2module.c` and
# `Modules/_lzmamodule.c`).


# %%
class GilProbe:
    """A thread that wakes every 0.5 ms and needs the GIL for a moment to count."""

    def __init__(self):
        self.ticks, self.running = 0, True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            time.sleep(0.0005)
            self.ticks += 1

    def _rate(self, work):
        worker = threading.Thread(target=work)
        n0, t0 = self.ticks, time.perf_counter()
        worker.start()
        worker.join()
        return (self.ticks - n0) / (time.perf_counter() - t0)

    def free_fraction(self, fn, seconds=0.15, repeat=3):
        """Probe rate while a worker thread runs fn() repeatedly / while it sleeps."""
        t0 = time.perf_counter()
        fn()
        calls = max(2, round(seconds / (time.perf_counter() - t0)))
        ratios = []
        for _ in range(repeat):
            idle = self._rate(lambda: time.sleep(seconds))
            busy = self._rate(lambda: [fn() for _ in range(calls)])
            ratios.append(busy / idle)
        return float(np.median(ratios))

    def stop(self):
        self.running = False
        self.thread.join()


def python_loop():  # pure Python: holds the GIL between forced switches
    s = 0
    for i in range(200_000):
        s += i


# %%
GIL_CODECS = ["zstd-3", "blosc-lz4 shuffle", "blosc-zstd bitshuffle", "lz4", "gzip-5", "zlib-5"]
big = np.ascontiguousarray(np.tile(field, (2, 1)))  # 2048 x 1024: one 8 MiB chunk
probe = GilProbe()
gil = {}
for name in GIL_CODECS:
    pipe = pipeline_for(name, big.shape)
    enc, out = pipe.encode(big), np.empty_like(big)
    gil[name] = {"probe": probe.free_fraction(functools.partial(pipe.decode, enc, out=out))}
reference = probe.free_fraction(python_loop)
probe.stop()
print(f"reference, a pure-Python loop: {reference:.2f}")
for name, r in gil.items():
    print(f"{name:22s} GIL free during decode: {r['probe']:.2f}")


# %% tags=["readme-figure"]
def decode_in_threads(pipe, jobs, threads):
    """Decode every (encoded, out) job on a pool of `threads` threads."""
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda job: pipe.decode(job[0], out=job[1]), jobs))


n_threads = max(2, cores)
for name in GIL_CODECS:
    pipe = pipeline_for(name)
    jobs = [(pipe.encode(c), np.empty(chunk_shape, dtype="float32")) for c in chunks] * 2
    t1 = median_time(functools.partial(decode_in_threads, pipe, jobs, 1), 3)
    tn = median_time(functools.partial(decode_in_threads, pipe, jobs, n_threads), 3)
    gil[name]["speedup"] = t1 / tn

names = list(gil)
fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
axes[0].barh(names, [gil[n]["probe"] for n in names])
axes[0].axvline(reference, color="red", ls="--", label="pure-Python loop")
axes[0].set(xlim=(0, 1.2), title="GIL free during decode (probe)")
axes[0].legend(loc="lower right")
axes[1].barh(names, [gil[n]["speedup"] for n in names], color="tab:green")
axes[1].axvline(1, color="gray", lw=1)
axes[1].axvline(n_threads, color="gray", ls=":", label=f"{n_threads} threads")
axes[1].set(title=f"decode speedup, {n_threads} threads vs 1")
axes[1].legend(loc="lower right")
axes[0].invert_yaxis()
plt.tight_layout()
plt.show()

for n in names:
    held = gil[n]["probe"] < max(0.3, 2 * reference)
    verdict = "holds the GIL" if held else "releases the GIL"
    print(f"{n:22s} probe {gil[n]['probe']:.2f}  speedup {gil[n]['speedup']:.2f}x  -> {verdict}")

# %% [markdown]
# **What this means for zarrflow.** For the codecs whose probe stays near 1,
# decompression runs outside the GIL, so zarrflow's default threaded
# scheduler decodes on every core and no process pool is needed. A codec
# that holds the GIL — or a pure-Python filter in front of it — serialises
# decoding in one process; for those, run zarrflow on the `"processes"`
# scheduler or a `distributed` cluster with several worker processes
# (notebook 05), where each process has its own GIL.
#
# Speedups below the ideal *cores*× come from the machine (other load, two
# threads sharing a core) and from work that does hold the GIL: the Python
# glue around each call, and allocating output buffers (zarrflow decodes
# straight into the output array when it can, which avoids that).
#
# ## Choosing a codec
#
# * **Default:** zstd level 3 (`compressor="zstd"`) — good ratio, fast
#   decode, supported by every Zarr implementation.
# * **Floating-point data, fast reads:** blosc with `shuffle` or
#   `bitshuffle`.
# * **Archival, read rarely:** zstd at a high level; bz2/lzma only if the
#   ratio gain is worth their decode cost (measure it above).
# * **Interoperability with old v2 readers:** blosc, zlib, gzip.
# * **Integrity:** add `{"name": "crc32c"}` (v3) to detect corrupt chunks —
#   zarrflow raises `CorruptChunkError` naming the chunk key.

# %%
shutil.rmtree(workdir, ignore_errors=True)
print("removed", workdir)
