"""Tests for ``zarrflow.indexing``: selections projected onto chunk grids.

Every property test cuts a numpy array into padded chunks (as storage holds
them), replays the indexer's projections against those chunks, and compares
with numpy's own indexing, for reads and for writes.
"""

from __future__ import annotations

import doctest
import importlib
import itertools
import math
import uuid
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zarrflow as zf
from zarrflow.errors import AllocationError, SelectionError
from zarrflow.indexing import (
    AdvancedIndexer,
    ArrayDimIndexer,
    BasicIndexer,
    ChunkProjection,
    CoordinateIndexer,
    MaskIndexer,
    OrthogonalIndexer,
    SliceDimIndexer,
    chunk_extent,
    is_basic_selection,
    is_coordinate_selection,
    is_mask_selection,
    is_orthogonal_selection,
    make_indexer,
    normalize_integer_selection,
    selection_kind,
    slices_from_start_stop,
)

PAD = -1
SETTINGS = settings(max_examples=200, deadline=None)

# ---------------------------------------------------------------- helpers


def cut_chunks(arr: np.ndarray, chunks: tuple[int, ...]) -> dict[tuple[int, ...], np.ndarray]:
    """Split ``arr`` into full-``chunks``-shaped chunks, edge chunks padded with PAD."""
    grid = [math.ceil(s / c) for s, c in zip(arr.shape, chunks, strict=True)]
    stored = {}
    for coords in itertools.product(*(range(g) for g in grid)):
        chunk = np.full(chunks, PAD, dtype=arr.dtype)
        region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, chunks, strict=True))
        part = arr[region]
        chunk[tuple(slice(0, n) for n in part.shape)] = part
        stored[coords] = chunk
    return stored


def assemble(stored: dict, shape: tuple[int, ...], chunks: tuple[int, ...]) -> np.ndarray:
    """Rebuild an array from its chunks, checking the padding was never touched."""
    arr = np.empty(shape, dtype=np.int64)
    for coords, chunk in stored.items():
        extent = chunk_extent(coords, shape, chunks)
        inner = tuple(slice(0, n) for n in extent)
        region = tuple(
            slice(i * c, i * c + n) for i, c, n in zip(coords, chunks, extent, strict=True)
        )
        arr[region] = chunk[inner]
        assert (chunk == PAD).sum() == chunk.size - math.prod(extent), "padding was written"
    return arr


def check_projections(indexer: Any, shape: tuple, chunks: tuple, ordered: bool) -> list:
    """Check chunk coverage, completeness, uniqueness and order of the projections.

    Complete means every in-bounds element of the chunk is taken exactly once.
    """
    projections = list(indexer)
    assert len(projections) == indexer.nchunks
    coords = [p.chunk_coords for p in projections]
    assert len(set(coords)) == len(coords)
    if ordered:
        assert coords == sorted(coords)
    for p in projections:
        assert isinstance(p, ChunkProjection)
        size = math.prod(chunks)
        taken = np.arange(size).reshape(chunks)[p.chunk_selection].reshape(-1)
        counts = np.bincount(taken, minlength=size).reshape(chunks)
        inner = tuple(slice(0, n) for n in chunk_extent(p.chunk_coords, shape, chunks))
        assert counts.sum() == counts[inner].sum(), "selection reaches past the array edge"
        assert p.is_complete_chunk == bool((counts[inner] == 1).all())
    return projections


def read(indexer: Any, arr: np.ndarray, chunks: tuple, flat: bool = False) -> np.ndarray:
    stored = cut_chunks(arr, chunks)
    out = np.full(indexer.shape, -7, dtype=arr.dtype)
    target = out.reshape(-1) if flat else out
    for p in check_projections(indexer, arr.shape, chunks, ordered=not flat):
        target[p.out_selection] = stored[p.chunk_coords][p.chunk_selection]
    return out


def write(indexer: Any, arr: np.ndarray, chunks: tuple, value: np.ndarray, flat: bool = False):
    stored = cut_chunks(arr, chunks)
    source = value.reshape(-1) if flat else value
    for p in indexer:
        part = source[p.out_selection]
        if not p.is_complete_chunk:  # read-modify-write
            stored[p.chunk_coords][p.chunk_selection] = part
        elif np.shape(part) == chunks:  # the part is the whole new chunk
            stored[p.chunk_coords] = np.array(part)
        else:  # no read: a fresh fill-valued buffer
            stored[p.chunk_coords] = np.full(chunks, PAD, dtype=arr.dtype)
            stored[p.chunk_coords][p.chunk_selection] = part
    return assemble(stored, arr.shape, chunks)


def value_for(shape: tuple[int, ...]) -> np.ndarray:
    return np.arange(math.prod(shape), dtype=np.int64).reshape(shape) + 10_000


# ---------------------------------------------------------------- strategies


@st.composite
def shapes_and_chunks(draw: Any, min_ndim: int = 0) -> tuple[tuple, tuple]:
    """0-4 dims of sizes 0-20 (at most ~2000 elements), chunks 1-7."""
    ndim = draw(st.integers(min_ndim, 4))
    shape = []
    for _ in range(ndim):
        budget = 2000 // max(1, math.prod(shape))
        shape.append(draw(st.integers(0, min(20, max(1, budget)))))
    chunks = tuple(draw(st.integers(1, 7)) for _ in range(ndim))
    return tuple(shape), chunks


def slices(n: int) -> st.SearchStrategy[slice]:
    bound = st.none() | st.integers(-n - 3, n + 3)
    step = st.none() | st.integers(-25, 25).filter(bool)
    return st.builds(slice, bound, bound, step)


def ints(n: int) -> st.SearchStrategy[int]:
    return st.integers(-n, n - 1)


@st.composite
def basic_selections(draw: Any, shape: tuple) -> Any:
    keys: list[Any] = [draw(slices(n) | ints(n)) if n else draw(slices(n)) for n in shape]
    if draw(st.booleans()):  # an ellipsis standing for a run of whole axes
        at = draw(st.integers(0, len(keys)))
        run = draw(st.integers(0, len(keys) - at))
        keys[at : at + run] = [Ellipsis]
    elif draw(st.booleans()):  # fewer keys than axes
        keys = keys[: draw(st.integers(0, len(keys)))]
    for _ in range(draw(st.integers(0, 2))):
        keys.insert(draw(st.integers(0, len(keys))), None)
    if len(keys) == 1 and draw(st.booleans()):
        return keys[0]
    return tuple(keys)


def index_arrays(n: int) -> st.SearchStrategy[np.ndarray]:
    if n == 0:
        return st.just(np.zeros(0, dtype=np.int64))
    return st.lists(ints(n), max_size=8).map(lambda v: np.array(v, dtype=np.int64))


def masks(n: int) -> st.SearchStrategy[np.ndarray]:
    return st.lists(st.booleans(), min_size=n, max_size=n).map(lambda v: np.array(v, bool))


def full_masks(shape: tuple) -> st.SearchStrategy[np.ndarray]:
    """Boolean masks of the full shape: all, none, or random at a drawn density."""
    density = st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0])
    seeds = st.integers(0, 2**32 - 1)
    return st.builds(lambda p, seed: np.random.default_rng(seed).random(shape) < p, density, seeds)


@st.composite
def orthogonal_selections(draw: Any, shape: tuple) -> tuple:
    keys = []
    for n in shape:
        choices = slices(n) | index_arrays(n) | masks(n)
        keys.append(draw(choices | ints(n)) if n else draw(choices))
    return tuple(keys)


@st.composite
def coordinate_selections(draw: Any, shape: tuple) -> tuple:
    if 0 in shape:
        return tuple(np.zeros(0, np.int64) for _ in shape)
    bshape = tuple(draw(st.lists(st.integers(0, 4), max_size=2)))
    keys: list[Any] = []
    for n in shape:
        kind = draw(st.sampled_from(["full", "broadcast", "scalar"]))
        if kind == "scalar":
            keys.append(draw(ints(n)))
            continue
        ashape = bshape[draw(st.integers(0, len(bshape))) :] if kind == "broadcast" else bshape
        flat = draw(st.lists(ints(n), min_size=math.prod(ashape), max_size=math.prod(ashape)))
        keys.append(np.array(flat, dtype=np.int64).reshape(ashape))
    if not any(isinstance(k, np.ndarray) for k in keys):
        keys[0] = np.array(keys[0])[None]
    return tuple(keys)


def ix_reference(selection: tuple, shape: tuple) -> tuple[tuple, tuple]:
    """The numpy ``np.ix_`` selection and result shape of an orthogonal selection."""
    axes = []
    out_shape = []
    for key, n in zip(selection, shape, strict=True):
        if isinstance(key, slice):
            idx = np.arange(n)[key]
        elif isinstance(key, np.ndarray) and key.dtype == bool:
            idx = np.flatnonzero(key)
        else:
            idx = np.atleast_1d(np.asarray(key) % max(n, 1))
            if np.ndim(key) == 0:
                axes.append(idx)
                continue
        axes.append(idx)
        out_shape.append(len(idx))
    return np.ix_(*axes), tuple(out_shape)


# ---------------------------------------------------------------- properties


@SETTINGS
@given(data=st.data())
def test_basic_matches_numpy(data: Any) -> None:
    shape, chunks = data.draw(shapes_and_chunks())
    selection = data.draw(basic_selections(shape))
    arr = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
    indexer = BasicIndexer(selection, shape, chunks)
    expected = arr[selection]
    assert indexer.shape == expected.shape
    np.testing.assert_array_equal(read(indexer, arr, chunks), expected)
    value = value_for(expected.shape)
    reference = arr.copy()
    reference[selection] = value
    np.testing.assert_array_equal(write(indexer, arr, chunks, value), reference)
    assert indexer.is_complete == all(p.is_complete_chunk for p in indexer)


@SETTINGS
@given(data=st.data())
def test_orthogonal_matches_numpy_ix(data: Any) -> None:
    shape, chunks = data.draw(shapes_and_chunks())
    selection = data.draw(orthogonal_selections(shape))
    arr = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
    indexer = OrthogonalIndexer(selection, shape, chunks)
    ix, out_shape = ix_reference(selection, shape)
    expected = arr[ix].reshape(out_shape)
    assert indexer.shape == out_shape
    np.testing.assert_array_equal(read(indexer, arr, chunks), expected)
    value = value_for(out_shape)
    reference = arr.copy()
    reference[ix] = value.reshape(arr[ix].shape)
    np.testing.assert_array_equal(write(indexer, arr, chunks, value), reference)


@SETTINGS
@given(data=st.data())
def test_coordinate_matches_numpy(data: Any) -> None:
    shape, chunks = data.draw(shapes_and_chunks(min_ndim=1))
    selection = data.draw(coordinate_selections(shape))
    arr = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
    indexer = CoordinateIndexer(selection, shape, chunks)
    expected = arr[selection]
    assert indexer.shape == expected.shape
    np.testing.assert_array_equal(read(indexer, arr, chunks, flat=True), expected)
    value = value_for(expected.shape)
    reference = arr.copy()
    reference[selection] = value
    np.testing.assert_array_equal(write(indexer, arr, chunks, value, flat=True), reference)


@SETTINGS
@given(data=st.data())
def test_mask_matches_numpy(data: Any) -> None:
    shape, chunks = data.draw(shapes_and_chunks())
    mask = data.draw(full_masks(shape))
    arr = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
    indexer = MaskIndexer(mask, shape, chunks)
    expected = arr[mask]
    assert indexer.shape == expected.shape
    np.testing.assert_array_equal(read(indexer, arr, chunks, flat=True), expected)
    value = value_for(expected.shape)
    reference = arr.copy()
    reference[mask] = value
    np.testing.assert_array_equal(write(indexer, arr, chunks, value, flat=True), reference)


@SETTINGS
@given(data=st.data())
def test_make_indexer_routes_like_numpy(data: Any) -> None:
    shape, chunks = data.draw(shapes_and_chunks(min_ndim=1))
    selection = data.draw(
        basic_selections(shape) | coordinate_selections(shape) | full_masks(shape)
    )
    arr = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
    indexer = make_indexer(selection, shape, chunks)
    flat = isinstance(indexer, CoordinateIndexer | MaskIndexer)
    np.testing.assert_array_equal(read(indexer, arr, chunks, flat=flat), arr[selection])


# ---------------------------------------------------------------- explicit cases


def test_full_selection_projections_are_complete_and_fast_path() -> None:
    indexer = BasicIndexer(Ellipsis, (10, 8), (4, 4))
    assert indexer.nchunks == 6 and indexer.is_complete
    edge = next(p for p in indexer if p.chunk_coords == (2, 1))
    assert edge.chunk_selection == (slice(0, 2, 1), slice(0, 4, 1))
    assert edge.out_selection == (slice(8, 10, 1), slice(4, 8, 1))
    assert [d.nchunks for d in indexer.dim_indexers] == [3, 2]


def test_negative_step_reverses_out_selection() -> None:
    (p,) = BasicIndexer(slice(None, None, -1), (4,), (4,))
    assert p.chunk_selection == (slice(0, 4, 1),)
    assert p.out_selection == (slice(3, None, -1),)
    assert p.is_complete_chunk


def test_int_axes_dropped_and_newaxis_added() -> None:
    indexer = BasicIndexer((None, 3, Ellipsis, None), (5, 6), (2, 2))
    assert indexer.shape == (1, 6, 1)
    assert indexer.drop_axes == (0,)
    assert next(iter(indexer)).chunk_selection == (1, slice(0, 2, 1))


def test_zero_d_and_zero_length() -> None:
    (p,) = BasicIndexer((), (), ())
    assert p == ChunkProjection((), (), (), True)
    assert BasicIndexer(Ellipsis, (0, 5), (2, 2)).nchunks == 0
    assert BasicIndexer(slice(3, 3), (5,), (2,)).shape == (0,)
    assert MaskIndexer(np.array(True), (), ()).shape == (1,)


def test_dim_indexers_group_unsorted_and_repeated() -> None:
    dim = ArrayDimIndexer(np.array([7, 0, 7, -1, 1]), 8, 4)
    assert [p.dim_chunk_ix for p in dim] == [0, 1]
    second = dim.projections[1]
    np.testing.assert_array_equal(second.dim_chunk_sel, [3, 3, 3])
    np.testing.assert_array_equal(second.dim_out_sel, [0, 2, 3])
    assert [p.dim_chunk_ix for p in SliceDimIndexer(slice(1, None, 9), 30, 4)] == [0, 2, 4, 7]


def test_repeated_indices_are_never_complete() -> None:
    (p,) = OrthogonalIndexer(([0, 1, 1],), (2,), (4,))
    assert not p.is_complete_chunk
    (p,) = CoordinateIndexer(([1, 0, 0],), (2,), (4,))
    assert not p.is_complete_chunk


def test_complete_one_d_points_give_identity_selection() -> None:
    (p,) = CoordinateIndexer(np.array([2, 0, 1]), (3,), (3,))
    assert p.is_complete_chunk and p.chunk_selection == (slice(0, 3, 1),)
    np.testing.assert_array_equal(p.out_selection, [1, 2, 0])


def test_orthogonal_combines_ix() -> None:
    indexer = OrthogonalIndexer(([2, 0], 1, [1, 0]), (3, 3, 3), (3, 3, 3))
    (p,) = indexer
    chunk = np.arange(27).reshape(3, 3, 3)
    out = np.empty(indexer.shape, int)
    out[p.out_selection] = chunk[p.chunk_selection]
    np.testing.assert_array_equal(out, chunk[np.ix_([2, 0], [1], [1, 0])][:, 0])
    assert indexer.shape == (2, 2)


def test_coordinate_million_points() -> None:
    rng = np.random.default_rng(0)
    points = tuple(rng.integers(0, 4096, 1_000_000) for _ in range(2))
    indexer = CoordinateIndexer(points, (4096, 4096), (256, 256))
    assert indexer.nchunks == 256 and indexer.shape == (1_000_000,)
    total = sum(len(p.chunk_selection[0]) for p in indexer)
    assert total == 1_000_000


def test_routing_helpers() -> None:
    shape = (4, 5)
    assert is_basic_selection((1, slice(None), Ellipsis, None))
    assert not is_basic_selection(([1], 2))
    assert is_mask_selection(np.zeros(shape, bool), shape)
    assert not is_mask_selection(np.zeros((4,), bool), shape)
    assert is_coordinate_selection(([1, 2], 0), shape)
    assert is_coordinate_selection(np.array([[0, 1]]), (3,))
    assert is_orthogonal_selection(([1, 2], slice(None)), shape)
    assert selection_kind([0, 3], shape) == "orthogonal"
    assert selection_kind(np.ones(shape, bool), shape) == "mask"
    # a mask and an integer on every axis: numpy pairs them as points
    assert selection_kind((np.array([True, False, True, True]), 1), shape) == "coordinate"
    assert selection_kind((np.array([True, False, True, True]), slice(None)), shape) == "orthogonal"


def test_slices_from_start_stop() -> None:
    assert slices_from_start_stop((5, 6)) == (slice(None), slice(None))
    assert slices_from_start_stop((5, 6), start=1, step=(None, -1)) == (
        slice(1, None, None),
        slice(1, None, -1),
    )
    with pytest.raises(SelectionError, match="step cannot be zero"):
        slices_from_start_stop((5,), step=0)
    with pytest.raises(SelectionError, match="expected 2"):
        slices_from_start_stop((5, 6), start=(1, 2, 3))
    with pytest.raises(SelectionError, match="not an integer"):
        slices_from_start_stop((5,), stop=2.5)


def test_normalize_integer_selection() -> None:
    assert normalize_integer_selection(-5, 5) == 0
    with pytest.raises(SelectionError, match="out of bounds"):
        normalize_integer_selection(-6, 5)


@pytest.mark.parametrize(
    ("make", "selection", "shape", "message"),
    [
        (BasicIndexer, 5, (5,), "index 5 is out of bounds for axis 0 of length 5"),
        (BasicIndexer, (0, -4), (2, 3), "index -4 is out of bounds for axis 1"),
        (BasicIndexer, (0, 0, 0), (2, 3), "too many indices: 3 given"),
        (BasicIndexer, (Ellipsis, 0, Ellipsis), (2, 3), "single ellipsis"),
        (BasicIndexer, 1.0, (5,), "is a float"),
        (BasicIndexer, slice(0, 4, 0), (5,), "step on axis 0 cannot be zero"),
        (BasicIndexer, slice(0.5, 4), (5,), "slice start 0.5"),
        (BasicIndexer, "a", (5,), "unsupported index str"),
        (BasicIndexer, [1, 2], (5,), "use oindex/vindex"),
        (BasicIndexer, 0, (0,), "out of bounds for axis 0 of length 0"),
        (OrthogonalIndexer, (np.ones(3, bool),), (4,), r"boolean mask of shape \(3,\)"),
        (OrthogonalIndexer, ([0, 4],), (4,), "index 4 is out of bounds"),
        (OrthogonalIndexer, ([-5],), (4,), "index -5 is out of bounds"),
        (OrthogonalIndexer, (np.array([0.5]),), (4,), "expected a 1-D integer array"),
        (OrthogonalIndexer, (np.zeros((1, 1), int),), (4,), "expected a 1-D integer"),
        (OrthogonalIndexer, (None,), (4,), "newaxis"),
        (OrthogonalIndexer, ({1},), (4,), "unsupported index"),
        (CoordinateIndexer, ([0, 1],), (4, 4), "one integer array per axis"),
        (CoordinateIndexer, ([0, 1], [0, 1, 2]), (4, 4), "cannot be broadcast.*a.oindex"),
        (CoordinateIndexer, ([0, 9], [0, 1]), (4, 4), "index 9 is out of bounds for axis 0"),
        (CoordinateIndexer, ([0.0], [1]), (4, 4), "expected an integer array"),
        (CoordinateIndexer, (slice(None), [1]), (4, 4), "expected an integer array"),
        (MaskIndexer, np.ones((4, 3), bool), (4, 4), r"expected a bool array of shape \(4, 4\)"),
        (MaskIndexer, np.ones((4, 4), int), (4, 4), "int64 array"),
        (make_indexer, (slice(None), {1}), (4, 4), "unsupported selection"),
    ],
)
def test_bad_selections_raise(make: Any, selection: Any, shape: tuple, message: str) -> None:
    with pytest.raises(SelectionError, match=message) as info:
        make(selection, shape, tuple(2 for _ in shape))
    assert f"shape {shape}" in str(info.value)
    assert isinstance(info.value, IndexError)


@pytest.mark.parametrize(
    "module", ["", ".advanced", ".basic", ".common", ".coordinate", ".orthogonal", ".selection"]
)
def test_docstring_examples(module: str) -> None:
    mod = importlib.import_module("zarrflow.indexing" + module)
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def _reference_basic_projections(indexer: BasicIndexer, selection: Any) -> list:
    """The projections built the slow, obvious way: one per combination of axis projections."""
    from zarrflow.indexing import replace_ellipsis

    slots, dims = [], iter(indexer.dim_indexers)
    for s in replace_ellipsis(selection, indexer.array_shape):
        slots.append([None] if s is None else list(next(dims)))
    out = []
    for combo in itertools.product(*slots):
        axes = [d for d in combo if d is not None]
        coords = tuple(d.dim_chunk_ix for d in axes)
        chunk_sel = tuple(d.dim_chunk_sel for d in axes)
        out_sel = tuple(
            0 if d is None else d.dim_out_sel
            for d in combo
            if d is None or d.dim_out_sel is not None
        )
        complete = all(d.is_complete_chunk for d in axes)
        out.append(ChunkProjection(coords, chunk_sel, out_sel, complete))
    return out


@pytest.mark.parametrize(
    ("selection", "shape", "chunks"),
    [
        (Ellipsis, (9, 7), (2, 3)),
        ((slice(None, None, -2), 3, None, Ellipsis), (9, 7, 5), (2, 3, 4)),
        ((None, 4, slice(1, 6, 2)), (9, 7), (4, 4)),
        ((slice(3, 3),), (9, 7), (2, 3)),
        ((), (), ()),
        ((2, -1), (9, 7), (2, 3)),
    ],
)
def test_basic_projections_are_the_product_of_the_axes(selection, shape, chunks):
    idx = BasicIndexer(selection, shape, chunks)
    first, second = list(idx), list(idx)  # iterable more than once
    assert first == second == _reference_basic_projections(idx, selection)
    assert len(first) == idx.nchunks
    assert all(type(p) is ChunkProjection for p in first)
    assert all(type(f) is tuple for p in first for f in p[:2])


# ---------------------------------------------------------------- numpy's advanced indexing


def read_projected(indexer: Any, arr: np.ndarray, chunks: tuple) -> np.ndarray:
    """Replay projections into ``out.reshape(indexer.projection_shape)`` (any indexer)."""
    stored = cut_chunks(arr, chunks)
    out = np.full(indexer.shape, -7, dtype=arr.dtype)
    target = out.reshape(indexer.projection_shape)
    assert np.shares_memory(out, target) or out.size == 0
    projections = list(indexer)
    assert len(projections) == indexer.nchunks
    for p in projections:
        size = math.prod(chunks)
        taken = np.arange(size).reshape(chunks)[p.chunk_selection].reshape(-1)
        inner = tuple(slice(0, n) for n in chunk_extent(p.chunk_coords, arr.shape, chunks))
        counts = np.bincount(taken, minlength=size).reshape(chunks)
        assert counts.sum() == counts[inner].sum(), "selection reaches past the array edge"
        target[p.out_selection] = stored[p.chunk_coords][p.chunk_selection]
    return out


def write_projected(indexer: Any, arr: np.ndarray, chunks: tuple, value: np.ndarray):
    """Read-modify-write every projected chunk with ``value`` of numpy's result shape."""
    stored = cut_chunks(arr, chunks)
    source = value.reshape(indexer.projection_shape)
    for p in indexer:
        assert not p.is_complete_chunk
        stored[p.chunk_coords][p.chunk_selection] = source[p.out_selection]
    return assemble(stored, arr.shape, chunks)


@st.composite
def advanced_selections(draw: Any, shape: tuple) -> tuple:
    """Per axis an int, a slice, a mask or an integer array (of a shape broadcasting with
    the others, repeats and negatives allowed), with None and an Ellipsis in between."""
    bshape = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    keys: list[Any] = []
    for n in shape:
        kind = draw(st.sampled_from(["slice", "array", "array", "mask"] + (["int"] if n else [])))
        if kind == "int":
            keys.append(draw(ints(n)))
        elif kind == "slice":
            keys.append(draw(slices(n)))
        elif kind == "mask":
            keys.append(np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool))
        else:
            sub = bshape[draw(st.integers(0, len(bshape))) :]
            values = st.integers(-n, n - 1) if n else st.nothing()
            count = math.prod(sub) if n else 0
            flat = draw(st.lists(values, min_size=count, max_size=count))
            keys.append(np.array(flat, np.int64).reshape(sub if n else (0,)))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(keys)))
        run = draw(st.integers(0, len(keys) - at))
        keys[at : at + run] = [Ellipsis]
    for _ in range(draw(st.integers(0, 1))):
        keys.insert(draw(st.integers(0, len(keys))), None)
    return tuple(keys)


@SETTINGS
@given(data=st.data())
def test_make_indexer_follows_numpy_advanced_indexing(data: Any) -> None:
    """Mixed integer arrays, slices, masks, None and Ellipsis: numpy's shape and values,
    for reads and (repeats included, the last write winning) for writes."""
    shape, chunks = data.draw(shapes_and_chunks(min_ndim=1))
    selection = data.draw(advanced_selections(shape))
    arr = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
    try:
        expected = arr[selection]
    except IndexError:
        with pytest.raises(SelectionError):
            make_indexer(selection, shape, chunks)
        return
    indexer = make_indexer(selection, shape, chunks)
    assert indexer.shape == expected.shape
    np.testing.assert_array_equal(read_projected(indexer, arr, chunks), expected)
    if isinstance(indexer, AdvancedIndexer):
        value = value_for(expected.shape)
        reference = arr.copy()
        reference[selection] = value
        np.testing.assert_array_equal(write_projected(indexer, arr, chunks, value), reference)


@pytest.mark.parametrize(
    ("selection", "kind", "shape"),
    [
        (([1, 2, 3], [1, 2, 3]), "advanced", (3, 5)),  # issue 12: not (3, 3, 5)
        (([1, 2, 3], slice(None), [1, 2, 3]), "advanced", (3, 5)),  # separated: first
        ((0, slice(None), [1, 2]), "advanced", (2, 5)),  # an int is an array here
        ((slice(None), 0, [1, 2]), "orthogonal", (5, 2)),  # adjacent: in place
        (([0, 2], slice(None)), "orthogonal", (2, 5, 5)),  # zarr-python's case, numpy's too
        ((slice(None), [[0], [1]], [2, 3]), "advanced", (5, 2, 2)),  # broadcast (2, 1) (2,)
        (([[0, 1], [2, 3]],), "advanced", (2, 2, 5, 5)),  # a 2-D array on one axis
        ((np.eye(5, dtype=bool), 0), "coordinate", (5,)),  # a 2-D mask pairs with an int
        ((np.eye(5, dtype=bool), slice(1, 3)), "advanced", (5, 2)),
        (([0, 1], None, [0, 1]), "advanced", (2, 1, 5)),  # None separates
        ((slice(None), [0], Ellipsis, [0]), "advanced", (1, 5)),  # so does an empty Ellipsis
        (([4, 0], [1, 1], [2, 2]), "coordinate", (2,)),
        ((np.ones((5, 5, 5), bool),), "mask", (125,)),
    ],
)
def test_numpy_routes_and_shapes(selection: tuple, kind: str, shape: tuple) -> None:
    x = np.arange(125).reshape(5, 5, 5)
    assert x[selection].shape == shape
    assert selection_kind(selection, x.shape) == kind
    indexer = make_indexer(selection, x.shape, (2, 3, 2))
    assert indexer.shape == shape
    np.testing.assert_array_equal(read_projected(indexer, x, (2, 3, 2)), x[selection])


def test_issue_12_mixed_fancy_read_and_write_on_an_array() -> None:
    """``a[[1, 2, 3], [1, 2, 3]]`` had shape (3, 3, 5) and its write changed 45 elements."""
    x = np.arange(125, dtype="i4").reshape(5, 5, 5)
    a = zf.create(f"memory://idx-{uuid.uuid4().hex}", shape=x.shape, chunks=(2, 2, 3), dtype="i4")
    a[...] = x
    assert a[[1, 2, 3], [1, 2, 3]].shape == (3, 5)
    np.testing.assert_array_equal(a[[1, 2, 3], [1, 2, 3]], x[[1, 2, 3], [1, 2, 3]])
    a[[1, 2, 3], [1, 2, 3]] = -1
    expected = x.copy()
    expected[[1, 2, 3], [1, 2, 3]] = -1
    assert int((a[...] != x).sum()) == 15
    np.testing.assert_array_equal(a[...], expected)
    a[[0, 0, 0], :, [4, 4, 4]] = np.arange(15).reshape(3, 5)  # repeats: the last row wins
    expected[[0, 0, 0], :, [4, 4, 4]] = np.arange(15).reshape(3, 5)
    np.testing.assert_array_equal(a[...], expected)
    assert a[0, 0, 4] == 10


def test_broadcast_refusal_names_oindex_and_vindex() -> None:
    a = zf.create(f"memory://idx-{uuid.uuid4().hex}", shape=(5, 5, 5), chunks=2, dtype="i4")
    with pytest.raises(SelectionError, match=r"a\.vindex.*a\.oindex") as info:
        a[[0, 1, 2], [0, 1]]
    assert isinstance(info.value, IndexError) and a.name in str(info.value)
    with pytest.raises(IndexError, match="oindex"):
        a[[0, 1, 2], :, [0, 1]] = 1
    assert a.nchunks_initialized == 0  # nothing was written


def test_zarr_python_agrees_where_it_accepts(tmp_path: Any) -> None:
    """zarr-python 3 routes one array with slices orthogonally (numpy's result) and
    refuses several arrays with slices; zarrflow gives numpy's result for both."""
    import zarr

    x = np.arange(125, dtype="i4").reshape(5, 5, 5)
    z = zarr.create_array(str(tmp_path / "z.zarr"), shape=x.shape, chunks=(2, 2, 2), dtype="i4")
    z[...] = x
    a = zf.open(str(tmp_path / "z.zarr"))
    np.testing.assert_array_equal(a[[0, 2], :], z[[0, 2], :])
    np.testing.assert_array_equal(a[[0, 2], :], x[[0, 2], :])
    with pytest.raises(IndexError):
        z[[1, 2], [1, 2]]
    np.testing.assert_array_equal(a[[1, 2], [1, 2]], x[[1, 2], [1, 2]])
    assert z[0, :, [1, 2]].shape == (5, 2)  # zarr-python is orthogonal here
    assert a[0, :, [1, 2]].shape == x[0, :, [1, 2]].shape == (2, 5)  # numpy's rule


@pytest.mark.parametrize("shards", [None, (4, 6)])
def test_array_likes_as_indexes(shards: Any) -> None:
    """A zarrflow Array (integer or boolean) and a dask array index like numpy arrays."""
    import dask.array as da

    x = np.arange(48, dtype="f8").reshape(8, 6)
    a = zf.create(
        f"memory://idx-{uuid.uuid4().hex}", shape=x.shape, chunks=(2, 3), shards=shards, dtype="f8"
    )
    a[...] = x
    rows = zf.create(f"memory://idx-{uuid.uuid4().hex}", shape=(3,), chunks=(2,), dtype="i8")
    rows[...] = [7, 0, 3]
    mask = zf.create(f"memory://idx-{uuid.uuid4().hex}", shape=(6,), chunks=(4,), dtype="bool")
    mask[...] = [True, False, True, False, False, True]
    cols = da.from_array(np.array([5, -1, 2]), chunks=2)
    r, m, c = [7, 0, 3], np.array([True, False, True, False, False, True]), [5, -1, 2]
    np.testing.assert_array_equal(a[rows], x[r])
    np.testing.assert_array_equal(a[:, mask], x[:, m])
    np.testing.assert_array_equal(a[rows, cols], x[r, c])
    np.testing.assert_array_equal(a[rows, mask], x[r, m])
    np.testing.assert_array_equal(a.oindex[rows, cols], x[np.ix_(r, c)])
    np.testing.assert_array_equal(a.vindex[rows, cols], x[r, c])
    whole = zf.create(f"memory://idx-{uuid.uuid4().hex}", shape=x.shape, chunks=3, dtype="bool")
    whole[...] = x % 5 == 0
    np.testing.assert_array_equal(a[whole], x[x % 5 == 0])
    np.testing.assert_array_equal(a[da.from_array(x % 5 == 0)], x[x % 5 == 0])
    a[rows, cols] = -1
    a.oindex[rows, mask] = -2
    expected = x.copy()
    expected[r, c] = -1
    expected[np.ix_(r, m)] = -2
    np.testing.assert_array_equal(a[...], expected)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zero_size_chunks_written_by_zarr_python(tmp_path: Any, zarr_format: int) -> None:
    """zarr-python writes ``chunks=(0, 3)`` for an empty axis; the array opens and reads."""
    import zarr

    path = str(tmp_path / "empty.zarr")
    zarr.create_array(path, shape=(0, 3), chunks=(0, 3), dtype="i4", zarr_format=zarr_format)
    a = zf.open(path)
    assert a.shape == (0, 3) and a.chunks == (0, 3)
    assert a.nchunks == 0
    empty = np.zeros((0, 3), "i4")
    for selection in [Ellipsis, np.s_[0:0], np.s_[:, [0, 2]], np.s_[[], 1], np.s_[::-1, 1:]]:
        np.testing.assert_array_equal(a[selection], empty[selection])
        assert a[selection].shape == empty[selection].shape
    assert a.oindex[[], [0, 1]].shape == (0, 2)
    assert a.vindex[np.zeros(0, int), np.zeros(0, int)].shape == (0,)
    a[...] = 1  # nothing to write
    assert list(a.chunk_stream()) == []
    with pytest.raises(IndexError, match="out of bounds"):
        a[0]


@pytest.mark.parametrize(
    "selection",
    [
        np.s_[...],
        np.s_[:, 2],
        np.s_[[], :],
        np.s_[:, [4, 0, 4]],
        np.s_[:, [[1], [2]]],
        np.s_[np.zeros(0, bool), [1]],
        np.s_[:, np.array([True, False, True, False, True])],
        np.s_[::-2, None, 1:4],
    ],
)
def test_zero_length_dimension_selections(selection: Any) -> None:
    x = np.zeros((0, 5), "i2")
    a = zf.create(f"memory://idx-{uuid.uuid4().hex}", shape=(0, 5), chunks=(4, 2), dtype="i2")
    assert a[selection].shape == x[selection].shape
    a[selection] = 3
    assert a.nchunks_initialized == 0


def test_selection_cost_follows_the_chunks_touched() -> None:
    """On a declared shape of 1e18 elements ``a[:]`` fails at once, before any chunk is
    projected (the indexer is lazy); ``a[5]`` and ``a[-1]`` read one chunk."""
    a = zf.create(f"memory://idx-{uuid.uuid4().hex}", shape=(10**18,), chunks=(1000,), dtype="f8")
    with pytest.raises(AllocationError, match="too large to allocate") as info:
        a[:]
    message = str(info.value)
    assert a.name in message and "(1000000000000000000,)" in message
    assert "8000000000000000000 bytes" in message
    assert isinstance(info.value, zf.ZarrflowError)
    a[5] = 2.5
    assert a[5] == 2.5 and a[-1] == 0.0 and a.nchunks_initialized == 1
    b = zf.create(f"memory://idx-{uuid.uuid4().hex}", shape=(10**9, 10**9), chunks=1, dtype="i1")
    assert b[5, 5] == 0 and b[5, 10**9 - 3 :].shape == (3,)
    with pytest.raises(AllocationError):
        b[:, :, None]
    # a grid of 1e18 one-element chunks: building the indexer visits none of them
    indexer = BasicIndexer((slice(None), slice(None, None, -3)), (10**18, 10**18), (1, 7))
    assert indexer.nchunks == 10**18 * -(-(10**18) // 7)  # step 3 touches every chunk of 7
    assert indexer.shape == (10**18, -(-(10**18) // 3))
