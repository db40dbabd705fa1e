"""Property tests: a zarrflow Array behaves like a NumPy array under random use.

Hypothesis draws arrays (1-3 dims of 0-30 elements, chunks of 1-10, every
core dtype plus v2's big-endian ones, Zarr v2 and v3, C and F order, a few
codecs, random fill values) and selections (basic with any steps, negative
indices, ``Ellipsis`` and ``None``; orthogonal integer arrays and masks;
coordinates; full-shape masks). A NumPy array is the model: every read must
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
