# %% [markdown]
# # Training from Zarr: shuffled batches with `zarrflow.batches`
#
# ExZarr's chunk-streaming notebook promises "ML training: stream batches from
# Zarr without loading the full dataset". This notebook does it in Python: a
# logistic regression, written in numpy alone, learns from an array that is
# never loaded whole, through `zf.batches`.
#
# **What you will learn**
#
# * why the shuffle is *chunk-aware* (random blocks of whole chunks, then a
#   shuffle buffer) and not row by row;
# * that every row arrives exactly once per epoch, in an order fixed by the seed;
# * how `prefetch` and `parallel` change read throughput, and what memory the
#   stream holds;
# * the two-line adapters for PyTorch, JAX and Keras.
#
# > **About the numbers.** Every timing is measured when the notebook runs;
# > read the ratios between measurements of the same run, not absolute times.

# %%
import os
import shutil
import tempfile
import time
import tracemalloc

import matplotlib.pyplot as plt
import numpy as np

import zarrflow as zf

workdir = tempfile.mkdtemp(prefix="zarrflow-nb08-")
cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
print(f"zarrflow {zf.__version__} | {cores} cores | scratch directory {workdir}")

# %% [markdown]
# ## A dataset larger than the prefetch window
#
# 200,000 rows of 32 features (`x`, float32, 25.6 MB) and a label (`y`),
# stored in chunks of 2,000 rows. The labels follow a hidden linear rule with
# noise, so a logistic regression can learn it. The stream below holds a few
# chunks at a time — a small fraction of the array.

# %%
rows, features, chunk_rows = 200_000, 32, 2_000
rng = np.random.default_rng(42)
true_w = rng.standard_normal(features).astype("f4")

g = zf.open_group(f"{workdir}/train.zarr", mode="w")
x = g.create_array(
    "x", shape=(rows, features), chunks=(chunk_rows, features), dtype="f4", compressor="zstd"
)
y = g.create_array("y", shape=(rows,), chunks=(chunk_rows,), dtype="i1", compressor="zstd")
for start in range(0, rows, 20 * chunk_rows):  # written in slabs: never all in memory
    stop = start + 20 * chunk_rows
    block = rng.standard_normal((stop - start, features)).astype("f4")
    logits = block @ true_w + 0.5 * rng.standard_normal(stop - start)
    x[start:stop] = block
    y[start:stop] = (logits > 0).astype("i1")
print(g.tree())
print(f"x: {x.nbytes / 1e6:.1f} MB in {x.nchunks} chunks of {x.chunks}")

# %% [markdown]
# ## Every row once per epoch, in an order fixed by the seed
#
# The stream cuts the leading axis into blocks of whole chunks, visits them
# in a random order, and mixes rows of several blocks in a shuffle buffer
# before drawing batches. Reading stays whole chunks (no chunk is decoded
# for a single row), yet a batch mixes rows from many chunks.

# %%
stream = zf.batches(g, batch_size=512, seed=0)
first = next(stream)
stream.close()
print("batch keys:", sorted(first), "| x:", first["x"].shape, "| y:", first["y"].shape)

row_index = zf.create(f"{workdir}/rows.zarr", shape=(rows,), chunks=(chunk_rows,), dtype="i8")
row_index[:] = np.arange(rows)
seen = np.concatenate(list(zf.batches(row_index, batch_size=512, seed=0)))
again = np.concatenate(list(zf.batches(row_index, batch_size=512, seed=0)))
other = np.concatenate(list(zf.batches(row_index, batch_size=512, seed=1)))
print("every row exactly once:", np.array_equal(np.sort(seen), np.arange(rows)))
print("same seed, same order:", np.array_equal(seen, again))
print("other seed, other order:", not np.array_equal(seen, other))
print("chunks mixed in the first batch:", len(np.unique(seen[:512] // chunk_rows)))

# %% [markdown]
# ## A logistic regression in numpy, fed by the stream
#
# Plain mini-batch gradient descent. Each epoch is one pass of `zf.batches`;
# the loss is recorded per batch.


# %%
# the model: p(y = 1 | x) = sigmoid(x · w + b)
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


w, b, lr = np.zeros(features, "f4"), 0.0, 0.5
losses = []
t0 = time.perf_counter()
for batch in zf.batches(g, batch_size=1024, seed=7, epochs=3, prefetch=4):
    xb, yb = batch["x"], batch["y"].astype("f4")
    p = sigmoid(xb @ w + b)
    eps = 1e-7
    losses.append(float(-np.mean(yb * np.log(p + eps) + (1 - yb) * np.log(1 - p + eps))))
    grad = p - yb
    w -= lr * (xb.T @ grad) / len(yb)
    b -= lr * float(grad.mean())
elapsed = time.perf_counter() - t0
accuracy = float(((sigmoid(x[:20_000] @ w + b) > 0.5) == y[:20_000]).mean())
cosine = float(w @ true_w / np.linalg.norm(w) / np.linalg.norm(true_w))
print(f"3 epochs, {len(losses)} batches in {elapsed:.2f} s")
print(f"accuracy on the first 20,000 rows: {accuracy:.3f}; cos(w, true w) = {cosine:.3f}")

# %% [markdown]
# ## Read throughput against `prefetch`, and the memory held
#
# With `prefetch=1` the reader waits for the consumer after every batch; a
# deeper prefetch lets reads run ahead while the model computes. The
# consumer below does a small amount of numpy work per batch (like a model
# step). Memory is the peak of live allocations during one epoch (tracemalloc,
# numpy's buffers included): it stays a few chunks' worth, not the array's 25.6 MB.


# %%
# one epoch with a model-like step per batch, at a given prefetch and read parallelism
def epoch_rate(prefetch, parallel, repeat=3):
    """Median MB/s of one epoch with a model-like step per batch, and its peak memory in MB.

    The timing runs without tracemalloc (which slows every allocation); the
    memory is measured in one more epoch of its own.
    """

    def epoch():
        nbytes = 0
        stream = zf.batches(g, batch_size=1024, seed=3, prefetch=prefetch, parallel=parallel)
        for batch in stream:
            nbytes += batch["x"].nbytes + batch["y"].nbytes
            sigmoid(batch["x"] @ w)  # the "model step"
        return nbytes

    rates = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        nbytes = epoch()
        rates.append(nbytes / (time.perf_counter() - t0) / 1e6)
    tracemalloc.start()
    epoch()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return float(np.median(rates)), peak / 1e6


def plain_stream_rate(repeat=3):
    rates = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        nbytes = sum(c.nbytes for _, c in x.chunk_stream(parallel=2))
        rates.append(nbytes / (time.perf_counter() - t0) / 1e6)
    return float(np.median(rates))


prefetches = [1, 2, 4, 8]
epoch_rate(2, 2)  # warm-up
results = {p: epoch_rate(p, 2) for p in prefetches}
serial = {p: epoch_rate(p, 1) for p in prefetches}
stream_mb_s = plain_stream_rate()
for p in prefetches:
    print(
        f"prefetch={p}: {results[p][0]:6.0f} MB/s with parallel=2, {serial[p][0]:6.0f} MB/s "
        f"with parallel=1; peak memory {results[p][1]:.1f} MB"
    )
print(f"plain chunk_stream(parallel=2) of x alone, in order: {stream_mb_s:.0f} MB/s")

# %% tags=["readme-figure"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
ax1.plot(losses, lw=0.8)
per_epoch = len(losses) // 3
for e in (1, 2):
    ax1.axvline(e * per_epoch, color="grey", ls=":", lw=0.8)
ax1.set(xlabel="batch", ylabel="log loss", title="logistic regression, 3 epochs")
ax2.plot(prefetches, [results[p][0] for p in prefetches], "o-", label="parallel=2")
ax2.plot(prefetches, [serial[p][0] for p in prefetches], "s--", label="parallel=1")
ax2.axhline(stream_mb_s, color="grey", ls=":", label="chunk_stream, in order")
ax2.set(xlabel="prefetch (batches)", ylabel="MB/s", title="read throughput vs prefetch")
ax2.set_xscale("log", base=2)
ax2.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Frameworks: two lines each
#
# `zf.batches` returns a plain iterator of numpy arrays, so no framework is a
# dependency:
#
# ```python
# # PyTorch
# class ZarrBatches(torch.utils.data.IterableDataset):
#     def __iter__(self):
#         return zf.batches(group, 1024, seed=torch.initial_seed() % 2**32)
#
# # JAX
# for batch in zf.batches(group, 1024, seed=0):
#     state = train_step(state, jax.tree.map(jnp.asarray, batch))
#
# # Keras
# model.fit(((b["x"], b["y"]) for b in zf.batches(group, 1024, epochs=None)), steps_per_epoch=n)
# ```
#
# On a `distributed` cluster, pass `scheduler=client` (or just have a client
# active): blocks are read by `zarrflow-read-rows` tasks on the workers and
# only the rows travel to the training process.

# %%
shutil.rmtree(workdir, ignore_errors=True)
