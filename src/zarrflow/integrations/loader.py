"""Shuffled training batches streamed from Zarr arrays: :func:`batches`.

A training loop wants every row once per epoch, in a fresh random order, a
batch at a time, without loading the dataset. Reading rows at random would
fetch and decode a whole chunk for every row, so the shuffle is
**chunk-aware**, as in tf.data's and WebDataset's shard-then-buffer design:

1. The leading axis is cut into *blocks* of whole chunks (the first array's
   chunk length along axis 0 — its shard length when sharded — or
   ``block_rows``).
2. Each epoch visits the blocks in a random order (a permutation drawn from
   the epoch's seed), reading up to ``parallel`` blocks at once, each with
   the chunk engine's batched read (``a[start:stop]``), on local threads or
   as ``zarrflow-read-rows`` tasks on a ``distributed`` cluster.
3. Rows of arriving blocks join a *shuffle buffer* of at most
   ``shuffle_buffer`` rows (plus one block); batches are drawn from it at
   random, so rows of different blocks mix.

Every row is yielded exactly once per epoch (the last, shorter batch of an
epoch is dropped with ``drop_last=True``); the same ``seed`` gives the same
batches, another seed another order. Memory stays bounded: at most
``prefetch`` finished batches wait for the consumer, ``parallel`` blocks are
being read, and the buffer holds at most ``shuffle_buffer`` rows plus one
block. Breaking out of the loop (or :meth:`BatchStream.close`) stops the
reader and cancels reads not yet started.

The result is a plain Python iterator, so it plugs into any framework::

    # PyTorch
    class ZarrDataset(torch.utils.data.IterableDataset):
        def __iter__(self):
            return zf.batches(group, 256, seed=0)

    # JAX / Keras: iterate and convert
    for batch in zf.batches(group, 256, seed=0):
        step(jax.numpy.asarray(batch["x"]))
"""

from __future__ import annotations

import itertools
import queue
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from zarrflow.errors import ValueShapeError
from zarrflow.hierarchy import Array, Group
from zarrflow.parallel.scheduling import Backend, default_parallelism, resolve_backend

__all__ = ["BatchStream", "batches", "read_rows"]

Batch = np.ndarray | dict[str, np.ndarray] | tuple[np.ndarray, ...]
_DONE = object()


def _named_arrays(source: Any) -> tuple[list[str], list[Array], str]:
    """The arrays to draw from, their names, and the form a batch takes."""
    if isinstance(source, Array):
        return [source.basename or "data"], [source], "array"
    if isinstance(source, Group):
        pairs = source.arrays()
        return [n for n, _ in pairs], [a for _, a in pairs], "dict"
    if isinstance(source, Mapping):
        return list(source), list(source.values()), "dict"
    if isinstance(source, Sequence) and not isinstance(source, str | bytes):
        return [str(i) for i in range(len(source))], list(source), "tuple"
    raise TypeError(
        f"batches() takes an Array, a Group, a dict of Arrays or a sequence of Arrays, "
        f"not {type(source).__name__}"
    )


def _check_arrays(names: list[str], arrays: list[Array]) -> int:
    """The shared length of the leading axis (every array needs one)."""
    if not arrays:
        raise ValueShapeError("batches() needs at least one array")
    lengths = {}
    for name, a in zip(names, arrays, strict=True):
        if not isinstance(a, Array):
            raise TypeError(f"batches(): member {name!r} is a {type(a).__name__}, not an Array")
        if a.ndim == 0:
            raise ValueShapeError(f"batches(): array {a.name!r} is 0-d: it has no rows")
        lengths[name] = a.shape[0]
    if len(set(lengths.values())) != 1:
        raise ValueShapeError(
            f"batches(): the arrays must share their leading axis; lengths are {lengths}"
        )
    return next(iter(lengths.values()))


def read_rows(arrays: Sequence[Array], start: int, stop: int) -> list[np.ndarray]:
    """Rows ``[start, stop)`` of each array (one block of a :class:`BatchStream`).

    Parameters
    ----------
    arrays
        Arrays sharing a leading axis.
    start, stop
        The rows to read.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-read-rows", shape=(6,), chunks=(3,), dtype="i2")
    >>> a[:] = range(6)
    >>> read_rows([a], 2, 5)[0].tolist()
    [2, 3, 4]
    """
    return [a[start:stop] for a in arrays]


class _BlockReader:
    """Reads row blocks of every array: on a pool of threads, or as cluster tasks.

    A block is whole chunks along the leading axis, so the read of one block
    is the chunk engine's batched read of those chunks (``a[start:stop]``),
    run in one thread or one ``zarrflow-read-rows`` task on a worker.
    """

    def __init__(self, arrays: list[Array], backend: Backend, parallel: int) -> None:
        self._arrays = arrays
        self._client = backend.client if backend.kind == "distributed" else None
        self._sync = backend.kind == "sync"
        self._pool = None if self._client or self._sync else ThreadPoolExecutor(parallel)
        self._token = uuid.uuid4().hex

    def submit(self, start: int, stop: int) -> Future | Any:
        if self._client is not None:
            key = f"zarrflow-read-rows-{self._token}-{start}"
            return self._client.submit(read_rows, self._arrays, start, stop, key=key, pure=False)
        if self._pool is None:
            return _done_future(read_rows(self._arrays, start, stop))
        return self._pool.submit(read_rows, self._arrays, start, stop)

    def result(self, future: Any) -> list[np.ndarray]:
        return future.result()

    def cancel(self, futures: Sequence[Any]) -> None:
        for f in futures:
            f.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _done_future(value: Any) -> Future:
    f: Future = Future()
    f.set_result(value)
    return f


class _RowPool:
    """The shuffle buffer: rows of every array in preallocated storage.

    Adding a block copies its rows in once; a shuffled batch is a uniform
    draw without replacement from the pool, whose holes are then filled from
    the pool's tail, so each row is copied a fixed number of times however
    large the buffer is.
    """

    def __init__(self, like: list[np.ndarray], capacity: int) -> None:
        self._rows = [np.empty((capacity, *p.shape[1:]), dtype=p.dtype) for p in like]
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, block: list[np.ndarray]) -> None:
        n, k = self._n, len(block[0])
        for rows, part in zip(self._rows, block, strict=True):
            rows[n : n + k] = part
        self._n = n + k

    def take(self, size: int, rng: np.random.Generator, shuffle: bool) -> list[np.ndarray]:
        """Remove ``size`` rows (fewer when fewer are left): random ones, or the first ones."""
        n = self._n
        size = min(size, n)
        if not shuffle:
            out = [rows[:size].copy() for rows in self._rows]
            for rows in self._rows:
                rows[: n - size] = rows[size:n]
        else:
            picked = rng.choice(n, size, replace=False)
            out = [rows[picked] for rows in self._rows]
            holes = picked[picked < n - size]
            tail = np.arange(n - size, n)
            sources = tail[~np.isin(tail, picked)]
            for rows in self._rows:
                rows[holes] = rows[sources]
        self._n = n - size
        return out


class _Producer:
    """The reader thread's side: reads blocks, shuffles rows, queues batches.

    It holds no reference to the :class:`BatchStream` that consumes it, so a
    stream dropped without ``close()`` is collected and stops its reader.
    """

    def __init__(self, names, form, nrows, reader, out, stop, options) -> None:
        self.names, self.form, self.nrows = names, form, nrows
        self.reader, self.out, self.stop = reader, out, stop
        (
            self.batch_size,
            self.shuffle,
            self.seed,
            self.epochs,
            self.drop_last,
            self.parallel,
            self.shuffle_buffer,
            self.block_rows,
        ) = options
        self.blocks_read = 0

    def run(self) -> None:
        try:
            epoch = 0
            while self.epochs is None or epoch < self.epochs:
                if not self._run_epoch(epoch):
                    return
                epoch += 1
        except BaseException as e:  # handed to the consumer, raised there
            self._put(e)
            return
        self._put(_DONE)

    def _put(self, item: Any) -> bool:
        """Hand ``item`` to the consumer; False once the stream was closed."""
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _block_order(self, rng: np.random.Generator) -> list[tuple[int, int]]:
        starts = range(0, self.nrows, self.block_rows)
        blocks = [(s, min(s + self.block_rows, self.nrows)) for s in starts]
        if self.shuffle:
            return [blocks[i] for i in rng.permutation(len(blocks))]
        return blocks

    def _blocks(self, order: list[tuple[int, int]]) -> Iterator[list[np.ndarray]]:
        """Block contents in ``order``, with up to ``parallel`` reads in flight."""
        todo = iter(order)
        pending = [self.reader.submit(*b) for b in itertools.islice(todo, self.parallel)]
        try:
            while pending and not self.stop.is_set():
                data = self.reader.result(pending.pop(0))
                self.blocks_read += 1
                if (block := next(todo, None)) is not None:
                    pending.append(self.reader.submit(*block))
                yield data
        finally:
            self.reader.cancel(pending)

    def _run_epoch(self, epoch: int) -> bool:
        """Queue one epoch's batches; False when the stream was closed."""
        rng = np.random.default_rng(self.seed.spawn(epoch + 1)[-1])
        keep = self.shuffle_buffer if self.shuffle else 0
        pool: _RowPool | None = None
        for data in self._blocks(self._block_order(rng)):
            if pool is None:
                pool = _RowPool(data, keep + self.batch_size + self.block_rows)
            pool.add(data)
            while len(pool) >= self.batch_size + keep:
                if not self._put(self._batch(pool.take(self.batch_size, rng, self.shuffle))):
                    return False
        if self.stop.is_set():
            return False
        while pool is not None and len(pool):
            if len(pool) < self.batch_size and self.drop_last:
                break
            if not self._put(self._batch(pool.take(self.batch_size, rng, self.shuffle))):
                return False
        return True

    def _batch(self, parts: list[np.ndarray]) -> Batch:
        if self.form == "array":
            return parts[0]
        if self.form == "tuple":
            return tuple(parts)
        return dict(zip(self.names, parts, strict=True))


class BatchStream:
    """An iterator of training batches; see :func:`batches` (which builds it).

    Attributes
    ----------
    nrows
        Rows per epoch.
    batch_size, block_rows, shuffle_buffer, parallel
        The settings in force (defaults resolved).
    """

    def __init__(
        self,
        source: Any,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int | None,
        epochs: int | None,
        drop_last: bool,
        prefetch: int,
        parallel: int | None,
        shuffle_buffer: int | None,
        block_rows: int | None,
        scheduler: Any,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, not {prefetch}")
        names, arrays, form = _named_arrays(source)
        self.nrows = _check_arrays(names, arrays)
        self.batch_size = int(batch_size)
        stored = arrays[0].shards or arrays[0].chunks  # whole stored objects (shards) per block
        self.block_rows = int(block_rows or max(1, stored[0]))
        if shuffle_buffer is None:  # rows of several blocks mix in every batch
            shuffle_buffer = max(4 * self.batch_size, 4 * self.block_rows)
        self.shuffle_buffer = int(shuffle_buffer)
        self.parallel = int(parallel or default_parallelism())
        self._drop_last = drop_last
        self._reader = _BlockReader(arrays, resolve_backend(scheduler), self.parallel)
        self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._closed = False
        options = (
            self.batch_size,
            shuffle,
            np.random.SeedSequence(seed),
            epochs,
            drop_last,
            self.parallel,
            self.shuffle_buffer,
            self.block_rows,
        )
        self._producer = _Producer(
            names, form, self.nrows, self._reader, self._queue, self._stop, options
        )
        self._thread = threading.Thread(
            target=self._producer.run, name="zarrflow-batches", daemon=True
        )
        self._thread.start()

    @property
    def blocks_read(self) -> int:
        """Row blocks read so far (each covers whole chunks of the leading axis)."""
        return self._producer.blocks_read

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> Batch:
        if self._closed:
            raise StopIteration
        while True:
            try:
                item = self._queue.get(timeout=0.1)
                break
            except queue.Empty:
                if self._stop.is_set():  # closed: nothing more will come
                    raise StopIteration from None
        if item is _DONE:
            self._queue.put(_DONE)  # later calls keep raising StopIteration
            self._thread.join()
            raise StopIteration
        if isinstance(item, BaseException):
            self.close()
            raise item
        return item

    def close(self) -> None:
        """Stop reading: cancel reads not yet started and wait for the reader thread."""
        self._closed = True
        self._stop.set()
        self._thread.join()
        self._reader.close()

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)  # absent when __init__ refused its arguments
        if stop is not None:
            stop.set()

    def __len__(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(self.nrows, self.batch_size)
        return full + (1 if rest and not self._drop_last else 0)


def batches(
    source: Any,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int | None = None,
    epochs: int | None = 1,
    drop_last: bool = False,
    prefetch: int = 2,
    parallel: int | None = None,
    shuffle_buffer: int | None = None,
    block_rows: int | None = None,
    scheduler: Any = None,
) -> BatchStream:
    """Stream shuffled batches of rows from one or more arrays sharing a leading axis.

    Parameters
    ----------
    source
        An :class:`~zarrflow.Array` (batches are arrays), a
        :class:`~zarrflow.Group` or a dict of arrays (batches are dicts by
        name), or a list/tuple of arrays (batches are tuples).
    batch_size
        Rows per batch; the last batch of an epoch may be shorter.
    shuffle
        Visit blocks of whole chunks in a random order and mix their rows in a
        shuffle buffer; False streams rows in order.
    seed
        Seed of the random order: the same seed gives the same batches.
    epochs
        Passes over the data; None repeats until you stop.
    drop_last
        Drop each epoch's last batch when it is shorter than ``batch_size``.
    prefetch
        Finished batches that may wait for the consumer.
    parallel
        Blocks read at once (default: the number of cores).
    shuffle_buffer
        Rows kept back for mixing (default: 4 × ``batch_size`` or 4 blocks, the
        larger); more mixes better and holds more memory.
    block_rows
        Rows per block read (default: the first array's chunk length along axis 0).
    scheduler
        Where blocks are read: as for :meth:`~zarrflow.Array.chunk_stream`.

    Returns
    -------
    BatchStream
        An iterator of batches; close it (or use it in a ``with``) to stop early.

    Examples
    --------
    >>> import numpy as np, zarrflow as zf
    >>> g = zf.open_group("memory://doc-batches", mode="w")
    >>> x = g.create_array("x", shape=(10, 2), chunks=(4, 2), dtype="i4")
    >>> x[:] = np.arange(20).reshape(10, 2)
    >>> y = g.create_array("y", shape=(10,), chunks=(4,), dtype="i4")
    >>> y[:] = np.arange(10)
    >>> seen = [b["y"] for b in zf.batches(g, batch_size=4, seed=0)]
    >>> [len(b) for b in seen], sorted(np.concatenate(seen).tolist()) == list(range(10))
    ([4, 4, 2], True)
    """
    return BatchStream(
        source,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        epochs=epochs,
        drop_last=drop_last,
        prefetch=prefetch,
        parallel=parallel,
        shuffle_buffer=shuffle_buffer,
        block_rows=block_rows,
        scheduler=scheduler,
    )
