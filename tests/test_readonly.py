"""Read-only modes are enforced everywhere: in mode "r" nothing is ever written.

Every public mutating API is called on nodes opened read-only, three ways:

* from a path in mode "r" — the files (content, inode and mtime) are unchanged
  (store-level calls such as ``zf.create`` get a read-only store);
* through a spy store (``FaultyStore(..., read_only=True)``) — not one ``set``
  or ``delete`` call reaches the store: zarrflow refuses before the store has to;
* from a zip archive in mode "r" — the archive's bytes are unchanged.

Each call must raise :class:`~zarrflow.ReadOnlyError` (a parallel map reports
it per chunk, as the cause of its :class:`~zarrflow.ParallelChunkError`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest

import zarrflow as zf
from zarrflow.storage import LocalStore, MemoryStore, Store, ZipStore
from zarrflow.testing.faults import FaultyStore

pytestmark = pytest.mark.timeout(120)

Action = Callable[[zf.Group, zf.Array, zf.Array, Any], Any]


def build_hierarchy(store: Store) -> None:
    """A v3 root group with a v3 array, a v2 array, a subgroup, attributes, consolidated."""
    g = zf.open_group(store, mode="w", attributes={"title": "ro"})
    x = g.create_array("x", shape=(20, 20), chunks=(5, 5), dtype="i4")
    x[...] = np.arange(400, dtype="i4").reshape(20, 20)
    x.attrs["units"] = "m"
    v2 = g.create_array("v2", shape=(20,), chunks=(5,), dtype="f8", zarr_format=2)
    v2[...] = 2.0
    v2.attrs["a"] = 1
    g.create_group("sub").create_array("y", shape=(3,), dtype="u1")
    zf.consolidate_metadata(store)


MUTATIONS: dict[str, Action] = {
    "setitem": lambda g, a, v2, s: a.__setitem__((slice(0, 3),), 5),
    "setitem-all": lambda g, a, v2, s: a.__setitem__(Ellipsis, 5),
    "oindex": lambda g, a, v2, s: a.oindex.__setitem__(([0, 1], [0]), 5),
    "vindex": lambda g, a, v2, s: a.vindex.__setitem__(([0, 1], [0, 1]), 5),
    "set_slice": lambda g, a, v2, s: a.set_slice(np.ones((2, 2), "i4"), start=(0, 0)),
    "write_chunk": lambda g, a, v2, s: a.write_chunk((0, 0), np.ones((5, 5), "i4")),
    "attrs-set": lambda g, a, v2, s: a.attrs.__setitem__("b", 2),
    "attrs-del": lambda g, a, v2, s: a.attrs.__delitem__("units"),
    "attrs-update": lambda g, a, v2, s: a.attrs.update(c=3),
    "attrs-put": lambda g, a, v2, s: a.attrs.put({}),
    "resize-grow": lambda g, a, v2, s: a.resize(30, 30),
    "resize-shrink": lambda g, a, v2, s: a.resize(3, 3),
    "append": lambda g, a, v2, s: a.append(np.ones((5, 20), "i4")),
    "to_zarr-array": lambda g, a, v2, s: zf.to_zarr(da.ones((20, 20), chunks=5, dtype="i4"), a),
    "to_zarr-region": lambda g, a, v2, s: zf.to_zarr(
        da.ones((5, 5), chunks=5, dtype="i4"), a, region=(slice(0, 5), slice(0, 5))
    ),
    "to_zarr-new": lambda g, a, v2, s: zf.to_zarr(np.ones(3), s, path="new"),
    "to_zarr-overwrite": lambda g, a, v2, s: zf.to_zarr(np.ones(3), s, path="x", overwrite=True),
    "map-writing": lambda g, a, v2, s: list(
        a.parallel_chunk_map(lambda i, c: a.write_chunk(i, c + 1), scheduler="threads")
    ),
    "v2-setitem": lambda g, a, v2, s: v2.__setitem__(Ellipsis, 3.0),
    "v2-attrs": lambda g, a, v2, s: v2.attrs.__setitem__("t", 1),
    "v2-resize": lambda g, a, v2, s: v2.resize(10),
    "group-create_array": lambda g, a, v2, s: g.create_array("z", shape=(2,), dtype="i1"),
    "group-create_group": lambda g, a, v2, s: g.create_group("h"),
    "group-require_group": lambda g, a, v2, s: g.require_group("h2"),
    "group-require_array": lambda g, a, v2, s: g.require_array("y2", shape=(2,), dtype="i1"),
    "group-del": lambda g, a, v2, s: g.__delitem__("x"),
    "group-attrs": lambda g, a, v2, s: g.attrs.__setitem__("t", 1),
    "subgroup-create": lambda g, a, v2, s: g["sub"].create_array("q", shape=(1,)),
    "consolidate": lambda g, a, v2, s: zf.consolidate_metadata(s),
    "create": lambda g, a, v2, s: zf.create(s, shape=(3,), path="z"),
    "create-overwrite": lambda g, a, v2, s: zf.create(s, shape=(3,), path="x", overwrite=True),
    "open-w": lambda g, a, v2, s: zf.open(s, mode="w", path="x", shape=(3,)),
    "open-a-new": lambda g, a, v2, s: zf.open(s, mode="a", path="n", shape=(3,)),
    "open_group-w": lambda g, a, v2, s: zf.open_group(s, mode="w", path="sub"),
    "open_group-a-new": lambda g, a, v2, s: zf.open_group(s, mode="a", path="sub2"),
    "open_array-w": lambda g, a, v2, s: zf.open_array(s, mode="w", path="x", shape=(2,)),
}


def expect_read_only_error(action: Callable[[], Any]) -> None:
    with pytest.raises(zf.ZarrflowError) as err:
        action()
    error = err.value
    if isinstance(error, zf.ParallelChunkError):  # reported per chunk by a parallel map
        error = error.failures[0].exception
    assert isinstance(error, zf.ReadOnlyError), f"{type(error).__name__}: {error}"
    assert "read-only" in str(error)


def file_states(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file below ``root``: (inode, mtime in ns, content hash) — any rewrite shows."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(root))] = (
                st.st_ino,
                st.st_mtime_ns,
                hashlib.sha256(path.read_bytes()).hexdigest(),
            )
    return out


@pytest.fixture(scope="module")
def hierarchy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readonly") / "h.zarr"
    build_hierarchy(LocalStore(root))
    return root


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mode_r_from_a_path_changes_no_file(hierarchy: Path, name: str) -> None:
    before = file_states(hierarchy)
    g = zf.open_group(str(hierarchy), mode="r")
    a, v2 = zf.open_array(str(hierarchy), mode="r", path="x"), g["v2"]
    store = LocalStore(hierarchy, read_only=True)
    expect_read_only_error(lambda: MUTATIONS[name](g, a, v2, store))
    assert file_states(hierarchy) == before


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_no_write_reaches_a_read_only_store(hierarchy: Path, name: str) -> None:
    spy = FaultyStore(LocalStore(hierarchy), read_only=True)
    g = zf.open_group(spy, mode="r")
    a, v2 = zf.open(spy, mode="r", path="x"), zf.open_array(spy, mode="r", path="v2")
    opened = spy.calls["get"]
    assert opened > 0 and spy.calls["set"] == spy.calls["delete"] == 0
    expect_read_only_error(lambda: MUTATIONS[name](g, a, v2, spy))
    assert spy.calls["set"] == 0 and spy.calls["delete"] == 0, dict(spy.calls)


def test_reads_in_mode_r_work_and_write_nothing(hierarchy: Path) -> None:
    spy = FaultyStore(LocalStore(hierarchy), read_only=True)
    g = zf.open_group(spy, mode="r")
    a = g["x"]
    assert g.attrs["title"] == "ro" and {"sub", "x"} <= set(g)
    np.testing.assert_array_equal(a[...], np.arange(400).reshape(20, 20))
    assert a.to_dask().sum().compute() == a[...].sum()
    assert len(list(a.chunk_stream(parallel=2, scheduler="threads"))) == a.nchunks
    assert a.nchunks_initialized == a.nchunks and g["sub"]["y"].shape == (3,)
    assert g.tree() and a.info is not None
    assert spy.calls["set"] == spy.calls["delete"] == 0


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mode_r_on_a_zip_archive_changes_no_byte(tmp_path: Path, name: str) -> None:
    path = tmp_path / "h.zip"
    with ZipStore(path, mode="w") as store:
        _build_zip(store)
    before = path.read_bytes()
    g = zf.open_group(str(path), mode="r")
    a, v2 = g["x"], g["v2"]
    with ZipStore(path, mode="r") as store:
        expect_read_only_error(lambda: MUTATIONS[name](g, a, v2, store))
    assert path.read_bytes() == before


def _build_zip(store: ZipStore) -> None:
    """The hierarchy written once into a zip (which cannot rewrite members)."""
    source = MemoryStore()
    build_hierarchy(source)
    for key in sorted(source.list_prefix("")):
        store.set(key, source.get(key))


def test_missing_paths_in_mode_r_create_nothing(tmp_path: Path) -> None:
    for action in (
        lambda: zf.open(str(tmp_path / "missing"), mode="r"),
        lambda: zf.open_group(str(tmp_path / "missing"), mode="r"),
        lambda: zf.open_array(str(tmp_path / "missing"), mode="r"),
        lambda: zf.open(str(tmp_path / "missing.zip"), mode="r"),
    ):
        with pytest.raises(zf.ZarrflowError):
            action()
    assert os.listdir(tmp_path) == []


def test_mode_r_on_a_store_object_is_read_only(hierarchy: Path) -> None:
    store = LocalStore(hierarchy)
    nodes = [
        zf.open(store, mode="r", path="x"),
        zf.open_group(store, mode="r"),
        zf.open_array(store, mode="r", path="v2"),
    ]
    assert [n.read_only for n in nodes] == [True, True, True]
