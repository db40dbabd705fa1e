"""Property tests: a zarrflow Array behaves like a NumPy array under random use.

Hypothesis draws arrays (1-3 dims of 0-30 elements, chunks of 1-10, every
core dtype plus v2's big-endian ones, Zarr v2 and v3, C and F order, a few
codecs, random fill values) and selections (basic with any steps, negative
indices, ``Ellipsis`` and ``None``; orthogonal integer arrays and masks;
coordinates; full-shape masks) and, on 1-4 dims with random chunking and
shards, numpy's advanced indexing: integer arrays of any shape broadcast
together, with slices, None and Ellipsis between them, and masks of one or
two axes. A NumPy array is the model: every read must
match it, every write is applied to both, and ``resize`` / ``append`` follow
the model "new array of the fill value, overlap copied" (not ``np.resize``).

The state machine strings many of these together on one array, so a chunk
written by one step, cut by a resize and grown again by an append must still
hold exactly what the model says.
"""

from __future__ import annotations

import math
import os
import tempfile
import uuid
from typing import Any

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import zarrflow as zf

#: By default every run tries the same examples (derandomized, so the suite is stable);
#: ZARRFLOW_PROPERTY_EXAMPLES=2000 runs a deeper, randomized search.
DEEP = os.environ.get("ZARRFLOW_PROPERTY_EXAMPLES")
EXAMPLES = int(DEEP or 100)
SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=DEEP is None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

V3_DTYPES = [
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
]
V2_ONLY_DTYPES = [">i4", ">u2", ">f8", ">c8"]
#: chunks per axis are bounded so a case has at most a few hundred chunks
MAX_CHUNKS_PER_AXIS = {1: 30, 2: 12, 3: 6}


# -- arrays --------------------------------------------------------------------------------


@st.composite
def array_specs(draw: st.DrawFn, min_ndim: int = 1, max_ndim: int = 3) -> dict[str, Any]:
    fmt = draw(st.sampled_from([2, 3]))
    dtype = np.dtype(draw(st.sampled_from(V3_DTYPES + (V2_ONLY_DTYPES if fmt == 2 else []))))
    ndim = draw(st.integers(min_ndim, max_ndim))
    shape = tuple(draw(st.lists(st.integers(0, 30), min_size=ndim, max_size=ndim)))
    limit = MAX_CHUNKS_PER_AXIS[ndim]
    chunks = tuple(draw(st.integers(max(1, -(-s // limit)), 10)) for s in shape)
    if fmt == 2 and draw(st.integers(0, 9)) == 0:
        fill = None  # v2 null: missing chunks read as zero
    else:
        fill = draw(hnp.from_dtype(dtype))
    return {
        "shape": shape,
        "chunks": chunks,
        "dtype": dtype,
        "zarr_format": fmt,
        "fill_value": fill,
        "order": draw(st.sampled_from(["C", "F"])),
        "compressor": draw(st.sampled_from([None, None, "zstd", "blosc"])),
    }


def fill_of(spec: dict[str, Any]) -> Any:
    fv = spec["fill_value"]
    return np.zeros((), spec["dtype"])[()] if fv is None else fv


def new_array(spec: dict[str, Any]) -> tuple[zf.Array, np.ndarray]:
    """A fresh zarrflow array in memory and its model (all fill value)."""
    a = zf.create(f"memory://prop-{uuid.uuid4().hex}", **spec)
    model = np.full(spec["shape"], fill_of(spec), dtype=spec["dtype"])
    return a, model


def values(dtype: np.dtype, shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(dtype, shape, elements=hnp.from_dtype(dtype))


def values_or_scalar(dtype: np.dtype, shape: tuple[int, ...]) -> st.SearchStrategy[Any]:
    return st.one_of(values(dtype, shape), hnp.from_dtype(dtype).map(lambda x: dtype.type(x)))


def assert_like(actual: Any, expected: np.ndarray) -> None:
    actual = np.asarray(actual)
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype or actual.dtype == expected.dtype.newbyteorder()
    np.testing.assert_array_equal(actual, expected)


def resized_model(model: np.ndarray, new_shape: tuple[int, ...], fill: Any) -> np.ndarray:
    """Resize semantics: a new array of the fill value with the overlap copied."""
    out = np.full(new_shape, fill, dtype=model.dtype)
    overlap = tuple(slice(0, min(o, n)) for o, n in zip(model.shape, new_shape, strict=True))
    out[overlap] = model[overlap]
    return out


# -- selections ----------------------------------------------------------------------------


def basic_selections(shape: tuple[int, ...], newaxis: bool = True) -> st.SearchStrategy[Any]:
    """ints (negative too), slices with any step, Ellipsis, None; fewer entries than axes."""
    return hnp.basic_indices(shape, min_dims=0, allow_newaxis=newaxis, allow_ellipsis=True)


@st.composite
def orthogonal_selections(
    draw: st.DrawFn, shape: tuple[int, ...], unique: bool = False
) -> tuple[Any, ...]:
    """One entry per axis: an int, a slice, a 1-D int array (unsorted, negative) or a mask."""
    sel: list[Any] = []
    for n in shape:
        choices = ["slice", "mask"] + (["int", "array"] if n > 0 else [])
        kind = draw(st.sampled_from(choices))
        if kind == "int":
            sel.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            sel.append(draw(st.slices(n)))
        elif kind == "mask":
            sel.append(draw(hnp.arrays(bool, (n,))))
        else:
            ints = st.integers(-n, n - 1)
            lists = (
                st.lists(ints, max_size=8, unique_by=lambda i, n=n: i % n)
                if unique
                else (st.lists(ints, max_size=8))
            )
            idx = draw(lists)
            dt = draw(st.sampled_from(["i8", "i4", "u4"]))
            if dt.startswith("u"):
                idx = [i % n for i in idx]
            sel.append(np.array(idx, dtype=dt))
    return tuple(sel)


def oindex_model(shape: tuple[int, ...], sel: tuple[Any, ...]) -> tuple[tuple, tuple[int, ...]]:
    """``(np.ix_ index, result shape)`` of an orthogonal selection on the model."""
    axes, out_shape = [], []
    for n, s in zip(shape, sel, strict=True):
        if isinstance(s, slice):
            idx = np.arange(n)[s]
            out_shape.append(len(idx))
        elif isinstance(s, np.ndarray) and s.dtype == bool:
            idx = np.nonzero(s)[0]
            out_shape.append(len(idx))
        elif isinstance(s, np.ndarray):
            idx = s.astype("i8")
            out_shape.append(len(idx))
        else:
            idx = np.array([s])
        axes.append(idx)
    return np.ix_(*axes), tuple(out_shape)


@st.composite
def coordinate_selections(
    draw: st.DrawFn, shape: tuple[int, ...], unique: bool = False
) -> tuple[np.ndarray, ...]:
    """One integer array per axis, all of one (1-D or 2-D) shape; negatives allowed."""
    if any(n == 0 for n in shape):
        return tuple(np.zeros(0, "i8") for _ in shape)
    npoints = draw(st.integers(0, 12))
    points = draw(
        st.lists(
            st.tuples(*(st.integers(-n, n - 1) for n in shape)),
            min_size=npoints,
            max_size=npoints,
            unique_by=(lambda p: tuple(i % n for i, n in zip(p, shape, strict=True)))
            if unique
            else None,
        )
    )
    arrays = [np.array([p[d] for p in points], dtype="i8") for d in range(len(shape))]
    if len(points) % 2 == 0 and len(points) and draw(st.booleans()):
        arrays = [a.reshape(2, -1) for a in arrays]  # a 2-D grid of points
    return tuple(arrays)


# -- one-shot properties -------------------------------------------------------------------


@SETTINGS
@given(spec=array_specs(), data=st.data())
def test_basic_read_and_write_match_numpy(spec, data):
    a, model = new_array(spec)
    initial = data.draw(values(spec["dtype"], spec["shape"]), label="initial")
    a[...] = initial
    model[...] = initial
    sel = data.draw(basic_selections(spec["shape"]), label="selection")
    expected = model[sel]
    got = a[sel]
    if np.ndim(expected) == 0:
        assert np.ndim(got) == 0
    assert_like(got, np.asarray(expected))
    value = data.draw(values_or_scalar(spec["dtype"], np.shape(expected)), label="value")
    a[sel] = value
    model[sel] = value
    assert_like(a[...], model)


@SETTINGS
@given(spec=array_specs(), data=st.data())
def test_orthogonal_read_and_write_match_numpy(spec, data):
    a, model = new_array(spec)
    initial = data.draw(values(spec["dtype"], spec["shape"]), label="initial")
    a[...] = initial
    model[...] = initial
    sel = data.draw(orthogonal_selections(spec["shape"]), label="selection")
    ix, shape = oindex_model(spec["shape"], sel)
    assert_like(a.oindex[sel], model[ix].reshape(shape))
    wsel = data.draw(orthogonal_selections(spec["shape"], unique=True), label="write selection")
    ix, shape = oindex_model(spec["shape"], wsel)
    value = data.draw(values_or_scalar(spec["dtype"], shape), label="value")
    a.oindex[wsel] = value
    model[ix] = np.broadcast_to(value, shape).reshape(model[ix].shape)
    assert_like(a[...], model)


@SETTINGS
@given(spec=array_specs(), data=st.data())
def test_coordinate_and_mask_read_and_write_match_numpy(spec, data):
    a, model = new_array(spec)
    initial = data.draw(values(spec["dtype"], spec["shape"]), label="initial")
    a[...] = initial
    model[...] = initial
    sel = data.draw(coordinate_selections(spec["shape"]), label="points")
    assert_like(a.vindex[sel], model[sel])
    if len(spec["shape"]) > 1 or sel[0].ndim == 1:  # a[...] routes points as NumPy does
        assert_like(a[sel], model[sel])
    mask = data.draw(hnp.arrays(bool, spec["shape"]), label="mask")
    assert_like(a.vindex[mask], model[mask])
    assert_like(a[mask], model[mask])
    wsel = data.draw(coordinate_selections(spec["shape"], unique=True), label="write points")
    value = data.draw(values_or_scalar(spec["dtype"], wsel[0].shape), label="value")
    a.vindex[wsel] = value
    model[wsel] = value
    value = data.draw(values_or_scalar(spec["dtype"], (int(mask.sum()),)), label="mask value")
    a.vindex[mask] = value
    model[mask] = value
    assert_like(a[...], model)


@SETTINGS
@given(spec=array_specs(), data=st.data())
def test_reads_from_local_files_match_numpy(spec, data):
    """The local read path (trusted keys, reads without fstat, batched zstd decoding)."""
    with tempfile.TemporaryDirectory() as root:
        a = zf.create(os.path.join(root, "a.zarr"), **spec)
        model = np.full(spec["shape"], fill_of(spec), dtype=spec["dtype"])
        wsel = data.draw(basic_selections(spec["shape"]), label="written")
        value = data.draw(values(spec["dtype"], np.shape(model[wsel])), label="value")
        a[wsel] = value  # the rest of the chunks (and rows of them) are never written
        model[wsel] = value
        a = zf.open(a.store, mode="r")
        sel = data.draw(basic_selections(spec["shape"]), label="selection")
        assert_like(a[sel], np.asarray(model[sel]))
        points = data.draw(coordinate_selections(spec["shape"]), label="points")
        assert_like(a.vindex[points], model[points])
        assert_like(a[...], model)


@SETTINGS
@given(spec=array_specs(), data=st.data())
def test_single_array_axis_routes_like_numpy(spec, data):
    """``a[..., idx, ...]`` with one integer array or mask and slices elsewhere is NumPy's."""
    a, model = new_array(spec)
    initial = data.draw(values(spec["dtype"], spec["shape"]), label="initial")
    a[...] = initial
    model[...] = initial
    axis = data.draw(st.integers(0, len(spec["shape"]) - 1), label="axis")
    n = spec["shape"][axis]
    sel = [data.draw(st.slices(m)) for m in spec["shape"]]
    if n and data.draw(st.booleans()):
        sel[axis] = np.array(data.draw(st.lists(st.integers(-n, n - 1), max_size=6)), "i8")
    else:
        sel[axis] = data.draw(hnp.arrays(bool, (n,)))
    assume(not (len(spec["shape"]) == 1 and sel[axis].dtype == bool))  # that is a mask
    assert_like(a[tuple(sel)], model[tuple(sel)])


@SETTINGS
@given(spec=array_specs(), data=st.data())
def test_get_slice_and_set_slice_match_numpy(spec, data):
    a, model = new_array(spec)
    shape = spec["shape"]
    start = tuple(data.draw(st.integers(0, n)) for n in shape)
    stop = tuple(data.draw(st.integers(s, n)) for s, n in zip(start, shape, strict=True))
    step = tuple(data.draw(st.integers(1, 4)) for _ in shape)
    block = data.draw(values(spec["dtype"], tuple(b - s for s, b in zip(start, stop, strict=True))))
    a.set_slice(block, start=start)
    model[tuple(slice(s, b) for s, b in zip(start, stop, strict=True))] = block
    box = tuple(slice(s, b, k) for s, b, k in zip(start, stop, step, strict=True))
    assert_like(a.get_slice(start=start, stop=stop, step=step), model[box])
    assert_like(a[...], model)


@SETTINGS
@given(spec=array_specs(), data=st.data())
def test_resize_and_append_match_the_model(spec, data):
    a, model = new_array(spec)
    fill = fill_of(spec)
    initial = data.draw(values(spec["dtype"], spec["shape"]), label="initial")
    a[...] = initial
    model[...] = initial
    for _ in range(2):  # shrink/grow twice: no stale data may reappear
        new_shape = tuple(data.draw(st.integers(0, 30)) for _ in spec["shape"])
        a.resize(new_shape)
        model = resized_model(model, new_shape, fill)
        assert a.shape == new_shape
        assert_like(a[...], model)
    axis = data.draw(st.integers(-len(model.shape), len(model.shape) - 1), label="axis")
    grow = list(model.shape)
    grow[axis] = data.draw(st.integers(0, 12))
    extra = data.draw(values(spec["dtype"], tuple(grow)), label="appended")
    assert a.append(extra, axis=axis) == np.concatenate([model, extra], axis=axis).shape
    model = np.concatenate([model, extra], axis=axis)
    assert_like(a[...], model)
    reopened = zf.open_array(a.store, mode="r")
    assert reopened.shape == model.shape
    assert_like(reopened[...], model)


# -- numpy's index forms on 1- to 4-D arrays ----------------------------------------------

#: a 4-D case stays small: at most a few hundred elements and chunks
MAX_LEN = {1: 24, 2: 10, 3: 6, 4: 4}
MIXED_SETTINGS = settings(
    max_examples=max(1, EXAMPLES * 3 // 2),
    derandomize=DEEP is None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def grid_specs(draw: st.DrawFn) -> dict[str, Any]:
    """1- to 4-D arrays, random chunking (edge chunks, chunks longer than the axis), shards."""
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(0, MAX_LEN[ndim])) for _ in range(ndim))
    chunks = tuple(draw(st.integers(1, n + 1)) for n in shape)
    fmt = draw(st.sampled_from([2, 3]))
    spec: dict[str, Any] = {
        "shape": shape,
        "chunks": chunks,
        "dtype": np.dtype(draw(st.sampled_from(["int32", "float64", "uint8"]))),
        "zarr_format": fmt,
        "fill_value": 0,
    }
    if fmt == 3 and draw(st.integers(0, 3)) == 0:  # sharded: inner chunks read one by one
        spec["shards"] = tuple(c * draw(st.integers(1, 2)) for c in chunks)
    return spec


@st.composite
def int_index_arrays(draw: st.DrawFn, n: int, bshape: tuple[int, ...]) -> np.ndarray:
    """An integer array for an axis of length ``n``: negatives and repeats, of a shape
    that broadcasts with ``bshape`` (trailing dims of it, some set to 1), or sometimes not."""
    if n == 0:
        return np.zeros((0,), "i8")
    shape = bshape[draw(st.integers(0, len(bshape))) :]
    shape = tuple(1 if draw(st.integers(0, 3)) == 0 else d for d in shape)
    if draw(st.integers(0, 15)) == 0:
        shape = (draw(st.integers(0, 4)),)  # may not broadcast: numpy's IndexError then
    values = draw(hnp.arrays("i8", shape, elements=st.integers(-n, n - 1)))
    dtype = draw(st.sampled_from(["i8", "i4", "u2"]))
    return (values % n).astype(dtype) if dtype.startswith("u") else values.astype(dtype)


@st.composite
def numpy_entries(draw: st.DrawFn, shape: tuple[int, ...], bshape: tuple[int, ...]) -> list[Any]:
    """Entries for consecutive axes of ``shape``: ints, slices, arrays, 1-D and 2-D masks, None."""
    entries: list[Any] = []
    axis = 0
    while axis < len(shape):
        n = shape[axis]
        if draw(st.integers(0, 7)) == 0:
            entries.append(None)
        kinds = ["array", "slice", "array", "mask"] + (["int"] if n else [])
        kinds += ["mask2"] if axis + 1 < len(shape) else []
        kind = draw(st.sampled_from(kinds))
        if kind == "int":
            entries.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            entries.append(draw(st.slices(n)))
        elif kind == "array":
            entries.append(draw(int_index_arrays(n, bshape)))
        elif kind == "mask":
            entries.append(draw(hnp.arrays(bool, (n,))))
        else:
            entries.append(draw(hnp.arrays(bool, (n, shape[axis + 1]))))
            axis += 1
        axis += 1
    return entries


@st.composite
def numpy_selections(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """numpy's selections: basic entries mixed with integer arrays (broadcast together,
    adjacent or separated by slices or None), masks, an Ellipsis, fewer entries than axes."""
    bshape = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    ndim = len(shape)
    start = draw(st.integers(0, ndim))
    stop = draw(st.integers(start, min(ndim, start + 1)))  # at most one axis left out
    head = draw(numpy_entries(shape[:start], bshape))
    tail = draw(numpy_entries(shape[stop:], bshape))
    middle = draw(st.sampled_from(["ellipsis", "slices", "omitted"]))
    if middle == "ellipsis":
        return (*head, Ellipsis, *tail)
    if middle == "slices" or tail:
        return (*head, *(slice(None),) * (stop - start), *tail)
    return tuple(head)


def is_mixed(sel: tuple[Any, ...]) -> bool:
    """Integer arrays (or masks) with slices: numpy's advanced indexing beyond points."""
    arrays = sum(isinstance(s, np.ndarray) for s in sel)
    return arrays > 0 and any(isinstance(s, slice) or s is None or s is Ellipsis for s in sel)


@MIXED_SETTINGS
@given(spec=grid_specs(), data=st.data())
def test_numpy_selections_read_and_write_match_numpy(spec, data):
    """``a[sel]`` and ``a[sel] = v`` give numpy's result (the whole array compared after the
    write, so a write to more elements fails); where numpy raises IndexError, so does zarrflow
    and leaves the data unchanged. Repeated indices in a write: the last one wins, as in numpy.
    """
    a, model = new_array(spec)
    initial = data.draw(values(spec["dtype"], spec["shape"]), label="initial")
    a[...] = initial
    model[...] = initial
    sel = data.draw(numpy_selections(spec["shape"]), label="selection")
    try:
        expected = model[sel]
    except IndexError as numpy_error:
        with pytest.raises(IndexError) as info:
            a[sel]
        with pytest.raises(IndexError):
            a[sel] = 0
        if "broadcast" in str(numpy_error):  # the refusal says what else to use
            assert "oindex" in str(info.value) and "vindex" in str(info.value)
        assert_like(a[...], model)
        return
    assert_like(a[sel], np.asarray(expected))
    value = data.draw(values_or_scalar(spec["dtype"], np.shape(expected)), label="value")
    a[sel] = value
    model[sel] = value
    assert_like(a[...], model)


@MIXED_SETTINGS
@given(spec=grid_specs(), data=st.data())
def test_oindex_and_vindex_with_repeated_indices_match_numpy(spec, data):
    """Orthogonal and point writes with repeated indices: numpy's last write wins."""
    a, model = new_array(spec)
    initial = data.draw(values(spec["dtype"], spec["shape"]), label="initial")
    a[...] = initial
    model[...] = initial
    sel = data.draw(orthogonal_selections(spec["shape"]), label="orthogonal")
    ix, shape = oindex_model(spec["shape"], sel)
    assert_like(a.oindex[sel], model[ix].reshape(shape))
    value = data.draw(values(spec["dtype"], shape), label="value")
    a.oindex[sel] = value
    model[ix] = value.reshape(model[ix].shape)
    assert_like(a[...], model)
    points = data.draw(coordinate_selections(spec["shape"]), label="points")
    assert_like(a.vindex[points], model[points])
    value = data.draw(values(spec["dtype"], points[0].shape), label="point values")
    a.vindex[points] = value
    model[points] = value
    assert_like(a[...], model)


def test_mixed_selections_dominate_the_generated_cases():
    """The strategy above mostly draws numpy's mixed advanced forms, and numpy accepts most."""
    found: list[tuple[bool, bool]] = []

    @settings(max_examples=200, derandomize=True, deadline=None, database=None)
    @given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4), data=st.data())
    def collect(shape, data):
        sel = data.draw(numpy_selections(tuple(shape)))
        try:
            np.empty(shape)[sel]
            accepted = True
        except IndexError:
            accepted = False
        found.append((is_mixed(sel), accepted))

    collect()
    mixed = [accepted for is_mix, accepted in found if is_mix]
    assert len(mixed) > len(found) / 3
    assert sum(mixed) > 0.8 * len(mixed)


# -- a state machine: many operations on one array -----------------------------------------


class ArrayMachine(RuleBasedStateMachine):
    """Random reads, writes, resizes and appends on one array against a NumPy model."""

    @initialize(spec=array_specs(max_ndim=3))
    def create(self, spec):
        self.spec = spec
        self.fill = fill_of(spec)
        self.array, self.model = new_array(spec)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.model.shape

    @rule(data=st.data())
    def write_basic(self, data):
        sel = data.draw(basic_selections(self.shape, newaxis=False))
        value = data.draw(values_or_scalar(self.spec["dtype"], np.shape(self.model[sel])))
        self.array[sel] = value
        self.model[sel] = value

    @rule(data=st.data())
    def write_orthogonal(self, data):
        sel = data.draw(orthogonal_selections(self.shape, unique=True))
        ix, shape = oindex_model(self.shape, sel)
        value = data.draw(values_or_scalar(self.spec["dtype"], shape))
        self.array.oindex[sel] = value
        self.model[ix] = np.broadcast_to(value, shape).reshape(self.model[ix].shape)

    @rule(data=st.data())
    def write_points(self, data):
        sel = data.draw(coordinate_selections(self.shape, unique=True))
        value = data.draw(values_or_scalar(self.spec["dtype"], sel[0].shape))
        self.array.vindex[sel] = value
        self.model[sel] = value

    @rule(data=st.data())
    def read_basic(self, data):
        sel = data.draw(basic_selections(self.shape))
        assert_like(self.array[sel], np.asarray(self.model[sel]))

    @rule(data=st.data())
    def read_orthogonal(self, data):
        sel = data.draw(orthogonal_selections(self.shape))
        ix, shape = oindex_model(self.shape, sel)
        assert_like(self.array.oindex[sel], self.model[ix].reshape(shape))

    @rule(data=st.data())
    def read_points(self, data):
        sel = data.draw(coordinate_selections(self.shape))
        assert_like(self.array.vindex[sel], self.model[sel])

    @rule(data=st.data())
    def resize(self, data):
        new_shape = tuple(data.draw(st.integers(0, 30)) for _ in self.shape)
        limit = MAX_CHUNKS_PER_AXIS[len(new_shape)]
        assume(
            all(
                -(-n // c) <= 2 * limit for n, c in zip(new_shape, self.spec["chunks"], strict=True)
            )
        )
        self.array.resize(new_shape)
        self.model = resized_model(self.model, new_shape, self.fill)

    @precondition(lambda self: math.prod(self.model.shape) < 2000)
    @rule(data=st.data())
    def append(self, data):
        axis = data.draw(st.integers(0, len(self.shape) - 1))
        grow = list(self.shape)
        grow[axis] = data.draw(st.integers(0, 8))
        extra = data.draw(values(self.spec["dtype"], tuple(grow)))
        self.array.append(extra, axis=axis)
        self.model = np.concatenate([self.model, extra], axis=axis)

    @rule()
    def reopen(self):
        self.array = zf.open_array(self.array.store, mode="r+")

    @invariant()
    def matches_model(self):
        if hasattr(self, "array"):
            assert self.array.shape == self.model.shape
            assert_like(self.array[...], self.model)


ArrayMachine.TestCase.settings = settings(
    max_examples=max(1, EXAMPLES // 3),
    derandomize=DEEP is None,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
test_array_state_machine = ArrayMachine.TestCase


# -- regressions ---------------------------------------------------------------------------


def test_unsorted_orthogonal_read_of_whole_chunks_1d():
    a = zf.create(f"memory://prop-{uuid.uuid4().hex}", shape=(3,), chunks=(2,), dtype="i1")
    a[...] = 1
    assert a.oindex[np.array([0, -1, 1])].tolist() == [1, 1, 1]  # found by hypothesis


def test_unsorted_row_read_of_whole_chunks_2d():
    x = np.arange(12, dtype="i4").reshape(4, 3)
    a = zf.create(f"memory://prop-{uuid.uuid4().hex}", shape=(4, 3), chunks=(2, 3), dtype="i4")
    a[...] = x
    np.testing.assert_array_equal(a[[1, 0]], x[[1, 0]])
    np.testing.assert_array_equal(a.oindex[[3, 1, 2, 0], :], x[[3, 1, 2, 0]])


@pytest.mark.parametrize("fmt", [2, 3])
def test_zero_d_roundtrip(fmt):
    a = zf.create(
        f"memory://prop-{uuid.uuid4().hex}",
        shape=(),
        chunks=(),
        dtype="f8",
        zarr_format=fmt,
        fill_value=1.0,
    )
    assert a[()] == 1.0
    a[...] = 3.0
    assert a[...] == 3.0
