"""Groups: creation, members, nesting, tree, attributes, consolidated metadata."""

from __future__ import annotations

import numpy as np
import pytest

import zarrflow as zf
from zarrflow.storage import MemoryStore


@pytest.fixture(params=[2, 3], ids=["v2", "v3"])
def group(request):
    return zf.open_group(MemoryStore(), mode="w", zarr_format=request.param)


def test_members_and_nesting(group):
    x = group.create_array("x", shape=(10,), chunks=(5,), dtype="f4")
    sub = group.create_group("sub", attributes={"kind": "inner"})
    y = sub.create_array("y", shape=(3, 3), dtype="i2")
    y[:] = 7
    assert group.keys() == ["sub", "x"] and len(group) == 2
    assert "x" in group and "sub/y" in group and "nope" not in group
    assert group["sub/y"][:].sum() == 63
    assert group["sub"].attrs["kind"] == "inner"
    assert group.array_keys() == ["x"] and group.group_keys() == ["sub"]
    assert x.zarr_format == group.zarr_format == y.zarr_format
    with pytest.raises(KeyError):
        group["missing"]


def test_tree(group):
    group.create_group("a").create_array("b", shape=(2,), dtype="u1")
    group.create_array("c", shape=(4, 4), dtype="f8")
    assert group.tree() == "/\n├── a\n│   └── b (2,) uint8\n└── c (4, 4) float64"


def test_require_and_delete(group):
    g1 = group.require_group("g")
    assert group.require_group("g").path == g1.path
    group.create_array("arr", shape=(2,), dtype="i1")
    with pytest.raises(zf.ContainsArrayError):
        group.require_group("arr")
    assert group.require_array("arr", shape=(2,), dtype="i1").shape == (2,)
    del group["arr"]
    assert "arr" not in group
    with pytest.raises(zf.ContainsGroupError):
        group.create_group("g")


def test_member_names_cannot_escape(group):
    for bad in ("../x", "/abs", "a/../../b", "a\\b", "nul\x00"):
        with pytest.raises(zf.KeyPathError):
            group.create_array(bad, shape=(1,), dtype="i1")


def test_open_group_modes(tmp_path):
    url = str(tmp_path / "g.zarr")
    with pytest.raises(zf.GroupNotFoundError):
        zf.open_group(url, mode="r")
    g = zf.open_group(url, mode="a", attributes={"title": "t"})
    g.create_array("x", shape=(2,), dtype="i1")
    assert zf.open(url, mode="r").attrs["title"] == "t"
    with pytest.raises(zf.ContainsArrayError):
        zf.open_group(url, path="x", mode="r")
    ro = zf.open_group(url, mode="r")
    with pytest.raises(zf.ReadOnlyError):
        ro.create_group("y")


def test_consolidated_metadata_opens_with_one_read(tmp_path, group):
    store = group.store
    group.create_group("s").create_array("z", shape=(4,), chunks=(2,), dtype="i4")[:] = 3
    group.create_array("x", shape=(2,), dtype="f8")
    zf.consolidate_metadata(store)
    ro_store = type(store)(store.url.removeprefix("memory://"), read_only=True)
    g = zf.open_group(ro_store, mode="r")
    assert g.keys() == ["s", "x"]
    np.testing.assert_array_equal(g["s/z"][:], [3, 3, 3, 3])
