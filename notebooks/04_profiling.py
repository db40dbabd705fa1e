# %% [markdown]
# # Profiling: where a read's time goes
#
# Reading a Zarr array costs three kinds of time:
#
# * **storage I/O** — fetching each chunk's bytes (here from local files);
# * **decode** — running the codec pipeline on them;
# * **scheduling and assembly** — creating tasks, handing them to threads,
#   copying decoded chunks into the output.
#
# The first two scale with the *data*; the third scales with the *number of
# chunks and tasks*. This notebook splits a whole-array read into those
# parts for several chunk sizes, then shows why `to_dask` puts several
# small chunks into one task.

# %% [markdown]
# > **About the numbers.** Every timing in this notebook is measured when it
# > runs, on whatever machine runs it — nothing is pasted in. On a laptop, a
# > CI runner or a shared server the absolute times move from run to run; the
# > *ratios* between measurements taken in the same run are what to read.
# > The text says what to expect and why; the cells print what actually happened.

# %%
import functools
import os
import shutil
import tempfile
import time

import dask
import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from dask.diagnostics import Profiler

import zarrflow as zf

workdir = tempfile.mkdtemp(prefix="zarrflow-nb04-")
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
# ## One array, five chunk sizes
#
# The same 1024×1024 `float32` field (4 MiB) is stored five times, with
# square chunks of 32 to 512 elements a side: from 1024 chunks of 4 KiB to
# 4 chunks of 1 MiB.

# %%
rng = np.random.default_rng(7)
y, x = np.mgrid[0:1024, 0:1024]
field = (np.sin(x / 80) * np.cos(y / 50) + rng.normal(0, 0.01, x.shape)).astype("float32")
del x, y

sides = [32, 64, 128, 256, 512]
arrays = {}
for s in sides:
    arr = zf.create(
        f"{workdir}/c{s}.zarr", shape=field.shape, chunks=(s, s), dtype="float32", compressor="zstd"
    )
    arr[:] = field
    arrays[s] = arr
    print(f"chunks {s:3d}x{s:<3d}: {arr.nchunks:5d} chunks of {s * s * 4 / 1024:6.0f} KiB")

# %% [markdown]
# ## Splitting the time
#
# `zf.profile()` gathers zarrflow's telemetry: every chunk operation reports
# its phases — the **storage** requests (bytes, latency), the **decode**
# (which codecs), the **place** copies into the result — and the profile
# sums them per operation and phase. For each array we read
# `a.to_dask(chunks_per_task=1).compute(scheduler="sync")` — one Dask task
# per chunk, run one after the other in this thread, so the phases add up —
# inside a profile. What the wall-clock time has beyond the phases is the
# scheduling and assembly overhead (Dask building and running the graph,
# concatenating blocks).


# %%
def profiled_read(arr):
    graph = arr.to_dask(chunks_per_task=1)
    graph.compute(scheduler="sync")  # warm-up
    runs = []
    for _ in range(3):
        with zf.profile() as p:
            graph.compute(scheduler="sync")
        runs.append(p)
    return sorted(runs, key=lambda p: p.wall_seconds)[1]  # the median run


parts, profiles = {}, {}
for s, arr in arrays.items():
    p = profiles[s] = profiled_read(arr)
    phases = {
        "storage I/O": p.seconds("storage"),
        "decode": p.seconds("decode"),
        "place": p.seconds("place"),
    }
    parts[s] = {
        **phases,
        "scheduling + assembly": max(0.0, p.wall_seconds - sum(phases.values())),
        "total": p.wall_seconds,
        "n": arr.nchunks,
    }

for s, p in parts.items():
    print(
        f"{s:3d}²: total {p['total'] * 1e3:7.1f} ms = I/O {p['storage I/O'] * 1e3:6.1f} + decode "
        f"{p['decode'] * 1e3:6.1f} + place {p['place'] * 1e3:5.1f} + overhead "
        f"{p['scheduling + assembly'] * 1e3:6.1f}   ({p['total'] / p['n'] * 1e6:6.0f} µs per chunk)"
    )

# %% [markdown]
# The profile's own table, for the 64² array (`p.summary()`; `p.to_dataframe()`
# gives the same rows for plotting):

# %%
print(profiles[64].summary())

# %%
labels = [f"{s}²\n({parts[s]['n']} chunks)" for s in sides]
kinds = ["storage I/O", "decode", "place", "scheduling + assembly"]
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
bottom = np.zeros(len(sides))
for kind in kinds:
    vals = np.array([parts[s][kind] * 1e3 for s in sides])
    axes[0].bar(labels, vals, bottom=bottom, label=kind)
    bottom += vals
axes[0].set(
    title="reading the whole 4 MiB array, one task per chunk",
    ylabel="time (ms)",
    xlabel="chunk size",
)
axes[0].legend()
bottom = np.zeros(len(sides))
for kind in kinds:
    vals = np.array([parts[s][kind] / parts[s]["n"] * 1e6 for s in sides])
    axes[1].bar(labels, vals, bottom=bottom, label=kind)
    bottom += vals
axes[1].set(title="the same, per chunk", ylabel="µs per chunk", yscale="log", xlabel="chunk size")
plt.tight_layout()
plt.show()

# %% [markdown]
# **Reading the chart.** With 4 KiB chunks the read of the same 4 MiB is
# dominated by per-chunk costs: one file open and read per chunk, one codec
# call per chunk, and one task per chunk. As chunks grow, the per-chunk
# costs are paid fewer times and decode — proportional to the data — takes
# over. On the right, per-chunk time is nearly flat for small chunks (the
# fixed costs) and grows with size for large ones (the data).
#
# Practical rules:
#
# * Aim for chunks of roughly **1–16 MiB** uncompressed on object stores (a
#   request costs tens of milliseconds) and **256 KiB and up** on local
#   disks. Tiny chunks are slow everywhere.
# * If you cannot change the chunking (someone else wrote the data), change
#   the *tasks* instead — next section.
#
# ## Several chunks per task
#
# Dask spends tens to hundreds of microseconds scheduling each task — a
# constant that does not depend on what the task does. Measure it here with
# tasks that do nothing:

# %%
n_tasks = 500
empty = da.zeros(n_tasks, chunks=1)
t_graph = median_time(lambda: empty.sum().compute(scheduler="threads"), 3)
print(
    f"{n_tasks} trivial tasks (plus their sum): {t_graph * 1e3:.0f} ms, "
    f"about {t_graph / n_tasks * 1e6:.0f} µs per task"
)

# %% [markdown]
# A task that reads one 4 KiB chunk does a few tens of microseconds of work,
# so with one chunk per task most of the time is scheduling. That is why
# `Array.to_dask()` groups chunks: starting from one chunk, a block grows
# along the last axis, then the one before it, until it holds about
# `zarrflow.task_target_bytes` (4 MiB) of uncompressed data or spans the
# axis. Blocks stay on chunk boundaries, so no chunk is read by two tasks,
# and `chunks_per_task=` overrides the rule. (`chunk_stream` applies the
# same idea: chunks under 256 KiB travel several to a task.)
#
# Our whole array is only 4 MiB, so the default target would make it a
# single task. To see the rule at work on a small example we lower the
# target to 1 MiB — four tasks — with Dask's config, where all of
# zarrflow's settings live (`zarrflow.*`). Compare, on the threaded
# scheduler:

# %%
rows = []
with dask.config.set({"zarrflow.task_target_bytes": 2**20}):
    for s in sides:
        arr = arrays[s]
        grouped, single = arr.to_dask(), arr.to_dask(chunks_per_task=1)
        t_grouped = median_time(functools.partial(grouped.compute, scheduler="threads"), 3)
        t_single = median_time(functools.partial(single.compute, scheduler="threads"), 3)
        rows.append(
            (s, single.npartitions, grouped.npartitions, grouped.chunksize, t_single, t_grouped)
        )

print(
    f"{'chunk':>6s} {'tasks (1/task)':>15s} {'tasks (grouped)':>16s} {'block':>13s} "
    f"{'1/task ms':>10s} {'grouped ms':>11s}"
)
for s, n1, ng, block, t1, tg in rows:
    print(f"{s:5d}² {n1:15d} {ng:16d} {block!s:>13s} {t1 * 1e3:10.1f} {tg * 1e3:11.1f}")

plt.figure(figsize=(6.5, 3.8))
plt.plot([f"{r[0]}²" for r in rows], [r[4] * 1e3 for r in rows], "o-", label="one chunk per task")
plt.plot(
    [f"{r[0]}²" for r in rows], [r[5] * 1e3 for r in rows], "s-", label="grouped (1 MiB per task)"
)
plt.yscale("log")
plt.xlabel("chunk size")
plt.ylabel("whole-array read (ms)")
plt.legend()
plt.show()

# %% [markdown]
# Grouping should win by a wide margin for small chunks and make no
# difference once a chunk is as big as the target (then a block is one
# chunk). Grouping has a cost too — fewer tasks means less parallelism —
# which is why the target is a few MiB per task rather than "everything in
# one task".
#
# ## Profiling your own reads
#
# * `dask.diagnostics.Profiler` (and `ResourceProfiler`) record every task
#   run on the local schedulers. zarrflow's read tasks are named
#   `zarrflow-read-<token>` and its write tasks `zarrflow-write-<token>`.
# * Dask's graph optimisation may *fuse* a read with what follows it (a
#   `sum`, say) into one task, named after the last operation: the read is
#   still there, inside.
# * On a cluster, the dashboard's task stream shows the same names
#   (notebook 05).
# * `with zf.profile() as p:` around any zarrflow work — reads, writes,
#   `chunk_stream`, `parallel_chunk_map`, on threads or on a cluster (the
#   workers' sums come back) — then `print(p.summary())`: the quickest way to
#   tell whether storage, codec or scheduling is your bottleneck. The CLI's
#   `copy`, `stats` and `bench` take `--profile` for the same table.
# * With no profile active the phases are not even timed: the reporting
#   sites test one list and go on.


# %%
def task_summary(collection):
    with Profiler() as prof:
        collection.compute(scheduler="threads")
    names = {}
    for r in prof.results:
        prefix = r.key[0] if isinstance(r.key, tuple) else str(r.key)
        names.setdefault(prefix.rsplit("-", 1)[0], []).append(r.end_time - r.start_time)
    for prefix, durations in names.items():
        print(
            f"  {prefix[:36]:36s} {len(durations):5d} tasks, "
            f"median {np.median(durations) * 1e6:7.0f} µs"
        )


x64 = arrays[64].to_dask(chunks_per_task=1)
print("x.compute():")
task_summary(x64)
print("x.sum().compute():")
task_summary(x64.sum())

# %%
shutil.rmtree(workdir, ignore_errors=True)
print("removed", workdir)
