"""Groups and hierarchies shared with zarr-python 3 (and tensorstore), both directions.

A hierarchy is built by one library on disk and read by the other: member
names, nesting, the tree, attributes at every level, and array data. The
consolidated-metadata tests prove the reader really uses the consolidated
document by deleting a nested node's own metadata file after consolidating.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import zarrflow as zf

zarr = pytest.importorskip("zarr")
ts = pytest.importorskip("tensorstore")

pytestmark = [
    pytest.mark.filterwarnings("ignore::zarr.errors.ZarrUserWarning"),
    pytest.mark.filterwarnings("ignore::zarr.errors.UnstableSpecificationWarning"),
]

ROOT_ATTRS = {"title": "root", "nested": {"a": [1, 2.5, None], "b": "é"}}
SUB_ATTRS = {"kind": "inner", "n": 3}
X = np.linspace(0, 1, 11, dtype="f4")
Y = np.arange(35, dtype="i2").reshape(7, 5)
Z = np.array([1, 2, 3, 4, 5], dtype="u8")

#: every node of the hierarchy both libraries build: path -> "group" or the array's data
NODES = {"empty": "group", "sub": "group", "sub/deeper": "group"}
ARRAYS = {"x": X, "sub/y": Y, "sub/deeper/z": Z}
TREE = (
    "/\n"
    "├── empty\n"
    "├── sub\n"
    "│   ├── deeper\n"
    "│   │   └── z (5,) uint64\n"
    "│   └── y (7, 5) int16\n"
    "└── x (11,) float32"
)


@pytest.fixture(params=[2, 3], ids=["v2", "v3"])
def fmt(request) -> int:
    return request.param


def _metadata_file(fmt: int, node: str) -> str:
    if fmt == 3:
        return "zarr.json"
    return ".zgroup" if NODES.get(node) == "group" else ".zarray"


def build_with_zarr_python(path: Path, fmt: int) -> None:
    g = zarr.open_group(str(path), mode="w", zarr_format=fmt, attributes=ROOT_ATTRS)
    g.create_group("empty")
    sub = g.create_group("sub", attributes=SUB_ATTRS)
    deeper = sub.create_group("deeper")
    x = g.create_array("x", shape=X.shape, chunks=(4,), dtype=X.dtype, fill_value=-1)
    x[:] = X
    y = sub.create_array("y", shape=Y.shape, chunks=(3, 2), dtype=Y.dtype)
    y[:] = Y
    y.attrs["units"] = "m"
    z = deeper.create_array("z", shape=Z.shape, chunks=(2,), dtype=Z.dtype)
    z[:] = Z


def build_with_zarrflow(path: Path, fmt: int) -> None:
    g = zf.open_group(str(path), mode="w", zarr_format=fmt, attributes=ROOT_ATTRS)
    g.create_group("empty")
    sub = g.create_group("sub", attributes=SUB_ATTRS)
    deeper = sub.create_group("deeper")
    g.create_array("x", shape=X.shape, chunks=(4,), dtype=X.dtype, fill_value=-1)[:] = X
    y = sub.create_array("y", shape=Y.shape, chunks=(3, 2), dtype=Y.dtype)
    y[:] = Y
    y.attrs["units"] = "m"
    deeper.create_array("z", shape=Z.shape, chunks=(2,), dtype=Z.dtype)[:] = Z


def check_in_zarrflow(g: zf.Group, fmt: int) -> None:
    assert isinstance(g, zf.Group) and g.zarr_format == fmt
    assert g.keys() == ["empty", "sub", "x"]
    assert g.group_keys() == ["empty", "sub"] and g.array_keys() == ["x"]
    assert g.tree() == TREE
    assert dict(g.attrs) == ROOT_ATTRS
    assert dict(g["sub"].attrs) == SUB_ATTRS
    assert dict(g["empty"].attrs) == {} and len(g["empty"]) == 0
    assert dict(g["sub/y"].attrs) == {"units": "m"}
    for name, data in ARRAYS.items():
        assert name in g
        a = g[name]
        assert isinstance(a, zf.Array) and a.zarr_format == fmt
        np.testing.assert_array_equal(a[:], data)
    np.testing.assert_array_equal(g["sub"]["deeper"]["z"][1:4], Z[1:4])
    assert g["x"].fill_value == -1
    assert "nope" not in g and "sub/nope" not in g


def check_in_zarr_python(g, fmt: int) -> None:
    assert g.metadata.zarr_format == fmt
    assert sorted(g.keys()) == ["empty", "sub", "x"]
    assert sorted(g.group_keys()) == ["empty", "sub"] and list(g.array_keys()) == ["x"]
    every = {name for name, _ in g.members(max_depth=None)}
    assert every == set(NODES) | set(ARRAYS)
    assert g.attrs.asdict() == ROOT_ATTRS
    assert g["sub"].attrs.asdict() == SUB_ATTRS
    assert g["sub/y"].attrs.asdict() == {"units": "m"}
    for name, data in ARRAYS.items():
        np.testing.assert_array_equal(g[name][:], data)
    assert g["x"].fill_value == -1


def test_zarr_python_hierarchy_read_by_zarrflow(tmp_path, fmt):
    path = tmp_path / "h.zarr"
    build_with_zarr_python(path, fmt)
    check_in_zarrflow(zf.open_group(str(path), mode="r"), fmt)
    node = zf.open(str(path), mode="r")
    assert isinstance(node, zf.Group)
    assert isinstance(zf.open(str(path), mode="r", path="sub/deeper/z"), zf.Array)
    np.testing.assert_array_equal(zf.open_array(str(path), mode="r", path="sub/y")[:], Y)


def test_zarrflow_hierarchy_read_by_zarr_python(tmp_path, fmt):
    path = tmp_path / "h.zarr"
    build_with_zarrflow(path, fmt)
    check_in_zarr_python(zarr.open_group(str(path), mode="r"), fmt)
    np.testing.assert_array_equal(zarr.open_array(str(path), path="sub/y", mode="r")[:], Y)


def test_edits_cross_over(tmp_path, fmt):
    """Each library changes what the other made; both see every change."""
    path = tmp_path / "h.zarr"
    build_with_zarr_python(path, fmt)
    g = zf.open_group(str(path), mode="r+")
    g.attrs["added_by"] = "zarrflow"
    g["sub/y"][0, :] = 99
    g["sub"].create_array("w", shape=(3,), dtype="i1")[:] = [1, 2, 3]
    g.create_group("new", attributes={"v": 1})
    zg = zarr.open_group(str(path), mode="r+")
    assert zg.attrs["added_by"] == "zarrflow"
    assert zg["sub/y"][0].tolist() == [99] * 5
    assert zg["sub/w"][:].tolist() == [1, 2, 3]
    assert zg["new"].attrs.asdict() == {"v": 1}
    zg.attrs["added_by"] = "zarr-python"
    zg["sub/deeper"].create_array("q", shape=(2, 2), dtype="f8", fill_value=0.5)
    del zg["empty"]
    g2 = zf.open_group(str(path), mode="r")
    assert g2.attrs["added_by"] == "zarr-python"
    assert g2.keys() == ["new", "sub", "x"]
    assert g2["sub/deeper"].keys() == ["q", "z"]
    assert g2["sub/deeper/q"][:].tolist() == [[0.5, 0.5], [0.5, 0.5]]


def test_tensorstore_reads_array_inside_zarrflow_group(tmp_path, fmt):
    path = tmp_path / "h.zarr"
    build_with_zarrflow(path, fmt)
    # the default v2 zstd carries "checksum", which tensorstore refuses; use gzip here
    g = zf.open_group(str(path), mode="r+")
    g["sub"].create_array("g", shape=Y.shape, chunks=(3, 2), dtype=Y.dtype, compressor="gzip")
    g["sub/g"][:] = Y
    t = ts.open(
        {
            "driver": "zarr" if fmt == 2 else "zarr3",
            "kvstore": {"driver": "file", "path": str(path / "sub" / "g")},
        }
    ).result()
    np.testing.assert_array_equal(t.read().result(), Y)


# -- consolidated metadata --------------------------------------------------------------------


def test_zarr_python_consolidated_read_by_zarrflow(tmp_path, fmt):
    path = tmp_path / "h.zarr"
    build_with_zarr_python(path, fmt)
    zarr.consolidate_metadata(str(path))
    # the nested nodes' own metadata goes: only the consolidated copy can open them now
    for node in ("sub/y", "sub/deeper"):
        (path / node / _metadata_file(fmt, node)).unlink()
    g = zf.open_group(str(path), mode="r")
    check_in_zarrflow(g, fmt)
    with pytest.raises(KeyError):
        zf.open_group(str(path), mode="r", use_consolidated=False)["sub/y"]


def test_zarrflow_consolidated_read_by_zarr_python(tmp_path, fmt):
    path = tmp_path / "h.zarr"
    build_with_zarrflow(path, fmt)
    zf.consolidate_metadata(str(path))
    for node in ("sub/y", "sub/deeper"):
        (path / node / _metadata_file(fmt, node)).unlink()
    g = zarr.open_consolidated(str(path), zarr_format=fmt)
    assert g.metadata.consolidated_metadata is not None
    check_in_zarr_python(g, fmt)
    g2 = zarr.open_group(str(path), mode="r", use_consolidated=True)
    np.testing.assert_array_equal(g2["sub/deeper/z"][:], Z)


def test_zarrflow_consolidated_read_by_zarrflow_and_stale_view_agrees(tmp_path, fmt):
    """A member added after consolidating is invisible to both libraries' consolidated view."""
    path = tmp_path / "h.zarr"
    build_with_zarrflow(path, fmt)
    zf.consolidate_metadata(str(path))
    zf.open_group(str(path), mode="r+").create_array("late", shape=(2,), dtype="i1")
    assert "late" not in zf.open_group(str(path), mode="r")
    assert "late" not in zarr.open_consolidated(str(path), zarr_format=fmt)
    assert "late" in zf.open_group(str(path), mode="r", use_consolidated=False)
    zf.consolidate_metadata(str(path))
    assert "late" in zarr.open_consolidated(str(path), zarr_format=fmt)
    assert "late" in zf.open_group(str(path), mode="r")


def test_zarr_python_consolidated_attrs_and_fill_values(tmp_path, fmt):
    """The consolidated copy carries attributes and fill values, not just shapes."""
    path = tmp_path / "h.zarr"
    g = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    a = g.create_array("f", shape=(4,), chunks=(2,), dtype="f8", fill_value=float("nan"))
    a.attrs["note"] = "nan fill"
    a[:2] = [1.0, 2.0]
    zarr.consolidate_metadata(str(path))
    f = zf.open_group(str(path), mode="r")["f"]
    assert dict(f.attrs) == {"note": "nan fill"}
    assert np.isnan(f.fill_value)
    np.testing.assert_array_equal(f[:], [1.0, 2.0, np.nan, np.nan])
