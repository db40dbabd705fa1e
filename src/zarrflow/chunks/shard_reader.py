"""Reading inner chunks out of stored shards: ranged, coalesced, index fetched once.

A :class:`ShardJob` names the inner chunks one operation needs from one shard
and where their values go; :class:`ShardReader` fetches and decodes jobs.
Per shard, it makes

* one ``get`` of the whole shard when the job needs every in-bounds inner
  chunk (the index is then sliced out of the shard: no index request);
* otherwise one ranged request for the shard index (a suffix or prefix range
  of its fixed encoded size), then ranged requests for only the inner chunks
  the job needs, **coalesced**: ranges whose gap is at most
  ``zarrflow.shard_coalesce_gap`` bytes become one request. The default
  (``None``) is 64 KiB on local stores — reading that gap costs less than a
  system call — and 1 MiB on remote stores, where one request costs tens of
  milliseconds, about a megabyte of transfer.

On a remote store the jobs of one call are fetched together: all their
indices in one overlapped batch (``Store.get_ranges``), then all inner-chunk
ranges in a second. Locally, jobs run one shard at a time. Missing shards
and inner chunks (index entries of ``2**64 - 1``) read as the fill value.
Indices are checked (size, checksum, entries inside the shard, no short
reads); a fault raises :class:`~zarrflow.CorruptChunkError` naming the array
and the shard key.

Consistency: a read concurrent with a rewrite of the same shard must not
take the index of one version and inner-chunk bytes of another. Checksums do
**not** catch that: with ``crc32c`` or zstd's checksum each inner chunk is
checked against its own bytes, and the bytes of another version's valid
inner chunk (or of a neighbour at the offset the old index names) pass the
check and decode to the wrong values. So, on a store with generations
(``Store.supports_generations``), a partial read takes the index with its
generation (``get_range_versioned``) and the inner chunks pinned to that
generation (``get_ranges_versioned``); if the shard changed in between
(:class:`~zarrflow.errors.GenerationConflictError`) the job is read again
from its index, up to ``_MAX_REREADS`` times, then whole in one request
(which cannot starve behind a busy writer); it never returns a mix. A
whole-shard read is one ``get`` and so one version already. Locally such
reads go one shard at a time; on a remote store the shards of one call are
read side by side by a small process-wide pool of threads (each shard's two
round trips overlap the others'). A store without generations (zip, plain HTTP) keeps the
batched, unpinned reads: a mix is possible there if someone rewrites the
shard while it is read. ``zarrflow.consistent_reads: False`` forces that path
everywhere, only to show what pinning prevents.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter
from typing import Any

import dask
import numpy as np

from zarrflow.chunks.scratch import scratch_chunk
from zarrflow.codecs import ShardingCodec, coalesce_ranges
from zarrflow.codecs.sharding import MISSING
from zarrflow.errors import CodecError, CorruptChunkError, GenerationConflictError
from zarrflow.indexing import ChunkProjection
from zarrflow.storage import RangeByteRequest, Store, SuffixByteRequest
from zarrflow.telemetry.events import HOOKS, emit_since

__all__ = ["LOCAL_GAP", "REMOTE_GAP", "ShardJob", "ShardReader"]

Index = tuple[int, ...]
#: default coalescing gap (bytes) on local and on remote stores
LOCAL_GAP = 64 * 1024
REMOTE_GAP = 1024 * 1024
_INDEX_CACHE_BYTES = 16 * 2**20  # decoded shard indices a cache keeps
_MAX_REREADS = 3  # a partial read re-reads a shard that changed under it, then reads it whole


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _remote_pool() -> ThreadPoolExecutor:
    """The process's threads overlapping pinned reads of several remote shards.

    Each thread only waits on the store (whose requests stay bounded by
    ``zarrflow.io_concurrency``); nothing it runs submits more work here, so
    callers on any number of Dask threads cannot deadlock on it.
    """
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(16, thread_name_prefix="zarrflow-shard-read")
        return _POOL


def _forget_pool() -> None:
    """In a forked child: the parent's threads did not come along; start afresh."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


class ShardJob:
    """The inner chunks one operation needs from one shard, and where they go.

    ``items`` are projections whose ``chunk_coords`` are inner-chunk
    coordinates local to the shard; ``out_selection`` indexes ``target``.
    ``whole`` asks for the whole shard in one request.
    """

    __slots__ = (
        "coords",
        "errors",
        "generation",
        "index",
        "items",
        "key",
        "pieces",
        "target",
        "whole",
    )

    def __init__(
        self, coords: Index, key: str, items: list[ChunkProjection], target: Any, whole: bool
    ) -> None:
        self.coords = coords
        self.key = key
        self.items = items
        self.target = target
        self.whole = whole
        self.index: np.ndarray | None = None  # the decoded shard index, once known
        self.generation: str | None = None  # the shard version ``index`` came from, if known
        self.pieces: list[Any] | None = None  # per item: its bytes or None; None: no shard
        self.errors: dict[int, BaseException] | None = None  # collect, don't raise (streams)


class ShardReader:
    """Fetch and decode :class:`ShardJob` values for one sharded array.

    Examples
    --------
    >>> import numpy as np, zarrflow as zf
    >>> a = zf.create("memory://doc-reader", shape=(4,), chunks=(1,), shards=(4,), dtype="u1")
    >>> a[:] = np.arange(1, 5, dtype="u1")
    >>> reader, out = a.engine.reader, np.zeros(2, "u1")
    >>> items = [ChunkProjection((k,), (slice(0, 1),), (slice(k - 2, k - 1),), True)
    ...          for k in (2, 3)]
    >>> reader.run([ShardJob((0,), "c/0", items, out, False)])
    >>> out.tolist()
    [3, 4]
    """

    __slots__ = ("codec", "fill", "name", "store")

    def __init__(self, store: Store, codec: ShardingCodec, name: str) -> None:
        self.store = store
        self.codec = codec
        self.fill = codec.fill
        self.name = name

    def corrupt(self, key: str, problem: Any, local: Index | None = None) -> CorruptChunkError:
        """The error for a fault in a stored shard, naming the array, shard key, inner chunk."""
        inner = f", inner chunk {local}" if local is not None else ""
        return CorruptChunkError(f"array {self.name!r}: shard key {key!r}{inner}: {problem}")

    # indices --------------------------------------------------------------------------
    def index_request(self) -> RangeByteRequest | SuffixByteRequest:
        """The byte request for a shard's index (a prefix or suffix range)."""
        size = self.codec.index_size
        if self.codec.index_location == "start":
            return RangeByteRequest(0, size)
        return SuffixByteRequest(size)

    def decode_index(self, key: str, data: Any, shard_nbytes: int | None) -> np.ndarray:
        try:
            return self.codec.decode_index(data, shard_nbytes)
        except CorruptChunkError as e:
            raise self.corrupt(key, e) from e

    def split_whole(self, key: str, data: Any) -> tuple[np.ndarray, list[memoryview | None]]:
        """The index and every inner chunk's bytes (C order, None when missing) of a shard."""
        view = memoryview(data).cast("B")
        try:
            raw_index = self.codec.index_bytes(view)
        except CorruptChunkError as e:
            raise self.corrupt(key, e) from e
        index = self.decode_index(key, raw_index, len(view))
        return index, [
            None if offset == MISSING else view[offset : offset + nbytes]
            for offset, nbytes in index.tolist()
        ]

    def fetch_indices(self, jobs: list[ShardJob]) -> None:
        """Fetch, in one batch of ranged requests, the indices the jobs do not know yet."""
        need = [j for j in jobs if j.index is None]
        if not need:
            return
        request = self.index_request()
        raw = self.store.get_ranges([(j.key, request) for j in need])
        for job, data in zip(need, raw, strict=True):
            if data is not None:
                job.index = self.decode_index(job.key, data, None)

    # fetching -------------------------------------------------------------------------
    def _fetch_whole(self, jobs: list[ShardJob]) -> None:
        keys = [j.key for j in jobs]
        values = self.store.get_many(keys) if len(keys) > 1 else [self.store.get(keys[0])]
        linear = self.codec.linear
        for job, data in zip(jobs, values, strict=True):
            if data is not None:
                job.index, pieces = self.split_whole(job.key, data)
                job.pieces = [pieces[linear(item.chunk_coords)] for item in job.items]

    def _plan_ranges(self, jobs: list[ShardJob], gap: int) -> tuple[list, list]:
        """Coalesced range requests for the present inner chunks the jobs need."""
        requests: list[tuple[str, RangeByteRequest]] = []
        owners: list[tuple[ShardJob, int, list[tuple[int, int, int]]]] = []
        linear = self.codec.linear
        for job in jobs:
            if job.index is None:
                continue  # no shard: every item reads as the fill value
            job.pieces = [None] * len(job.items)
            spans, members = [], []
            for k, item in enumerate(job.items):
                offset, nbytes = job.index[linear(item.chunk_coords)].tolist()
                if offset != MISSING:
                    spans.append((offset, offset + nbytes))
                    members.append(k)
            for start, end, group in coalesce_ranges(spans, gap):
                requests.append((job.key, RangeByteRequest(start, end)))
                owners.append((job, start, [(members[m], *spans[m]) for m in group]))
        return requests, owners

    def _fetch_partial(self, jobs: list[ShardJob]) -> None:
        self.fetch_indices(jobs)
        requests, owners = self._plan_ranges(jobs, self.gap())
        if not requests:
            return
        self._take(owners, self.store.get_ranges(requests))

    def _take(self, owners: list, values: list) -> None:
        """Cut fetched (coalesced) ranges into the jobs' inner-chunk pieces."""
        for (job, start, parts), data in zip(owners, values, strict=True):
            view = memoryview(data or b"").cast("B")
            for k, lo, hi in parts:
                piece = view[lo - start : hi - start]
                if len(piece) != hi - lo:
                    problem = f"bytes [{lo}, {hi}) lie beyond the end of the stored shard"
                    raise self.corrupt(job.key, problem, job.items[k].chunk_coords)
                job.pieces[k] = piece  # type: ignore[index]

    def gap(self) -> int:
        """The coalescing gap in bytes (``zarrflow.shard_coalesce_gap``, or the default)."""
        gap = dask.config.get("zarrflow.shard_coalesce_gap", None)
        if gap is None:
            return REMOTE_GAP if self.store.is_remote else LOCAL_GAP
        return int(gap)

    def pinned(self) -> bool:
        """True when partial reads take every range from one generation of the shard."""
        return bool(dask.config.get("zarrflow.consistent_reads", True)) and bool(
            self.store.supports_generations
        )

    def fetch(self, jobs: list[ShardJob]) -> None:
        """Fill ``job.pieces`` (and ``job.index``) for every job."""
        whole = [j for j in jobs if j.whole or not self.store.supports_partial_reads]
        partial = [j for j in jobs if not (j.whole or not self.store.supports_partial_reads)]
        if whole:
            self._fetch_whole(whole)
        if not partial:
            return
        if self.pinned():
            if self.store.is_remote and len(partial) > 1:  # overlap the shards' round trips
                list(_remote_pool().map(self._fetch_pinned, partial))
            else:
                for job in partial:
                    self._fetch_pinned(job)
        else:
            self._fetch_partial(partial)

    def fetch_index_pinned(self, job: ShardJob) -> None:
        """Read ``job``'s index with its generation (``job.index`` None: no shard)."""
        got = self.store.get_range_versioned(job.key, self.index_request())
        if got is None:
            job.index, job.generation = None, None
            return
        job.index = self.decode_index(job.key, got.data, None)
        job.generation = got.generation

    def _fetch_pinned(self, job: ShardJob) -> None:
        """Index and inner chunks of one shard, all from one generation.

        If the shard changes between the index and the ranges, the job is read
        again from its index; after ``_MAX_REREADS`` such changes (a writer
        rewriting the shard faster than ranges can be read) it is read whole,
        in one request, which is always one version.
        """
        gap = self.gap()
        for _ in range(_MAX_REREADS):
            try:
                if job.index is None or job.generation is None:
                    self.fetch_index_pinned(job)
                    if job.index is None:
                        job.pieces = None
                        return
                requests, owners = self._plan_ranges([job], gap)
                if not requests:
                    return
                data = self.store.get_ranges_versioned(
                    job.key, [r for _, r in requests], job.generation
                )
                if data is None:  # pragma: no cover - a pinned read raises instead
                    raise GenerationConflictError(self.store.url, job.key, job.generation)
                self._take(owners, data)
                return
            except GenerationConflictError:  # rewritten since the index was read
                job.index, job.generation, job.pieces = None, None, None
        self._fetch_whole([job])

    def _decode_item(self, job: ShardJob, item: ChunkProjection, piece: Any, scratch: Any) -> Any:
        """Decode one inner chunk into its place; returns the scratch chunk it may have made."""
        inner, target = self.codec.inner, job.target
        try:
            if item.is_complete_chunk:
                view = target[item.out_selection]
                flags = view.flags
                if view.shape == inner.chunk_shape and flags.c_contiguous and flags.writeable:
                    inner.decode(piece, out=view)
                    return scratch
            if scratch is None:
                scratch = scratch_chunk(inner.chunk_shape, inner.dtype)
            chunk = inner.decode(piece, out=scratch)
        except CodecError as e:
            raise self.corrupt(job.key, f"cannot be decoded: {e}", item.chunk_coords) from e
        target[item.out_selection] = chunk[item.chunk_selection]
        return scratch

    def place(self, job: ShardJob) -> None:
        """Decode a fetched job's inner chunks into its target (fill value where missing)."""
        pieces, fill, scratch = job.pieces, self.fill, None
        for k, item in enumerate(job.items):
            piece = None if pieces is None else pieces[k]
            if piece is None:
                job.target[item.out_selection] = fill
                continue
            try:
                scratch = self._decode_item(job, item, piece, scratch)
            except CorruptChunkError as e:
                if job.errors is None:
                    raise
                job.errors[k] = e

    def run(self, jobs: list[ShardJob]) -> None:
        """Fetch and decode jobs: one shard at a time locally, overlapped when remote."""
        if HOOKS:
            self._run_reporting(jobs)
            return
        if self.store.is_remote:
            self.fetch(jobs)
            for job in jobs:
                self.place(job)
            return
        for job in jobs:
            self.fetch([job])
            self.place(job)

    def _run_reporting(self, jobs: list[ShardJob]) -> None:
        """:meth:`run`, reporting ``storage`` (inner chunks' bytes) and ``decode`` phases."""
        groups = [jobs] if self.store.is_remote else [[job] for job in jobs]
        inner = self.codec.inner
        nbytes = inner.dtype.itemsize * int(np.prod(inner.chunk_shape))
        for group in groups:
            t0 = perf_counter()
            self.fetch(group)
            pieces = [p for j in group for p in (j.pieces or ()) if p is not None]
            emit_since(t0, "read", "storage", sum(len(p) for p in pieces), len(pieces))
            t0 = perf_counter()
            for job in group:
                self.place(job)
            emit_since(t0, "read", "decode", nbytes * len(pieces), len(pieces), "sharding")

    def run_cached(
        self,
        job: ShardJob,
        cache: dict[Index, np.ndarray] | None,
        run: Callable[[ShardJob], None] | None = None,
    ) -> None:
        """Run one job reusing (and filling) ``cache``: shard coords -> (index, generation).

        A cached index read with its generation serves a pinned read only while
        the shard keeps that generation: a rewritten shard fails the pinned
        read, which re-reads the index, and the cache then holds the new one.
        """
        run = run or (lambda j: self.run([j]))
        if cache is None:
            run(job)
            return
        cached = cache.get(job.coords)
        if cached is not None:
            job.index, job.generation = cached
        run(job)
        if job.index is None:
            return
        entry = (job.index, job.generation)
        if cached is None or cached[0] is not job.index:
            if cached is None and len(cache) >= max(1, _INDEX_CACHE_BYTES // job.index.nbytes):
                cache.clear()  # shards come in order: the old ones are done (and clear is atomic)
            cache[job.coords] = entry
