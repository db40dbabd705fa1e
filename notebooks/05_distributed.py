# %% [markdown]
# # zarrflow on a Dask cluster
#
# Every zarrflow chunk operation is a Dask task, so the code of the other
# notebooks runs on a `dask.distributed` cluster unchanged: with a `Client`
# active, `scheduler=None` (the default everywhere) means "the cluster".
# This notebook starts a small `LocalCluster` — two worker processes on this
# machine — and runs `to_dask`, `to_zarr`, `chunk_stream` and
# `parallel_chunk_map` on it, with progress.
#
# A real cluster differs in one way that matters: **workers must be able to
# reach the store.** A local path works here because the workers share this
# machine's disk; on a real cluster use shared storage or an object store
# (`s3://…` with `storage_options`). A `memory://` store does not work
# across processes: each worker would see its own, empty memory.

# %% [markdown]
# > **About the numbers.** Every timing in this notebook is measured when it
# > runs, on whatever machine runs it — nothing is pasted in. On a laptop, a
# > CI runner or a shared server the absolute times move from run to run; the
# > *ratios* between measurements taken in the same run are what to read.
# > The text says what to expect and why; the cells print what actually happened.

# %%
import os
import shutil
import sys
import tempfile
import time

import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from dask.utils import key_split
from distributed import Client, LocalCluster, get_task_stream

import zarrflow as zf
from zarrflow.parallel.progress import TextProgressBar

workdir = tempfile.mkdtemp(prefix="zarrflow-nb05-")
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
# ## An array on shared storage
#
# The seed array again — 1000×1000 `int32`, 100×100 chunks — on local disk,
# written here with the local threaded scheduler before any cluster exists.

# %%
rng = np.random.default_rng(5)
data = rng.integers(0, 1000, size=(1000, 1000), dtype="int32")
a = zf.create(f"{workdir}/seed.zarr", shape=data.shape, chunks=(100, 100), dtype="int32")
a[:] = data
print(a, "| stored chunks:", a.nchunks_initialized)

# %% [markdown]
# ## Start a cluster
#
# Two worker processes with one thread each. `dashboard_address="127.0.0.1:0"`
# lets the dashboard pick a free port; open the printed link to watch the
# task stream while the cells below run (needs `bokeh`). From here on the
# client is Dask's default scheduler, so zarrflow's parallel operations —
# `to_dask`, `to_zarr`, `chunk_stream`, `parallel_chunk_map` and reads that
# span many chunks — run on the workers (small reads and `a[...] = value`
# stay in this process). The array travels to the workers pickled as its
# store URL and metadata, never as data.

# %%
cluster = LocalCluster(
    n_workers=2,
    threads_per_worker=1,
    processes=True,
    dashboard_address="127.0.0.1:0",
    silence_logs=40,
)
client = Client(cluster)
print("dashboard:", client.dashboard_link)
print(
    "workers:",
    len(client.scheduler_info()["workers"]),
    "| threads:",
    sum(client.nthreads().values()),
)

# %% [markdown]
# ## `to_dask` on the cluster
#
# `a.to_dask()` builds the graph in the client; `compute()` runs the read
# tasks on the workers and only the result (here a few numbers) comes back.
# `get_task_stream` records what the dashboard's *Task Stream* shows: every
# task, on which worker, from when to when. The first job on fresh workers
# also imports zarrflow there, so we run one before the one we record.

# %%
x = a.to_dask(chunks_per_task=4)
x.sum().compute()  # warm-up: the workers import zarrflow and numcodecs
t0 = time.perf_counter()
with get_task_stream(client) as task_stream:
    total, mean = da.compute(x.sum(), x.mean())
print(
    f"sum={int(total)}, mean={float(mean):.3f} in {time.perf_counter() - t0:.2f} s "
    f"over {x.npartitions} read tasks"
)
assert int(total) == int(data.sum(dtype="int64"))


# %%
def plot_task_stream(records, title):
    """One row per worker, one bar per task run, coloured by task name prefix."""
    runs = [
        (record["worker"], key_split(record["key"]), span["start"], span["stop"])
        for record in records
        for span in record["startstops"]
        if span["action"] == "compute"
    ]
    workers = sorted({worker for worker, *_ in runs})
    origin = min(start for *_, start, _ in runs)
    colours = {}
    _, ax = plt.subplots(figsize=(9, 2.6))
    for worker, prefix, start, stop in runs:
        colour = colours.setdefault(prefix, f"C{len(colours)}")
        ax.barh(
            workers.index(worker),
            (stop - start) * 1e3,
            left=(start - origin) * 1e3,
            color=colour,
            edgecolor="white",
            linewidth=0.3,
        )
    ax.set_yticks(range(len(workers)), labels=[f"worker {i}" for i in range(len(workers))])
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    ax.legend(handles, list(colours), loc="upper left", bbox_to_anchor=(1, 1), fontsize=8)
    ax.set(xlabel="time (ms)", title=title)
    plt.tight_layout()
    plt.show()


plot_task_stream(task_stream.data, f"sum and mean of {a.nchunks} chunks on 2 workers")

# %% [markdown]
# ## `to_zarr` on the cluster, with progress
#
# `progress_callback(done, total)` counts finished write tasks; on a cluster
# it is fed from the futures completing, and always runs in your process.
# Blocks not aligned with chunks are rechunked to one writer per chunk, as on
# threads (`strategy="lock"` would use a `distributed.Lock` per shared chunk).

# %%
y = (x.astype("float32") - float(mean)) / 100
out = zf.to_zarr(
    y,
    f"{workdir}/centred.zarr",
    chunks=(100, 100),
    progress_callback=TextProgressBar("to_zarr on 2 workers", stream=sys.stdout),
)
print(out)
np.testing.assert_allclose(out[0:3, 0:3], (data[0:3, 0:3] - float(mean)) / 100, rtol=1e-5)


# %% [markdown]
# ## `chunk_stream` from the cluster
#
# The workers read and decode; chunks travel to you, at most
# `2 × parallel` at a time, in grid order with `ordered=True`.


# %%
def report(done, total):
    if done % 25 == 0 or done == total:
        print(f"  streamed {done}/{total}")


n, checksum = 0, 0
for _, chunk in a.chunk_stream(parallel=4, progress_callback=report):
    n += 1
    checksum += int(chunk.sum(dtype="int64"))
print(n, "chunks, sum matches:", checksum == int(data.sum(dtype="int64")))


# %% [markdown]
# ## `parallel_chunk_map`: ship the function, not the data
#
# `fn(chunk_index, chunk)` runs in the task that reads the chunk, on a
# worker; only its result travels back. For a per-chunk summary that is a
# few bytes instead of 40 KB. On a cluster `reduce_chunks` goes further: it
# is a tree reduction on the workers. Each leaf task reads a batch of chunks,
# applies `fn` and folds the results with `combine`; merge tasks fold up to
# eight finished leaves or merges at a time, so only the final value travels
# to the client (`combine` must be associative and commutative).


# %%
def chunk_stats(idx, chunk):
    return idx, int(chunk.min()), int(chunk.max())


stats = [r for _, r in a.parallel_chunk_map(chunk_stats)]
peak = a.reduce_chunks(lambda idx, c: int(c.max()), max)
print(stats[:3], "...")
print("max over all chunks:", peak, "| numpy:", int(data.max()))

prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
print(
    "zarrflow task prefixes the scheduler has seen:",
    [p for p in prefixes if p.startswith("zarrflow")],
)

# %% [markdown]
# ## Locks on a cluster
#
# Partial writes from several workers to one chunk are conditional (stored
# only if the chunk is unchanged since it was read, else read again and
# retried), so none is lost; a `distributed.Lock` named from the store URL
# and chunk key, which all workers agree on, makes them take turns so that
# few have to retry. The same interleaved write as notebook 02's lock plan —
# blocks of 30 columns into chunks of 100 — loses nothing:

# %%
values = np.repeat(np.arange(1, 35, dtype="int32"), 30)[None, :1000].repeat(100, 0)
target = zf.create(f"{workdir}/locked.zarr", shape=(100, 1000), chunks=(100, 100), dtype="int32")
plan = zf.to_zarr(
    da.from_array(values, chunks=(100, 30)), target, strategy="lock", compute=False
).compute()
print(plan.strategy, "-", plan.reason, "| shared chunk boundaries:", plan.shared_chunks)
print("correct:", np.array_equal(target[:], values))

# %% [markdown]
# ## Close the cluster
#
# Always close the client and the cluster: they hold processes and ports.
# (In a script, `with LocalCluster(...) as cluster, Client(cluster) as
# client:` does it for you.)

# %%
client.close()
cluster.close()
print("cluster closed")

# %%
shutil.rmtree(workdir, ignore_errors=True)
print("removed", workdir)
