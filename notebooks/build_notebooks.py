"""Generate zarrflow's notebooks, without outputs: ``python notebooks/build_notebooks.py``.

The notebooks are written from the cell lists below so that they can be
reviewed as Python, regenerated after an API change, and committed without
outputs (``tests/test_notebooks.py`` executes them). Cell ids are stable, so
regenerating an unchanged notebook leaves its file unchanged.

Pass notebook names (``01_chunk_streaming`` ...) to build only those.
"""

# Markdown tables and notebook code lines live in strings here and cannot wrap:
# ruff: noqa: E501
from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
NOTEBOOKS: dict[str, Callable[[], list]] = {}


def md(text: str):
    """A markdown cell from an indented triple-quoted string."""
    return new_markdown_cell(textwrap.dedent(text).strip())


def code(*texts: str):
    """A code cell from indented triple-quoted strings (each dedented, then joined)."""
    return new_code_cell("\n\n\n".join(textwrap.dedent(t).strip() for t in texts))


def notebook(name: str):
    """Register a function returning a notebook's cells under ``name``."""

    def register(fn: Callable[[], list]) -> Callable[[], list]:
        NOTEBOOKS[name] = fn
        return fn

    return register


def setup(tag: str, stdlib: tuple[str, ...] = (), third_party: tuple[str, ...] = ()) -> object:
    """The first code cell every notebook shares: imports, a scratch directory, timing."""
    std = sorted({"import os", "import shutil", "import tempfile", "import time", *stdlib})
    third = sorted({"import matplotlib.pyplot as plt", "import numpy as np", *third_party})
    imports = "\n".join(["%matplotlib inline", *std, "", *third, "", "import zarrflow as zf"])
    body = f'''
        workdir = tempfile.mkdtemp(prefix="zarrflow-{tag}-")
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(f"zarrflow {{zf.__version__}} | {{cores}} cores | scratch directory {{workdir}}")


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
        '''
    return code(imports, body)


TIMING_NOTE = """
> **About the numbers.** Every timing in this notebook is measured when it
> runs, on whatever machine runs it — nothing is pasted in. On a laptop, a
> CI runner or a shared server the absolute times move from run to run; the
> *ratios* between measurements taken in the same run are what to read.
> The text says what to expect and why; the cells print what actually happened.
"""


def cleanup() -> object:
    """The last code cell of every notebook: remove the scratch directory."""
    return code(
        """
        shutil.rmtree(workdir, ignore_errors=True)
        print("removed", workdir)
        """
    )


STORE_WRAPPERS = '''
from zarrflow.storage import Store


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
'''


# ---------------------------------------------------------------------------------------
@notebook("01_chunk_streaming")
def chunk_streaming() -> list:
    return [
        md(
            """
            # Chunk streaming: sequential vs parallel

            Chunk streaming processes a Zarr array one chunk at a time, so an array
            far larger than memory can be scanned with a small, fixed amount of RAM.
            This notebook follows ExZarr's chunk-streaming livebook step by step, with
            zarrflow's `Array.chunk_stream` — and measures each claim instead of
            asserting it.

            **What you will learn**

            * sequential streaming (`parallel=1`) and its grid order;
            * parallel streaming, ordered and unordered;
            * bounded concurrency — and why it pays off for slow storage but hardly
              at all for in-memory decoding on a few cores;
            * progress callbacks;
            * filtering chunks *before* they are read (proved with read counts);
            * the memory bound of a parallel stream.

            **Core principle:** chunks are independent. Each one is stored, compressed
            and decoded on its own, so they can be read in any order and at the same
            time. In zarrflow every chunk read is a Dask task.
            """
        ),
        md(TIMING_NOTE),
        setup("nb01", ("import itertools", "import sys", "import tracemalloc")),
        md(
            """
            ## Step 1: a test array

            The *seed* workload of zarrflow's benchmarks: a 1000×1000 `int32` array
            in 100×100 chunks (100 chunks), zstd-compressed, on local disk. We fill
            every chunk — a chunk that was never written is not stored at all and
            reads as the fill value without touching storage, which would make the
            streams below look faster than they are. The data is a smooth field
            plus noise, so it compresses like real measurements do.
            """
        ),
        code(
            """
            rng = np.random.default_rng(42)
            y, x = np.mgrid[0:1000, 0:1000]
            data = (1000 * np.sin(x / 70) * np.cos(y / 90) + rng.normal(0, 20, x.shape)).astype("int32")

            a = zf.create(f"{workdir}/seed.zarr", shape=(1000, 1000), chunks=(100, 100),
                          dtype="int32", compressor="zstd")
            a[:] = data
            a.info
            """
        ),
        md(
            """
            ## Step 2: sequential streaming

            `a.chunk_stream()` returns a lazy iterator of `(chunk_index, chunk)` pairs.
            With the default `parallel=1` each chunk is read in your own thread, in
            grid order: `(0, 0), (0, 1), …, (0, 9), (1, 0), …`. A chunk arrives as a
            decoded NumPy array (chunks at the array's far edge arrive trimmed to the
            array's shape). Nothing is read until you ask for the next item, and
            closing the iterator stops it.
            """
        ),
        code(
            """
            stream = a.chunk_stream()
            t0 = time.perf_counter()
            for idx, chunk in itertools.islice(stream, 10):
                print(idx, chunk.shape, chunk.dtype, f"{chunk.nbytes:,} bytes")
            stream.close()  # stop early: nothing more is read
            print(f"first 10 chunks in {(time.perf_counter() - t0) * 1e3:.1f} ms")
            """
        ),
        md(
            """
            ## Step 3: processing chunks

            A per-chunk statistic is the typical use: here the sum of every chunk,
            checked against NumPy on the same region. `a.chunk_slices(idx)` is the
            region of the array a chunk covers.
            """
        ),
        code(
            """
            sums = {idx: int(chunk.sum(dtype="int64")) for idx, chunk in a.chunk_stream()}
            assert all(sums[i] == data[a.chunk_slices(i)].sum(dtype="int64") for i in sums)
            print(len(sums), "chunk sums; the first three:", list(sums.items())[:3])
            """
        ),
        md(
            """
            Sequential streaming is the right choice when order matters (a running
            state carried from one chunk to the next), when you are debugging, or when
            the work per chunk dwarfs the read.

            ## Step 4: parallel, unordered

            `parallel=N` keeps up to *N* chunk reads in flight, as Dask tasks on the
            threaded scheduler (or on a cluster, see notebook 05). With
            `ordered=False` a chunk is handed to you as soon as it is decoded, so the
            arrival order can differ from the grid order.
            """
        ),
        code(
            """
            grid = list(itertools.product(range(10), range(10)))
            arrival = [idx for idx, _ in a.chunk_stream(parallel=4, ordered=False)]
            print("every chunk exactly once:", sorted(arrival) == grid)
            print("arrived in grid order:   ", arrival == grid)
            print("first arrivals:", arrival[:8])
            """
        ),
        md(
            """
            ## Step 5: parallel, ordered

            With `ordered=True` (the default) reads still run ahead in parallel, but
            finished chunks wait in a small buffer until every earlier chunk has been
            handed over. You get grid order and concurrent reads.
            """
        ),
        code(
            """
            in_order = [idx for idx, _ in a.chunk_stream(parallel=4, ordered=True)]
            print("grid order:", in_order == grid)
            """
        ),
        md(
            """
            ## Step 6: bounded concurrency — two very different workloads

            How much does `parallel=N` buy? It depends on what a chunk read spends its
            time on:

            * **decode-bound** — the seed array on local disk (in the page cache):
              reading 40 KB from memory is nearly free, decompression is the work, and
              decompression needs a CPU core. No more than *cores* chunks can decode
              at once.
            * **latency-bound** — the same array behind a store that waits 5 ms on
              every read, like an object store across a network. A waiting reader
              needs no core, so more readers in flight means more chunks per second,
              up to what the store allows.

            The wrapper below simulates the latency. zarrflow's stores are small
            classes with `get` / `get_range` / `set` / `delete` / `list_prefix`, so
            wrapping one takes a few lines (the same trick counts reads in Step 8).
            """
        ),
        code(
            STORE_WRAPPERS,
            '''

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
            ''',
        ),
        code(
            """
            def stream_all(array, parallel, ordered):
                return sum(1 for _ in array.chunk_stream(parallel=parallel, ordered=ordered))


            levels = [1, 2, 4, 8]
            timings = {}
            runs = [("decode-bound", a, 5, True), ("latency-bound", slow, 2, False)]
            for label, array, repeat, warmup in runs:
                for ordered in (True, False):
                    timings[label, ordered] = [
                        median_time(lambda: stream_all(array, p, ordered), repeat, warmup)
                        for p in levels
                    ]

            fig, axes = plt.subplots(1, 2, figsize=(11, 4))
            for ax, label in zip(axes, ["decode-bound", "latency-bound"]):
                for ordered, style in [(True, "o-"), (False, "s--")]:
                    ms = np.array(timings[label, ordered]) * 1e3
                    ax.plot(levels, ms, style, label=f"ordered={ordered}")
                ideal = timings[label, True][0] * 1e3 / np.array(levels)
                ax.plot(levels, ideal, ":", color="gray", label="perfect scaling")
                ax.set(title=f"{label}: 100 chunks", xlabel="parallel", ylabel="time (ms)",
                       xscale="log", yscale="log")
                ax.set_xticks(levels, labels=[str(p) for p in levels])
                ax.minorticks_off()
                ax.legend()
            plt.tight_layout()
            plt.show()

            for label in ["decode-bound", "latency-bound"]:
                seq = timings[label, True][0]
                best = {p: seq / t for p, t in zip(levels, timings[label, False])}
                print(f"{label:14s} speedup over parallel=1 (unordered): "
                      + ", ".join(f"{p}: {s:.1f}x" for p, s in best.items()))
            """
        ),
        md(
            """
            **How to read this.** The latency-bound stream should fall close to the
            "perfect scaling" line: eight readers waiting at once cut the waiting
            nearly eight-fold, on any number of cores. The decode-bound stream cannot
            do better than the number of cores (printed at the top), and with chunks
            this small (40 KB, tens of microseconds to decode) handing chunks between
            threads costs about as much as decoding them. So zarrflow times the first
            chunks of a local stream, and a stream projected to finish within
            `zarrflow.stream_inline_seconds` (25 ms) simply goes on in your thread:
            the decode-bound curve is flat at about the sequential time, whatever
            `parallel` says. That is the honest version of the livebook's
            "diminishing returns"; notebook 04 shows where such small-chunk time goes.

            The latency-bound stream leaves your thread after its first chunk (5 ms
            is already slow), and the same timing sizes its tasks: about 2 ms of work
            each, here one chunk per task, so 8 readers really keep 8 requests in
            flight. Ordered and unordered cost about the same here: every chunk takes
            about as long as every other, so the in-order buffer rarely waits.
            Unordered pays off when some chunks are much slower than others (a cold
            cache, a slow request). On a cluster, or with `timeout=`, streams always
            run as tasks.

            ## Step 7: progress

            `progress_callback(done, total)` is called after each chunk is handed to
            you, **in your thread** — so it can safely update a widget, a log or a
            progress bar. `total` counts the chunks the stream will yield (after any
            filter).
            """
        ),
        code(
            """
            def report(done, total):
                if done % 25 == 0 or done == total:
                    print(f"progress: {done}/{total} chunks ({done / total:.0%})")


            count = sum(1 for _ in a.chunk_stream(parallel=4, progress_callback=report))
            print("streamed", count, "chunks")
            """
        ),
        md(
            """
            zarrflow ships a one-line text bar, `zarrflow.parallel.progress.TextProgressBar`,
            that fits the same slot (the CLI uses it). Library code never prints:
            progress is always something you pass in.
            """
        ),
        code(
            """
            from zarrflow.parallel.progress import TextProgressBar

            bar = TextProgressBar("latency-bound stream", stream=sys.stdout)
            for _ in slow.chunk_stream(parallel=8, progress_callback=bar):
                pass
            """
        ),
        md(
            """
            ## Step 8: filtering — before the read, not after

            ExZarr's livebook filters the stream *after* reading (`Stream.filter` on
            the pairs), so every chunk is still fetched and decoded. zarrflow's
            `filter=` receives only the chunk index and runs **before** any read: a
            chunk it rejects is never requested from storage. A store wrapper that
            counts chunk reads shows the difference.
            """
        ),
        code(
            '''
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
            '''
        ),
        md(
            """
            Use `filter=` for selections that are about *which chunks* (a row of the
            chunk grid, chunks listed in an external index, every tenth chunk); use a
            slice when you want a rectangular region as one array; and pass
            `skip_missing=True` to stream only the chunks that are actually stored
            (one listing of the store instead of a read per chunk).

            ## Step 9: memory

            Each chunk handed to you is a full decoded array, and parallel reads run
            ahead of you. zarrflow bounds how far: at most **2 × parallel** chunks
            exist at once — the ones being read plus as many finished ones waiting for
            you — times the per-task batch for chunks under 256 KiB, plus the chunk
            your loop is holding. A consumer that stops early cancels the reads not
            yet started. Here is the estimate for the seed array:
            """
        ),
        code(
            """
            chunk_bytes = 100 * 100 * a.dtype.itemsize
            batch = max(1, min(64, (256 * 1024) // chunk_bytes))  # chunks per task (< 256 KiB chunks)
            print(f"chunk: {chunk_bytes / 1024:.0f} KiB, {batch} chunks per task")
            for p in (1, 4, 8, 16):
                held = 1 if p == 1 else 2 * p * batch
                print(f"parallel={p:2d}: at most {held:3d} chunks = {held * chunk_bytes / 2**20:5.2f} MiB")
            """
        ),
        md(
            """
            The estimate is only useful if it holds, so let us measure it. With
            256×256 `int32` chunks (256 KiB, one chunk per task) we stream 32 chunks
            and record the peak of Python's traced memory (`tracemalloc`, which sees
            NumPy's buffers), in units of one chunk. Expect the peak at or below
            **2 × parallel + 1**: the window, plus the chunk your loop still holds
            (compressed bytes of the chunks being decoded add a little).
            """
        ),
        code(
            """
            side = 256
            big = zf.create(f"{workdir}/big.zarr", shape=(32 * side, side), chunks=(side, side),
                            dtype="int32")
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
            """
        ),
        md(
            """
            The peak tracks the parallelism, never the array: stream 32 chunks or 32
            million, the peak is the same. For large chunks pick `parallel` from
            memory first — a 1000×1000 `float64` chunk is 8 MB, so `parallel=16` can
            hold about 32 of them (256 MB).

            ## Key takeaways

            1. Sequential streaming (`parallel=1`) is simple, ordered, and reads in
               your thread.
            2. Parallel streaming pays off in proportion to how much of a read is
               *waiting* (network, disk) rather than *computing* (decoding on a few
               cores). Measure your own store: the two curves above differ by an order
               of magnitude.
            3. `ordered=True` keeps grid order for the price of a small buffer; it
               only costs time when chunk read times are very uneven.
            4. `filter=` skips chunks before they are read.
            5. Memory is bounded by `2 × parallel` chunks (times a small batch for
               tiny chunks), whatever the array's size.

            **Next:** `02_parallel_io.ipynb` (parallel reads and writes, and writes
            that never lose an update), `04_profiling.ipynb` (where a read's time
            goes), `05_distributed.ipynb` (the same streams on a cluster).
            """
        ),
        cleanup(),
    ]


# ---------------------------------------------------------------------------------------
@notebook("02_parallel_io")
def parallel_io() -> list:
    return [
        md(
            """
            # Parallel I/O and safe concurrent writes

            Zarr's chunked layout makes parallel I/O natural: a chunk is read,
            decompressed and written on its own. ExZarr's parallel I/O guide builds
            on that and makes a series of claims. This notebook checks them against
            zarrflow, where every chunk read or write is a Dask task:

            1. a read that spans many chunks gets faster when the chunks are read in
               parallel;
            2. so does a write;
            3. concurrent reads are always safe;
            4. concurrent *partial* writes to one chunk lose updates unless they are
               coordinated — and the coordination strategies that prevent it
               (partitioning, locking, batch-and-merge) are what zarrflow's write plans
               `aligned`, `lock` and `rechunk` are.
            """
        ),
        md(TIMING_NOTE),
        setup("nb02", ("import threading",), ("import dask", "import dask.array as da")),
        md(
            """
            ## A test array

            2048×2048 `float32` (16 MiB) in 256×256 chunks: 64 chunks of 256 KiB,
            zstd, on local disk.
            """
        ),
        code(
            """
            rng = np.random.default_rng(0)
            y, x = np.mgrid[0:2048, 0:2048]
            data = (np.sin(x / 150) * np.cos(y / 110) + rng.normal(0, 0.01, x.shape)).astype("float32")
            del x, y

            a = zf.create(f"{workdir}/field.zarr", shape=data.shape, chunks=(256, 256),
                          dtype="float32", compressor="zstd")
            a[:] = data
            print(a)
            print("chunk grid:", a.chunk_grid_shape, "=", a.nchunks, "chunks")
            """
        ),
        md(
            """
            ## 1. Parallel reads

            `a[0:1024, 0:1024]` touches 16 chunks, `a[:]` all 64. zarrflow reads a
            selection of at least `zarrflow.inline_chunks` chunks (8 by default) as a
            Dask graph on the threaded scheduler, each task decoding its chunks
            straight into the output array; smaller selections are read inline,
            where a graph would cost more than it saves. To measure the difference
            we run the same reads with Dask's synchronous scheduler — one chunk after
            another in the calling thread.
            """
        ),
        code(
            """
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
                print(f"{name}: sequential {seq * 1e3:6.1f} ms, threads {par * 1e3:6.1f} ms, "
                      f"speedup {seq / par:.2f}x")
            """
        ),
        md(
            """
            ## 2. Parallel writes

            `a[...] = value` encodes and stores chunks the same way: a graph of write
            tasks when the selection spans many chunks. Compressing usually costs more
            CPU than decompressing (see the table in notebook 03), so a write has more
            work to spread over the cores — and it also creates a file per chunk.
            """
        ),
        code(
            """
            def write_all():
                a[:] = data


            results["write 64 chunks"] = compare(write_all, repeat=3)
            seq, par = results["write 64 chunks"]
            print(f"write 64 chunks: sequential {seq * 1e3:.1f} ms, threads {par * 1e3:.1f} ms, "
                  f"speedup {seq / par:.2f}x")

            names = list(results)
            plt.figure(figsize=(6, 3.5))
            plt.bar(names, [s / p for s, p in results.values()])
            plt.axhline(1, color="gray", lw=1)
            plt.axhline(cores, color="gray", ls=":", label=f"{cores} cores")
            plt.ylabel("speedup of threads over sequential")
            plt.legend()
            plt.show()
            """
        ),
        md(
            """
            On *N* free cores the ceiling is *N*× for these CPU-bound reads and
            writes. You will see less when the machine is busy, and on fast codecs
            the copy into the output array and the task hand-offs take a share that
            does not shrink with more threads. Against a high-latency store the
            picture changes completely — see notebook 01, Step 6.

            ## Reading and writing through Dask: `to_dask` and `to_zarr`

            `a.to_dask()` is a lazy `dask.array` whose every block is one zarrflow
            read task. Small chunks are grouped so one task reads about 4 MiB
            (`zarrflow.task_target_bytes`) — the "several chunks per task" rule
            explained in notebook 04; `chunks_per_task=1` gives one task per chunk.
            """
        ),
        code(
            """
            x = a.to_dask()
            x1 = a.to_dask(chunks_per_task=1)
            print(f"default:           {x.npartitions:3d} tasks of {x.chunksize}")
            print(f"chunks_per_task=1: {x1.npartitions:3d} tasks of {x1.chunksize}")

            t_default = median_time(lambda: float(x.mean().compute()), 3)
            t_single = median_time(lambda: float(x1.mean().compute()), 3)
            print(f"mean(): {t_default * 1e3:.1f} ms grouped, {t_single * 1e3:.1f} ms one chunk per task")
            assert np.isclose(float(x.mean().compute()), data.mean(dtype="float64"), rtol=1e-5)
            """
        ),
        md(
            """
            `zf.to_zarr(dask_array, target)` writes any dask array, one write task per
            block. Here: standardise the field and store it as a new array with the
            same chunks.
            """
        ),
        code(
            """
            z = (x - x.mean()) / x.std()
            out = zf.to_zarr(z, f"{workdir}/standardised.zarr", chunks=(256, 256))
            print(out)
            expected = (data - data.mean(dtype="float64")) / data.std(dtype="float64")
            print("max abs error:", float(np.abs(out[:] - expected).max()))
            """
        ),
        md(
            """
            ## 3. Concurrent reads are safe

            Reads never lock: a stored chunk is immutable bytes, and each read
            decodes its own copy. Eight threads reading overlapping regions all get
            the right data.
            """
        ),
        code(
            """
            from concurrent.futures import ThreadPoolExecutor

            regions = [(slice(i * 100, i * 100 + 700), slice(0, 2048, 3)) for i in range(8)]
            with ThreadPoolExecutor(8) as pool:
                blocks = list(pool.map(lambda r: a[r], regions))
            print("all correct:", all(np.array_equal(b, data[r]) for b, r in zip(blocks, regions)))
            """
        ),
        md(
            """
            ## 4. Concurrent writes: the lost update

            Writing *part* of a chunk is a read-modify-write: read the stored chunk,
            change some elements, store the whole chunk again. Two writers doing that
            at once on the same chunk both read the old chunk, and the second store
            erases the first writer's change. zarrflow prevents it with a lock per
            chunk around every partial write (a thread lock in a process, a
            `distributed.Lock` on a cluster). Writes that cover whole chunks need no
            lock, and none is taken.

            To *see* the race, we switch the locks off —
            `dask.config.set({"zarrflow.lock": "none"})`, meant for benchmarks and
            exactly this demonstration — and force the worst interleaving with a store
            whose reads wait for each other: a chunk read blocks until all four
            writers are reading (or 2 s have passed). That makes the demonstration
            deterministic instead of a matter of luck.
            """
        ),
        code(
            STORE_WRAPPERS,
            '''

            class RendezvousStore(WrappedStore):
                """Chunk reads wait until `parties` readers arrive (or `timeout` passes)."""

                def __init__(self, inner, parties, timeout=2.0):
                    super().__init__(inner)
                    self.barrier = threading.Barrier(parties, timeout=timeout)

                def get(self, key):
                    value = self.inner.get(key)
                    if "/c/" in f"/{key}":  # a chunk key, not metadata
                        try:
                            self.barrier.wait()
                        except threading.BrokenBarrierError:
                            pass  # the others did not come: carry on alone
                    return value


            def four_writers(lock_setting):
                """Four threads each write two columns of the same 8x8 chunk."""
                store = RendezvousStore(zf.storage.MemoryStore(), parties=4)
                target = zf.create(store, shape=(8, 8), chunks=(8, 8), dtype="int32")

                def writer(i):
                    target[:, 2 * i : 2 * i + 2] = i + 1

                with dask.config.set({"zarrflow.lock": lock_setting}):
                    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
                    t0 = time.perf_counter()
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                    elapsed = time.perf_counter() - t0
                return target[:], elapsed
            ''',
        ),
        code(
            """
            unsafe, t_unsafe = four_writers("none")
            safe, t_safe = four_writers("auto")  # the default
            expected = np.repeat(np.arange(1, 5, dtype="int32"), 2)[None, :].repeat(8, 0)

            fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
            for ax, img, title in [(axes[0], expected, "intended"),
                                   (axes[1], unsafe, 'zarrflow.lock = "none"'),
                                   (axes[2], safe, 'zarrflow.lock = "auto" (default)')]:
                ax.imshow(img, vmin=0, vmax=4, cmap="viridis")
                ax.set(title=title, xticks=[], yticks=[])
            plt.tight_layout()
            plt.show()

            lost = sorted(set(range(1, 5)) - set(np.unique(unsafe)))
            print(f"without locks: writers {lost} lost their update ({t_unsafe:.2f} s)")
            print(f"with locks:    correct = {np.array_equal(safe, expected)} ({t_safe:.2f} s)")
            """
        ),
        md(
            """
            Without locks all four writers read the empty chunk, and only the last
            store survives. With locks the writers take turns, each reading the chunk
            its predecessor stored. (The locked run takes about 2 s only because our
            rendezvous store waits 2 s for readers that never come — the lock holder
            is alone. A real store does not wait.)

            ## Write plans: aligned, rechunk, lock

            `to_zarr` writes a dask array block by block, and blocks that do not line
            up with chunks are the lost-update situation at scale: two blocks share a
            chunk, and each writes part of it. `zf.plan_write` shows what zarrflow will
            do about it, and `to_zarr(..., strategy=)` overrides the choice:

            | plan | when | how | ExZarr guide's name |
            |---|---|---|---|
            | `aligned` | every block boundary is on a chunk boundary | each chunk has one writer; no locks | partition work |
            | `rechunk` (default when unaligned) | blocks cut chunks | the dask array is rechunked so each chunk has one writer; no locks; works on every scheduler, processes included | batch and merge |
            | `lock` | asked for | blocks stay as they are; each shared chunk is written under its lock | application-level locking |
            """
        ),
        code(
            """
            target = zf.create(f"{workdir}/plans.zarr", shape=data.shape, chunks=(256, 256),
                               dtype="float32")
            whole = tuple(slice(0, s) for s in target.shape)

            aligned = da.from_array(data, chunks=(512, 1024))   # multiples of 256
            unaligned = da.from_array(data, chunks=(300, 300))  # cuts chunks

            for name, arr, strategy in [("aligned blocks", aligned, "auto"),
                                        ("unaligned blocks", unaligned, "auto"),
                                        ("unaligned blocks", unaligned, "lock")]:
                plan = zf.plan_write(arr.chunks, target, whole, strategy=strategy)
                print(f"{name:17s} strategy={strategy!r:7s} -> {plan.strategy:8s} "
                      f"shared chunk boundaries: {plan.shared_chunks:2d}  ({plan.reason})")
            """
        ),
        md(
            """
            Asking for `aligned` when blocks are not aligned is refused rather than
            silently unsafe:
            """
        ),
        code(
            """
            try:
                zf.to_zarr(unaligned, target, strategy="aligned")
            except zf.ZarrflowError as e:
                print(type(e).__name__, "-", e)
            """
        ),
        md(
            """
            Both safe plans give the same, correct array. Which is faster depends on
            the shape of the mismatch: `rechunk` moves data between tasks before
            writing, `lock` writes each shared chunk several times (once per block
            touching it, each a read-modify-write) and makes those writers wait for
            each other.
            """
        ),
        code(
            """
            plan_times = {}
            for strategy in ["rechunk", "lock"]:
                def write(strategy=strategy):
                    zf.to_zarr(unaligned, target, strategy=strategy)

                plan_times[strategy] = median_time(write, 3)
                assert np.array_equal(target[:], data)
            plan_times["aligned (512x1024 blocks)"] = median_time(
                lambda: zf.to_zarr(aligned, target), 3)
            for k, v in plan_times.items():
                print(f"{k:26s} {v * 1e3:7.1f} ms")
            """
        ),
        md(
            """
            ## Summary

            * Reads and writes spanning many chunks run as parallel Dask tasks; on a
              CPU-bound local store expect at most *cores*× — measure it (above).
            * Reads never need coordination.
            * Whole-chunk writes need none either; partial writes take the chunk's
              lock, so concurrent writers to one chunk never lose an update.
            * For a whole dask array, `to_zarr` picks a plan: aligned blocks are
              written as they are, unaligned ones are rechunked to one writer per chunk
              (or, with `strategy="lock"`, written under per-chunk locks).
              `zf.plan_write` tells you which, and why.

            **Next:** `03_codecs.ipynb` — what the codec costs, and whether threads
            really decode in parallel in Python.
            """
        ),
        cleanup(),
    ]


# ---------------------------------------------------------------------------------------
@notebook("03_codecs")
def codecs() -> list:
    return [
        md(
            """
            # Codecs: v2 compressors, v3 pipelines, and the GIL

            A Zarr codec turns a chunk into stored bytes and back. This notebook shows
            how zarrflow spells codecs for both Zarr formats, measures compression
            ratio and encode/decode speed per codec on a realistic field, and then
            tests a claim from ExZarr's parallel I/O guide:

            > *Python's Global Interpreter Lock prevents threads from executing
            > Python bytecode in parallel … CPU-bound operations (decompression,
            > codec pipeline execution) are serialized.*

            The first half of that sentence is true; the conclusion does not follow.
            The GIL serialises *Python bytecode*; a C extension may release it while
            it works on a buffer. numcodecs' Cython codecs wrap their C calls in
            `with nogil:` (for example `ZSTD_decompress` in
            [numcodecs/zstd.pyx](https://github.com/zarr-developers/numcodecs/blob/main/numcodecs/zstd.pyx)
            and `LZ4_decompress_safe` in `lz4.pyx`), and CPython's `zlib`, `bz2` and
            `lzma` modules release it around their library calls. We measure what
            that means per codec, below.
            """
        ),
        md(TIMING_NOTE),
        setup(
            "nb03",
            (
                "import json",
                "import threading",
                "from concurrent.futures import ThreadPoolExecutor",
            ),
        ),
        md(
            """
            ## Zarr v2: one compressor, optional filters

            A v2 array stores a `compressor` (a numcodecs config) and a list of
            `filters` (numcodecs configs applied before it) in `.zarray`. `create`
            takes a compressor as a name, `(name, {options})`, a numcodecs codec, a
            config dict, or `None`.
            """
        ),
        code(
            """
            v2 = zf.create(f"{workdir}/v2.zarr", shape=(1000, 1000), chunks=(250, 250), dtype="int32",
                           zarr_format=2, compressor=("blosc", {"cname": "lz4", "clevel": 5, "shuffle": 1}),
                           filters=[("delta", {"dtype": "<i4"})])
            print(json.dumps(json.loads(v2.metadata.to_documents()[".zarray"]), indent=1))
            """
        ),
        md(
            """
            ## Zarr v3: a codec pipeline

            A v3 array stores one `codecs` list in `zarr.json`, in three stages:
            array→array codecs (`transpose`, filters), exactly one array→bytes codec
            (`bytes`, or `sharding_indexed`), then bytes→bytes codecs (compressors,
            `crc32c` checksums). The same `compressor=` and `filters=` arguments build
            that list; `codecs=` gives it explicitly.
            """
        ),
        code(
            """
            v3 = zf.create(f"{workdir}/v3.zarr", shape=(1000, 1000), chunks=(250, 250), dtype="int32",
                           compressor="zstd")
            print(json.dumps(v3.metadata.codecs, indent=1))

            v3_explicit = zf.create(f"{workdir}/v3x.zarr", shape=(1000, 1000), chunks=(250, 250),
                                    dtype="int32",
                                    codecs=[{"name": "bytes", "configuration": {"endian": "little"}},
                                            {"name": "blosc", "configuration": {
                                                "cname": "zstd", "clevel": 3, "shuffle": "bitshuffle",
                                                "typesize": 4, "blocksize": 0}},
                                            {"name": "crc32c"}])
            print([c["name"] for c in v3_explicit.metadata.codecs])
            """
        ),
        md(
            """
            Both arrays hold the same data and read the same way; only the stored
            description differs. zarrflow writes exactly what zarr-python 3 writes, so
            either library reads the other's arrays.

            ## A realistic field

            Compression ratios depend entirely on the data, so a benchmark on random
            numbers (incompressible) or zeros (trivially compressible) says nothing.
            We use a smooth 2-D field with measurement-like noise, stored as
            `float32` — like the *large* workload of zarrflow's benchmarks, smaller.
            """
        ),
        code(
            """
            rng = np.random.default_rng(1)
            y, x = np.mgrid[0:1024, 0:1024]
            field = (20 + 8 * np.sin(x / 90) * np.cos(y / 60) + 0.5 * np.sin((x + y) / 15)
                     + rng.normal(0, 0.05, x.shape)).astype("float32")
            del x, y

            plt.figure(figsize=(4, 4))
            plt.imshow(field, cmap="RdBu_r")
            plt.title("the test field (1024 × 1024 float32)")
            plt.axis("off")
            plt.show()
            """
        ),
        md(
            """
            ## Ratio and speed per codec

            For each codec we create an array with 256×256 chunks, then time the
            codec pipeline zarrflow builds for it (`zarrflow.codecs.CodecPipeline`)
            encoding and decoding the 8 chunks of the field's top half, in one
            thread: codec cost only — no storage, no scheduling. Speeds are MB/s of
            uncompressed data.
            """
        ),
        code(
            """
            from zarrflow.codecs import CodecPipeline

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
            chunks = [np.ascontiguousarray(field[i:i + 256, j:j + 256])
                      for i in range(0, 512, 256) for j in range(0, 1024, 256)]
            nbytes = sum(c.nbytes for c in chunks)


            def pipeline_for(name, shape=chunk_shape):
                arr = zf.create(f"memory://nb03-{name}-{shape[0]}", shape=shape, chunks=shape,
                                dtype="float32", compressor=CODECS[name], overwrite=True)
                return CodecPipeline.from_metadata(arr.metadata)


            rows = []
            for name in CODECS:
                pipe = pipeline_for(name)
                encoded = [pipe.encode(c) for c in chunks]  # also the warm-up
                out = np.empty(chunk_shape, dtype="float32")
                assert np.array_equal(pipe.decode(encoded[5]), chunks[5])
                repeat = 1 if name in ("bz2", "lzma") else 3  # the slow ones: one timed run
                t_enc = median_time(lambda: [pipe.encode(c) for c in chunks], repeat, warmup=False)
                t_dec = median_time(lambda: [pipe.decode(e, out=out) for e in encoded], repeat, warmup=False)
                rows.append((name, nbytes / sum(map(len, encoded)), nbytes / t_enc / 1e6,
                             nbytes / t_dec / 1e6))

            print(f"{'codec':22s} {'ratio':>6s} {'encode MB/s':>12s} {'decode MB/s':>12s}")
            for name, ratio, enc, dec in rows:
                print(f"{name:22s} {ratio:6.2f} {enc:12.0f} {dec:12.0f}")
            """
        ),
        code(
            """
            names = [r[0] for r in rows]
            fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=True)
            for ax, col, title, log in [(axes[0], 1, "compression ratio", False),
                                        (axes[1], 2, "encode MB/s (1 thread)", True),
                                        (axes[2], 3, "decode MB/s (1 thread)", True)]:
                ax.barh(names, [r[col] for r in rows], color="tab:blue" if col == 1 else "tab:orange")
                ax.set_title(title)
                if log:
                    ax.set_xscale("log")
            axes[0].invert_yaxis()
            plt.tight_layout()
            plt.show()
            """
        ),
        md(
            """
            What to look for: blosc with a shuffle filter compresses floating-point
            data better than a compressor without one (shuffling groups the similar
            high-order bytes of neighbouring floats); plain `lz4` barely compresses
            noisy floats at all; a higher zstd level costs encode time and may gain
            little ratio on noisy data (compare zstd-3 and zstd-9) while decoding
            stays fast; gzip/zlib are slower at both ends; bz2 and lzma buy some ratio
            with a great deal of time — compare them with blosc + bitshuffle. `none`
            is the ceiling — a copy. Read the printed table for this machine's
            numbers.

            ## Do threads decode in parallel?

            Two measurements per codec, in the same run:

            1. **GIL probe.** A worker thread decodes one 8 MiB chunk after another —
               a worker thread, as in a Dask task. Meanwhile a probe thread wakes
               every half millisecond and needs the GIL for a moment to count. If the
               codec holds the GIL while it works, the probe stalls until the call
               returns; if the codec releases it, the probe keeps counting. We report
               the probe's rate while the worker decodes divided by its rate while the
               worker sleeps: near 1 = the GIL is free during decoding, near 0 = held.
               A pure-Python loop (which holds the GIL and yields it only at the
               interpreter's 5 ms switch interval) is the reference for "held".
            2. **Thread scaling.** Decode 16 chunks of 256 KiB with 1 thread and with
               `max(2, cores)` threads, and report the wall-time speedup. A
               GIL-releasing codec can approach *cores*× on an idle machine; a
               GIL-holding one stays at 1×.

            The probe answers *whether* the GIL is released. The speedup is what you
            get on this machine right now — on a busy or small machine it can fall
            far below the ideal for reasons that have nothing to do with the GIL
            (other processes on the cores, two threads sharing one core). bz2 and
            lzma are left out to keep the notebook quick; CPython's `_bz2` and
            `_lzma` modules release the GIL around their library calls too
            (`Py_BEGIN_ALLOW_THREADS` in `Modules/_bz2module.c` and
            `Modules/_lzmamodule.c`).
            """
        ),
        code(
            '''
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
            '''
        ),
        code(
            """
            GIL_CODECS = ["zstd-3", "blosc-lz4 shuffle", "blosc-zstd bitshuffle", "lz4",
                          "gzip-5", "zlib-5"]
            big = np.ascontiguousarray(np.tile(field, (2, 1)))  # 2048 x 1024: one 8 MiB chunk
            probe = GilProbe()
            gil = {}
            for name in GIL_CODECS:
                pipe = pipeline_for(name, big.shape)
                enc, out = pipe.encode(big), np.empty_like(big)
                gil[name] = {"probe": probe.free_fraction(lambda: pipe.decode(enc, out=out))}
            reference = probe.free_fraction(python_loop)
            probe.stop()
            print(f"reference, a pure-Python loop: {reference:.2f}")
            for name, r in gil.items():
                print(f"{name:22s} GIL free during decode: {r['probe']:.2f}")
            """
        ),
        code(
            """
            n_threads = max(2, cores)
            for name in GIL_CODECS:
                pipe = pipeline_for(name)
                jobs = [(pipe.encode(c), np.empty(chunk_shape, dtype="float32")) for c in chunks] * 2

                def decode_all(threads):
                    with ThreadPoolExecutor(threads) as pool:
                        list(pool.map(lambda job: pipe.decode(job[0], out=job[1]), jobs))

                t1 = median_time(lambda: decode_all(1), 3)
                tn = median_time(lambda: decode_all(n_threads), 3)
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
                print(f"{n:22s} probe {gil[n]['probe']:.2f}  speedup {gil[n]['speedup']:.2f}x"
                      f"  -> {verdict}")
            """
        ),
        md(
            """
            **What this means for zarrflow.** For the codecs whose probe stays near 1,
            decompression runs outside the GIL, so zarrflow's default threaded
            scheduler decodes on every core and no process pool is needed. A codec
            that holds the GIL — or a pure-Python filter in front of it — serialises
            decoding in one process; for those, run zarrflow on the `"processes"`
            scheduler or a `distributed` cluster with several worker processes
            (notebook 05), where each process has its own GIL.

            Speedups below the ideal *cores*× come from the machine (other load, two
            threads sharing a core) and from work that does hold the GIL: the Python
            glue around each call, and allocating output buffers (zarrflow decodes
            straight into the output array when it can, which avoids that).

            ## Choosing a codec

            * **Default:** zstd level 3 (`compressor="zstd"`) — good ratio, fast
              decode, supported by every Zarr implementation.
            * **Floating-point data, fast reads:** blosc with `shuffle` or
              `bitshuffle`.
            * **Archival, read rarely:** zstd at a high level; bz2/lzma only if the
              ratio gain is worth their decode cost (measure it above).
            * **Interoperability with old v2 readers:** blosc, zlib, gzip.
            * **Integrity:** add `{"name": "crc32c"}` (v3) to detect corrupt chunks —
              zarrflow raises `CorruptChunkError` naming the chunk key.
            """
        ),
        cleanup(),
    ]


# ---------------------------------------------------------------------------------------
@notebook("04_profiling")
def profiling() -> list:
    return [
        md(
            """
            # Profiling: where a read's time goes

            Reading a Zarr array costs three kinds of time:

            * **storage I/O** — fetching each chunk's bytes (here from local files);
            * **decode** — running the codec pipeline on them;
            * **scheduling and assembly** — creating tasks, handing them to threads,
              copying decoded chunks into the output.

            The first two scale with the *data*; the third scales with the *number of
            chunks and tasks*. This notebook splits a whole-array read into those
            parts for several chunk sizes, then shows why `to_dask` puts several
            small chunks into one task.
            """
        ),
        md(TIMING_NOTE),
        setup("nb04", (), ("import dask",)),
        md(
            """
            ## One array, five chunk sizes

            The same 1024×1024 `float32` field (4 MiB) is stored five times, with
            square chunks of 32 to 512 elements a side: from 1024 chunks of 4 KiB to
            4 chunks of 1 MiB.
            """
        ),
        code(
            """
            rng = np.random.default_rng(7)
            y, x = np.mgrid[0:1024, 0:1024]
            field = (np.sin(x / 80) * np.cos(y / 50) + rng.normal(0, 0.01, x.shape)).astype("float32")
            del x, y

            sides = [32, 64, 128, 256, 512]
            arrays = {}
            for s in sides:
                arr = zf.create(f"{workdir}/c{s}.zarr", shape=field.shape, chunks=(s, s),
                                dtype="float32", compressor="zstd")
                arr[:] = field
                arrays[s] = arr
                print(f"chunks {s:3d}x{s:<3d}: {arr.nchunks:5d} chunks of {s * s * 4 / 1024:6.0f} KiB")
            """
        ),
        md(
            """
            ## Splitting the time

            For each array, all in one thread so the parts add up:

            1. **I/O:** `store.get` every chunk key — the raw bytes, nothing else;
            2. **decode:** decode those bytes with the array's codec pipeline;
            3. **total:** `a.to_dask(chunks_per_task=1).compute(scheduler="sync")` —
               one Dask task per chunk, run one after the other. What the total has
               beyond I/O and decode is the scheduling and assembly overhead.
            """
        ),
        code(
            """
            from zarrflow.codecs import CodecPipeline

            parts = {}
            for s, arr in arrays.items():
                keys = [arr.chunk_key(idx) for idx in np.ndindex(*arr.chunk_grid_shape)]
                blobs = [arr.store.get(k) for k in keys]
                pipe = CodecPipeline.from_metadata(arr.metadata)
                out = np.empty(arr.chunks, dtype=arr.dtype)
                t_io = median_time(lambda: [arr.store.get(k) for k in keys], 3)
                t_decode = median_time(lambda: [pipe.decode(b, out=out) for b in blobs], 3)
                graph = arr.to_dask(chunks_per_task=1)
                t_total = median_time(lambda: graph.compute(scheduler="sync"), 3)
                parts[s] = {"I/O": t_io, "decode": t_decode,
                            "scheduling + assembly": max(0.0, t_total - t_io - t_decode),
                            "total": t_total, "n": arr.nchunks}

            for s, p in parts.items():
                print(f"{s:3d}²: total {p['total'] * 1e3:7.1f} ms = I/O {p['I/O'] * 1e3:6.1f} + decode "
                      f"{p['decode'] * 1e3:6.1f} + overhead {p['scheduling + assembly'] * 1e3:6.1f}   "
                      f"({p['total'] / p['n'] * 1e6:6.0f} µs per chunk)")
            """
        ),
        code(
            """
            labels = [f"{s}²\\n({parts[s]['n']} chunks)" for s in sides]
            kinds = ["I/O", "decode", "scheduling + assembly"]
            fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
            bottom = np.zeros(len(sides))
            for kind in kinds:
                vals = np.array([parts[s][kind] * 1e3 for s in sides])
                axes[0].bar(labels, vals, bottom=bottom, label=kind)
                bottom += vals
            axes[0].set(title="reading the whole 4 MiB array, one task per chunk",
                        ylabel="time (ms)", xlabel="chunk size")
            axes[0].legend()
            bottom = np.zeros(len(sides))
            for kind in kinds:
                vals = np.array([parts[s][kind] / parts[s]["n"] * 1e6 for s in sides])
                axes[1].bar(labels, vals, bottom=bottom, label=kind)
                bottom += vals
            axes[1].set(title="the same, per chunk", ylabel="µs per chunk", yscale="log",
                        xlabel="chunk size")
            plt.tight_layout()
            plt.show()
            """
        ),
        md(
            """
            **Reading the chart.** With 4 KiB chunks the read of the same 4 MiB is
            dominated by per-chunk costs: one file open and read per chunk, one codec
            call per chunk, and one task per chunk. As chunks grow, the per-chunk
            costs are paid fewer times and decode — proportional to the data — takes
            over. On the right, per-chunk time is nearly flat for small chunks (the
            fixed costs) and grows with size for large ones (the data).

            Practical rules:

            * Aim for chunks of roughly **1–16 MiB** uncompressed on object stores (a
              request costs tens of milliseconds) and **256 KiB and up** on local
              disks. Tiny chunks are slow everywhere.
            * If you cannot change the chunking (someone else wrote the data), change
              the *tasks* instead — next section.

            ## Several chunks per task

            Dask spends tens to hundreds of microseconds scheduling each task — a
            constant that does not depend on what the task does. Measure it here with
            tasks that do nothing:
            """
        ),
        code(
            """
            import dask.array as da

            n_tasks = 500
            empty = da.zeros(n_tasks, chunks=1)
            t_graph = median_time(lambda: empty.sum().compute(scheduler="threads"), 3)
            print(f"{n_tasks} trivial tasks (plus their sum): {t_graph * 1e3:.0f} ms, "
                  f"about {t_graph / n_tasks * 1e6:.0f} µs per task")
            """
        ),
        md(
            """
            A task that reads one 4 KiB chunk does a few tens of microseconds of work,
            so with one chunk per task most of the time is scheduling. That is why
            `Array.to_dask()` groups chunks: starting from one chunk, a block grows
            along the last axis, then the one before it, until it holds about
            `zarrflow.task_target_bytes` (4 MiB) of uncompressed data or spans the
            axis. Blocks stay on chunk boundaries, so no chunk is read by two tasks,
            and `chunks_per_task=` overrides the rule. (`chunk_stream` applies the
            same idea: chunks under 256 KiB travel several to a task.)

            Our whole array is only 4 MiB, so the default target would make it a
            single task. To see the rule at work on a small example we lower the
            target to 1 MiB — four tasks — with Dask's config, where all of
            zarrflow's settings live (`zarrflow.*`). Compare, on the threaded
            scheduler:
            """
        ),
        code(
            """
            rows = []
            with dask.config.set({"zarrflow.task_target_bytes": 2**20}):
                for s in sides:
                    arr = arrays[s]
                    grouped, single = arr.to_dask(), arr.to_dask(chunks_per_task=1)
                    t_grouped = median_time(lambda: grouped.compute(scheduler="threads"), 3)
                    t_single = median_time(lambda: single.compute(scheduler="threads"), 3)
                    rows.append((s, single.npartitions, grouped.npartitions, grouped.chunksize,
                                 t_single, t_grouped))

            print(f"{'chunk':>6s} {'tasks (1/task)':>15s} {'tasks (grouped)':>16s} {'block':>13s} "
                  f"{'1/task ms':>10s} {'grouped ms':>11s}")
            for s, n1, ng, block, t1, tg in rows:
                print(f"{s:5d}² {n1:15d} {ng:16d} {str(block):>13s} {t1 * 1e3:10.1f} {tg * 1e3:11.1f}")

            plt.figure(figsize=(6.5, 3.8))
            plt.plot([f"{r[0]}²" for r in rows], [r[4] * 1e3 for r in rows], "o-",
                     label="one chunk per task")
            plt.plot([f"{r[0]}²" for r in rows], [r[5] * 1e3 for r in rows], "s-",
                     label="grouped (1 MiB per task)")
            plt.yscale("log")
            plt.xlabel("chunk size")
            plt.ylabel("whole-array read (ms)")
            plt.legend()
            plt.show()
            """
        ),
        md(
            """
            Grouping should win by a wide margin for small chunks and make no
            difference once a chunk is as big as the target (then a block is one
            chunk). Grouping has a cost too — fewer tasks means less parallelism —
            which is why the target is a few MiB per task rather than "everything in
            one task".

            ## Profiling your own reads

            * `dask.diagnostics.Profiler` (and `ResourceProfiler`) record every task
              run on the local schedulers. zarrflow's read tasks are named
              `zarrflow-read-<token>` and its write tasks `zarrflow-write-<token>`.
            * Dask's graph optimisation may *fuse* a read with what follows it (a
              `sum`, say) into one task, named after the last operation: the read is
              still there, inside.
            * On a cluster, the dashboard's task stream shows the same names
              (notebook 05).
            * The split above — raw `store.get`, `CodecPipeline.decode`, and the full
              read — is the quickest way to tell whether storage, codec or scheduling
              is your bottleneck.
            """
        ),
        code(
            """
            from dask.diagnostics import Profiler


            def task_summary(collection):
                with Profiler() as prof:
                    collection.compute(scheduler="threads")
                names = {}
                for r in prof.results:
                    prefix = r.key[0] if isinstance(r.key, tuple) else str(r.key)
                    names.setdefault(prefix.rsplit("-", 1)[0], []).append(r.end_time - r.start_time)
                for prefix, durations in names.items():
                    print(f"  {prefix[:36]:36s} {len(durations):5d} tasks, "
                          f"median {np.median(durations) * 1e6:7.0f} µs")


            x64 = arrays[64].to_dask(chunks_per_task=1)
            print("x.compute():")
            task_summary(x64)
            print("x.sum().compute():")
            task_summary(x64.sum())
            """
        ),
        cleanup(),
    ]


# ---------------------------------------------------------------------------------------
@notebook("05_distributed")
def distributed_nb() -> list:
    return [
        md(
            """
            # zarrflow on a Dask cluster

            Every zarrflow chunk operation is a Dask task, so the code of the other
            notebooks runs on a `dask.distributed` cluster unchanged: with a `Client`
            active, `scheduler=None` (the default everywhere) means "the cluster".
            This notebook starts a small `LocalCluster` — two worker processes on this
            machine — and runs `to_dask`, `to_zarr`, `chunk_stream` and
            `parallel_chunk_map` on it, with progress.

            A real cluster differs in one way that matters: **workers must be able to
            reach the store.** A local path works here because the workers share this
            machine's disk; on a real cluster use shared storage or an object store
            (`s3://…` with `storage_options`). A `memory://` store does not work
            across processes: each worker would see its own, empty memory.
            """
        ),
        md(TIMING_NOTE),
        setup(
            "nb05",
            ("import sys",),
            ("import dask.array as da", "from distributed import Client, LocalCluster"),
        ),
        md(
            """
            ## An array on shared storage

            The seed array again — 1000×1000 `int32`, 100×100 chunks — on local disk,
            written here with the local threaded scheduler before any cluster exists.
            """
        ),
        code(
            """
            rng = np.random.default_rng(5)
            data = rng.integers(0, 1000, size=(1000, 1000), dtype="int32")
            a = zf.create(f"{workdir}/seed.zarr", shape=data.shape, chunks=(100, 100), dtype="int32")
            a[:] = data
            print(a, "| stored chunks:", a.nchunks_initialized)
            """
        ),
        md(
            """
            ## Start a cluster

            Two worker processes with one thread each. `dashboard_address="127.0.0.1:0"`
            lets the dashboard pick a free port; open the printed link to watch the
            task stream while the cells below run (needs `bokeh`). From here on the
            client is Dask's default scheduler, so zarrflow's parallel operations —
            `to_dask`, `to_zarr`, `chunk_stream`, `parallel_chunk_map` and reads that
            span many chunks — run on the workers (small reads and `a[...] = value`
            stay in this process). The array travels to the workers pickled as its
            store URL and metadata, never as data.
            """
        ),
        code(
            """
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address="127.0.0.1:0", silence_logs=40)
            client = Client(cluster)
            print("dashboard:", client.dashboard_link)
            print("workers:", len(client.scheduler_info()["workers"]),
                  "| threads:", sum(client.nthreads().values()))
            """
        ),
        md(
            """
            ## `to_dask` on the cluster

            `a.to_dask()` builds the graph in the client; `compute()` runs the read
            tasks on the workers and only the result (here a few numbers) comes back.
            """
        ),
        code(
            """
            x = a.to_dask(chunks_per_task=4)
            t0 = time.perf_counter()
            total, mean = da.compute(x.sum(), x.mean())
            print(f"sum={int(total)}, mean={float(mean):.3f} in {time.perf_counter() - t0:.2f} s "
                  f"over {x.npartitions} read tasks")
            assert int(total) == int(data.sum(dtype="int64"))
            """
        ),
        md(
            """
            ## `to_zarr` on the cluster, with progress

            `progress_callback(done, total)` counts finished write tasks; on a cluster
            it is fed from the futures completing, and always runs in your process.
            Blocks not aligned with chunks are rechunked to one writer per chunk, as on
            threads (`strategy="lock"` would use a `distributed.Lock` per shared chunk).
            """
        ),
        code(
            """
            from zarrflow.parallel.progress import TextProgressBar

            y = (x.astype("float32") - float(mean)) / 100
            out = zf.to_zarr(y, f"{workdir}/centred.zarr", chunks=(100, 100),
                             progress_callback=TextProgressBar("to_zarr on 2 workers",
                                                               stream=sys.stdout))
            print(out)
            np.testing.assert_allclose(out[0:3, 0:3], (data[0:3, 0:3] - float(mean)) / 100, rtol=1e-5)
            """
        ),
        md(
            """
            ## `chunk_stream` from the cluster

            The workers read and decode; chunks travel to you, at most
            `2 × parallel` at a time, in grid order with `ordered=True`.
            """
        ),
        code(
            """
            def report(done, total):
                if done % 25 == 0 or done == total:
                    print(f"  streamed {done}/{total}")


            n, checksum = 0, 0
            for idx, chunk in a.chunk_stream(parallel=4, progress_callback=report):
                n += 1
                checksum += int(chunk.sum(dtype="int64"))
            print(n, "chunks, sum matches:", checksum == int(data.sum(dtype="int64")))
            """
        ),
        md(
            """
            ## `parallel_chunk_map`: ship the function, not the data

            `fn(chunk_index, chunk)` runs in the task that reads the chunk, on a
            worker; only its result travels back. For a per-chunk summary that is a
            few bytes instead of 40 KB. `reduce_chunks` folds those results as they
            arrive.
            """
        ),
        code(
            """
            def chunk_stats(idx, chunk):
                return idx, int(chunk.min()), int(chunk.max())


            stats = [r for _, r in a.parallel_chunk_map(chunk_stats)]
            peak = a.reduce_chunks(lambda idx, c: int(c.max()), max)
            print(stats[:3], "...")
            print("max over all chunks:", peak, "| numpy:", int(data.max()))

            prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
            print("zarrflow task prefixes the scheduler has seen:",
                  [p for p in prefixes if p.startswith("zarrflow")])
            """
        ),
        md(
            """
            ## Locks on a cluster

            Partial writes from several workers to one chunk are serialised by a
            `distributed.Lock` named from the store URL and chunk key, so all workers
            agree on it. The same interleaved write as notebook 02's lock plan —
            blocks of 30 columns into chunks of 100 — loses nothing:
            """
        ),
        code(
            """
            values = np.repeat(np.arange(1, 35, dtype="int32"), 30)[None, :1000].repeat(100, 0)
            target = zf.create(f"{workdir}/locked.zarr", shape=(100, 1000), chunks=(100, 100),
                               dtype="int32")
            plan = zf.to_zarr(da.from_array(values, chunks=(100, 30)), target, strategy="lock",
                              compute=False).compute()
            print(plan.strategy, "-", plan.reason, "| shared chunk boundaries:", plan.shared_chunks)
            print("correct:", np.array_equal(target[:], values))
            """
        ),
        md(
            """
            ## Close the cluster

            Always close the client and the cluster: they hold processes and ports.
            (In a script, `with LocalCluster(...) as cluster, Client(cluster) as
            client:` does it for you.)
            """
        ),
        code(
            """
            client.close()
            cluster.close()
            print("cluster closed")
            """
        ),
        cleanup(),
    ]


# ---------------------------------------------------------------------------------------
@notebook("06_similarity_search")
def similarity() -> list:
    return [
        md(
            """
            # Chunk-parallel similarity search

            Find the *k* rows of an embedding matrix most similar to a query vector
            (cosine similarity) without loading the matrix: each chunk of rows
            computes its own top-*k*, and the per-chunk winners are merged. Top-*k*
            merges exactly — the global top-*k* is always among the per-chunk top-*k*
            lists — so the answer equals brute force. That is the pattern of every
            chunk-parallel search: a map (`parallel_chunk_map`) and an associative
            reduction (`reduce_chunks`).
            """
        ),
        md(TIMING_NOTE),
        setup("nb06", ("import heapq",)),
        md(
            """
            ## An embedding matrix

            200,000 vectors of 64 `float32` dimensions (51 MB), drawn around 50
            cluster centres like real embeddings, stored in chunks of 10,000 rows ×
            all 64 columns — a chunk is a batch of whole vectors.
            """
        ),
        code(
            """
            n, dim, rows_per_chunk, k = 200_000, 64, 10_000, 10
            rng = np.random.default_rng(2024)
            centres = rng.normal(size=(50, dim)).astype("float32")
            labels = rng.integers(0, 50, size=n)
            vectors = centres[labels] + 0.6 * rng.normal(size=(n, dim)).astype("float32")

            emb = zf.create(f"{workdir}/embeddings.zarr", shape=(n, dim), chunks=(rows_per_chunk, dim),
                            dtype="float32", compressor=("blosc", {"cname": "lz4", "shuffle": 1}))
            emb[:] = vectors
            print(emb, "|", emb.nchunks, "chunks")
            """
        ),
        md(
            """
            ## The per-chunk step

            For one chunk: normalise its rows, take dot products with the normalised
            query, keep the best *k* with `np.argpartition` (linear time), and turn
            chunk-local row numbers into global row ids with the chunk index.
            """
        ),
        code(
            """
            query = centres[7] + 0.3 * rng.normal(size=dim).astype("float32")
            q = query / np.linalg.norm(query)


            def chunk_top_k(idx, chunk):
                norms = np.linalg.norm(chunk, axis=1)
                scores = (chunk @ q) / np.maximum(norms, 1e-12)
                best = np.argpartition(scores, -k)[-k:] if len(scores) > k else np.arange(len(scores))
                first_row = idx[0] * rows_per_chunk
                return [(float(scores[i]), first_row + int(i)) for i in best]


            def merge_top_k(a, b):
                return heapq.nlargest(k, a + b)
            """
        ),
        md(
            """
            ## Search: map over chunks in parallel, reduce as results arrive

            `reduce_chunks(fn, combine)` runs `fn` on every chunk with
            `parallel_chunk_map` (unordered) and folds the results with `combine` as
            they arrive — so at no point are all chunks, or all per-chunk results,
            held at once.
            """
        ),
        code(
            """
            def search():
                return sorted(emb.reduce_chunks(chunk_top_k, merge_top_k), reverse=True)


            t0 = time.perf_counter()
            top = search()
            t_search = time.perf_counter() - t0
            for score, row in top:
                print(f"row {row:6d}  cosine {score:.4f}  (cluster {labels[row]})")
            print(f"{emb.nchunks} chunks searched in {t_search * 1e3:.0f} ms")
            """
        ),
        md(
            """
            ## Check against brute force

            NumPy on the whole matrix in memory: every cosine, then the top *k*.
            """
        ),
        code(
            """
            def brute_force():
                scores = (vectors @ q) / np.linalg.norm(vectors, axis=1)
                best = np.argsort(scores)[::-1][:k]
                return scores, best


            scores, best = brute_force()
            assert [row for _, row in top] == best.tolist(), "chunked search disagrees"
            assert np.allclose([s for s, _ in top], scores[best], atol=1e-5)
            print("same top-k as brute force:", best.tolist())

            t_chunked = median_time(search, 3)
            t_brute = median_time(brute_force, 3)
            print(f"chunk-parallel from Zarr: {t_chunked * 1e3:.0f} ms | "
                  f"brute force in RAM: {t_brute * 1e3:.0f} ms")
            """
        ),
        md(
            """
            Brute force in RAM is the ceiling — it skips reading and decompressing
            51 MB. The chunked search pays for those, but needs memory for only a few
            chunks, and the same code searches a matrix of a billion rows on object
            storage, or on a cluster (pass `scheduler=client`, or just have a
            `Client` active).

            ## The picture

            Similarity of every vector to the query, with the top *k* marked: the
            query's own cluster stands apart from the rest.
            """
        ),
        code(
            """
            threshold = top[-1][0]
            fig, ax = plt.subplots(figsize=(8, 3.5))
            ax.hist(scores, bins=200, color="lightgray", label="all 200,000 vectors")
            ax.hist(scores[labels == 7], bins=100, color="tab:blue", alpha=0.6, label="query's cluster")
            for s, _ in top:
                ax.axvline(s, color="tab:red", lw=0.8)
            ax.axvline(threshold, color="tab:red", lw=0.8, label=f"top {k}")
            ax.set(xlabel="cosine similarity to the query", ylabel="vectors", yscale="log")
            ax.legend()
            plt.show()
            """
        ),
        md(
            """
            ## Variations

            * **Batch of queries:** make `q` a matrix (one row per query) and keep a
              top-*k* per query — one read of the matrix serves every query.
            * **Pre-normalised storage:** store unit vectors and skip the norm.
            * **Restrict the search:** `filter=lambda idx: ...` skips chunks (say, by a
              partition index kept in `attrs`) before they are read.
            * **Fault tolerance:** `parallel_chunk_map(..., retries=2, timeout=30)`
              re-runs a failed chunk and fails a stuck one with `ChunkTimeoutError`.
            """
        ),
        cleanup(),
    ]


# ---------------------------------------------------------------------------------------
@notebook("07_sharding")
def sharding() -> list:
    return [
        md(
            """
            # Sharding: layout, request counts, and when shards help

            A Zarr v3 array can pack many *inner chunks* into one stored object, a
            **shard** (the `sharding_indexed` codec). The chunk stays the unit of
            compression and of reading; the shard becomes the unit of storage. This
            notebook shows what that changes on disk, counts the storage requests
            reads and writes make, and ends with when to use shards.

            `zf.create(..., chunks=inner_chunk_shape, shards=shard_shape)` makes a
            sharded array (v3 only). The first code cell checks that the installed
            zarrflow supports it; if not, the other cells say so and do nothing.
            """
        ),
        md(TIMING_NOTE),
        setup("nb07", ("import threading",)),
        code(
            """
            try:
                probe = zf.create("memory://nb07-probe", shape=(8, 8), chunks=(2, 2), shards=(4, 4),
                                  dtype="uint8", overwrite=True)
                probe[:] = 1
                SHARDING = bool(np.all(probe[:] == 1))
                why = ""
            except Exception as e:  # noqa: BLE001 - reported below
                SHARDING, why = False, f"{type(e).__name__}: {e}"
            print("sharding available:", SHARDING, why)


            def needs_sharding():
                if not SHARDING:
                    print("skipped: this zarrflow cannot create sharded arrays "
                          f"(zf.create(..., shards=...) failed: {why})")
                return SHARDING
            """
        ),
        md(
            """
            ## Layout on disk

            The same 2048×2048 `uint16` image, chunked 128×128 (256 chunks), stored
            twice: once with one object per chunk, once in 512×512 shards of 16 inner
            chunks each. We count the files each one writes.
            """
        ),
        code(
            STORE_WRAPPERS,
            '''

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
            ''',
        ),
        code(
            """
            if needs_sharding():
                rng = np.random.default_rng(3)
                yy, xx = np.mgrid[0:2048, 0:2048]
                image = (30000 + 20000 * np.sin(xx / 200) * np.cos(yy / 170)
                         + rng.normal(0, 50, xx.shape)).astype("uint16")
                del yy, xx

                plain = zf.create(f"{workdir}/plain.zarr", shape=image.shape, chunks=(128, 128),
                                  dtype="uint16")
                sharded = zf.create(f"{workdir}/sharded.zarr", shape=image.shape, chunks=(128, 128),
                                    shards=(512, 512), dtype="uint16")
                plain[:] = image
                sharded[:] = image


                def files(path):
                    found = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
                    return len(found), sum(os.path.getsize(f) for f in found)


                for name, arr in [("one object per chunk", plain), ("512x512 shards", sharded)]:
                    count, size = files(f"{workdir}/{'plain' if arr is plain else 'sharded'}.zarr")
                    print(f"{name:22s} {count:4d} files, {size / 2**20:5.2f} MiB  "
                          f"({arr.chunks=}, {arr.shards=})")
                print()
                print(sharded.info)
            """
        ),
        md(
            """
            In a sharded array, `a.chunks` is the **inner** chunk shape and `a.shards`
            the shard shape (the regular grid of stored objects), as in zarr-python.
            Each shard object holds its encoded inner chunks back to back plus an
            *index* — an `(offset, length)` pair per inner chunk — at its end (or
            start). Missing inner chunks take no space; a shard with no data is not
            stored at all.

            ## Request counts

            A reader of a sharded array fetches the index of a shard (one small
            ranged read), then only the byte ranges of the inner chunks it needs —
            adjacent ranges coalesced into one request. Reading a whole shard can
            skip the index request altogether: fetch the object once and split it.
            We count requests for three reads of each layout.
            """
        ),
        code(
            """
            if needs_sharding():
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
            """
        ),
        code(
            """
            if needs_sharding():
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
            """
        ),
        md(
            """
            On an object store every request costs latency (tens of milliseconds) and
            money, and providers limit requests per second per prefix
            ([S3](https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html),
            [GCS](https://cloud.google.com/storage/docs/request-rate)); S3's
            `ListObjectsV2` returns at most 1,000 keys per call, so listing a million
            chunks takes a thousand requests. Fewer, larger objects are cheaper on
            all three counts — while a reader can still fetch a single small chunk.

            ## Writes: the shard is the unit

            A shard is one object, so writing part of it is a read-modify-write of the
            whole shard, and concurrent writers to one shard take the shard's lock
            (the same per-object lock as a partial chunk write). Writes that cover
            whole shards need no read and no lock. Count the requests for writing one
            inner chunk versus one whole shard:
            """
        ),
        code(
            """
            if needs_sharding():
                counting = CountingStore(sharded.store)
                view = zf.open_array(counting, mode="r+")
                for what, sel in [("one inner chunk", (slice(0, 128), slice(0, 128))),
                                  ("one whole shard", (slice(0, 512), slice(0, 512)))]:
                    counting.reset()
                    view[sel] = image[sel]
                    c = counting.counts
                    print(f"write {what:16s}: {c['get'] + c['get_range']} reads, {c['set']} writes")
            """
        ),
        md(
            """
            ## Streaming a sharded array

            `chunk_stream` and `parallel_chunk_map` go over the **inner** chunks, shard
            by shard, one task reading a group of a shard's inner chunks with one index
            request — so the unit you process stays small while the unit of I/O is
            large.
            """
        ),
        code(
            """
            if needs_sharding():
                counting = CountingStore(sharded.store)
                view = zf.open_array(counting, mode="r")
                counting.reset()
                first = [idx for idx, _ in view.chunk_stream(parallel=4)][:6]  # reads them all
                print("first inner chunk indices streamed:", first)
                n_inner = view.nchunks  # inner chunks: nchunks counts them, nshards the shards
                print(f"requests to stream all {n_inner} inner chunks:",
                      counting.counts["get"] + counting.counts["get_range"])
            """
        ),
        md(
            """
            ## When shards help — and when they don't

            | situation | shards? |
            |---|---|
            | many small chunks on an object store (millions of objects, per-request cost, listing) | **yes** — the main reason shards exist |
            | file systems with small-file limits (inode quotas, HPC parallel file systems) | **yes** |
            | reads of single small chunks at random | fine: index + one range read per chunk (indices are cached per operation) |
            | many writers updating small parts of one shard at the same time | **no** — they serialise on the shard's lock and each rewrites the whole shard |
            | data written once, in whole shards (ingest, `to_zarr` with shard-aligned blocks) | **yes** — no read-modify-write at all |
            | local disk, chunks already ≥ 1 MiB | little to gain |

            Pick the inner chunk for the **reads** you expect (the unit of decoding)
            and the shard for the **storage** (objects of tens to hundreds of MiB on
            object stores), and write in whole shards where you can.
            """
        ),
        cleanup(),
    ]


# ---------------------------------------------------------------------------------------
def make(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` from its cell list: no outputs, stable cell ids."""
    cells = NOTEBOOKS[name]()
    for i, cell in enumerate(cells):
        cell["id"] = f"{name[:2]}-{i:02d}"
    nb = new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.validate(nb)
    return nb


def build(name: str) -> Path:
    """Write ``notebooks/<name>.ipynb``."""
    path = HERE / f"{name}.ipynb"
    nbformat.write(make(name), path)
    return path


def main(argv: list[str]) -> int:
    names = argv or list(NOTEBOOKS)
    unknown = [n for n in names if n not in NOTEBOOKS]
    if unknown:
        print(f"unknown notebook(s): {unknown}; known: {list(NOTEBOOKS)}", file=sys.stderr)
        return 2
    for name in names:
        print("wrote", build(name).relative_to(HERE.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
