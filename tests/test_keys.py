"""Keys and paths never reach outside the store root.

Member names, node paths and store roots with ``..``, absolute paths,
backslashes, drive letters or NUL are refused with a
:class:`~zarrflow.ZarrflowError` (``KeyPathError`` for keys) or stay inside the
root; the files around the root are checked to be untouched. Zip archives
with escaping member names (``../evil``, ``/abs``) are opened, listed, read
and appended to without any name escaping, and hostile consolidated metadata
never lists a member that is not a valid key.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zarrflow as zf
from zarrflow.storage import LocalStore, MemoryStore, ZipStore

pytestmark = pytest.mark.timeout(120)

HOSTILE_NAMES = [
    "..",
    "../evil",
    "../../evil",
    "a/../../evil",
    "a/..",
    ".",
    "./a",
    "/abs",
    "/abs/evil",
    "//evil",
    "a\\..\\..\\evil",
    "..\\evil",
    "C:/evil",
    "c:evil",
    "a\x00b",
    "evil\x00/../..",
    "a//b",
]


def snapshot(directory: Path) -> dict[str, str]:
    """Relative path -> content hash (or "dir"/"link") of everything below ``directory``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(directory))
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """``(sandbox, root)``: a store root inside a sandbox holding files that must not change."""
    return make_sandbox(tmp_path / "sandbox")


def make_sandbox(box: Path) -> tuple[Path, Path]:
    root = box / "inner" / "root"
    root.mkdir(parents=True)
    (box / "evil").mkdir()
    (box / "evil" / "zarr.json").write_text("{}")
    (box / "inner" / "secret").write_text("secret")
    (box / "abs").mkdir()
    return box, root


def outside(box: Path, root: Path) -> dict[str, str]:
    rel_root = str(root.relative_to(box))
    return {k: v for k, v in snapshot(box).items() if not k.startswith(rel_root)}


def attempt(action: Callable[[], Any]) -> BaseException | None:
    """Run ``action``; return the ZarrflowError it raised (None on success).

    Any other exception propagates and fails the test.
    """
    try:
        action()
    except (zf.ZarrflowError, KeyError) as e:  # KeyError: a missing group member
        return e
    return None


def group_actions(g: zf.Group, name: str) -> list[Callable[[], Any]]:
    return [
        lambda: g.create_array(name, shape=(4,), chunks=(2,), dtype="i1"),
        lambda: g.create_group(name),
        lambda: g.require_group(name),
        lambda: g.require_array(name, shape=(4,), dtype="i1"),
        lambda: g[name],
        lambda: name in g,
        lambda: g.__delitem__(name),
    ]


def api_actions(store: Any, name: str) -> list[Callable[[], Any]]:
    return [
        lambda: zf.create(store, path=name, shape=(4,), chunks=(2,), dtype="i1"),
        lambda: zf.open(store, mode="a", path=name),
        lambda: zf.open(store, mode="r", path=name),
        lambda: zf.open_group(store, mode="a", path=name),
        lambda: zf.open_array(store, mode="a", path=name, shape=(4,), dtype="i1"),
        lambda: zf.to_zarr(np.arange(4, dtype="i1"), store, path=name, overwrite=True),
    ]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_member_names_stay_inside_the_root(sandbox, name: str) -> None:
    box, root = sandbox
    before = outside(box, root)
    g = zf.open_group(str(root), mode="w")
    store = LocalStore(root)
    for action in [
        *group_actions(g, name),
        *api_actions(store, name),
        *api_actions(str(root), name),
    ]:
        attempt(action)
    assert outside(box, root) == before
    for path in root.rglob("*"):  # whatever was created is really inside the root
        assert Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_member_names_are_refused_with_a_key_path_error(sandbox, name: str) -> None:
    _, root = sandbox
    g = zf.open_group(str(root), mode="w")
    for action in group_actions(g, name):
        err = attempt(action)
        assert isinstance(err, zf.KeyPathError), (name, err)
        assert "invalid store key" in str(err) and "expected" in str(err)


segments = st.sampled_from(["a", "b", ".", "..", "", "...", "C:", "\\", "..\\..", "\x00", " ", "é"])
names = st.lists(segments, min_size=1, max_size=5).flatmap(
    lambda parts: st.sampled_from(["/", "\\", ""]).map(lambda sep: sep.join(parts))
)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(name=names)
def test_fuzzed_member_names_never_escape(tmp_path: Path, name: str) -> None:
    box, root = make_sandbox(Path(tempfile.mkdtemp(dir=tmp_path)))
    before = outside(box, root)
    g = zf.open_group(str(root), mode="w")
    for action in [*group_actions(g, name), *api_actions(LocalStore(root), name)]:
        attempt(action)
    assert outside(box, root) == before


def test_nul_in_a_store_root_is_a_zarrflow_error(tmp_path: Path) -> None:
    """Found by this suite: a NUL in a path escaped as a bare ValueError."""
    for url in (f"{tmp_path}/a\x00b", f"file://{tmp_path}/a\x00b", f"{tmp_path}/a\x00.zip"):
        with pytest.raises(zf.StoreError, match=r"NUL|null"):
            zf.create(url, shape=(2,))
        with pytest.raises(zf.StoreError, match=r"NUL|null"):
            zf.open(url, mode="r")
    assert list(tmp_path.iterdir()) == []


def test_writes_replace_a_symlink_and_never_write_through_it(sandbox) -> None:
    """A chunk file that is a symlink to a file outside is replaced, never written through."""
    box, root = sandbox
    a = zf.create(str(root), shape=(4,), chunks=(2,), dtype="i1", compressor=None)
    a[...] = 1
    chunk = root / "c" / "0"
    chunk.unlink()
    chunk.symlink_to(box / "inner" / "secret")
    before = outside(box, root)
    a[0:2] = 5  # a whole-chunk write
    a[2:3] = 6
    assert outside(box, root) == before
    assert not chunk.is_symlink() and a[...].tolist() == [5, 5, 6, 1]


# -- zip archives -------------------------------------------------------------------------------
ESCAPING_MEMBERS = [
    "../evil",
    "../../evil/zarr.json",
    "/abs/evil",
    "a/../../evil",
    "a\\..\\..\\evil",
    "C:/evil",
    "./zarr.json",
    "c/../../evil",
]


def craft_zip(path: Path) -> np.ndarray:
    """A zip holding a valid v3 array at its root plus members with escaping names."""
    source = MemoryStore()
    data = np.arange(16, dtype="i4").reshape(4, 4)
    zf.create(source, shape=(4, 4), chunks=(2, 2), dtype="i4")[...] = data
    with zipfile.ZipFile(path, "w") as archive:
        for key in sorted(source.list_prefix("")):
            archive.writestr(key, source.get(key))
        for name in ESCAPING_MEMBERS:
            info = zipfile.ZipInfo("placeholder")
            info.filename = name  # ZipInfo would normalise it; a hostile tool would not
            archive.writestr(info, b'{"zarr_format": 3, "node_type": "group"}')
    return data


def test_a_crafted_zip_cannot_escape(sandbox) -> None:
    box, root = sandbox
    path = root / "hostile.zip"
    data = craft_zip(path)
    names = {i.filename for i in zipfile.ZipFile(path).infolist()}
    assert set(ESCAPING_MEMBERS) <= names  # the archive really holds the hostile names
    before = outside(box, root)
    with ZipStore(path) as store:
        keys = set(store.list_prefix(""))
        assert keys == {"zarr.json", "c/0/0", "c/0/1", "c/1/0", "c/1/1"}
        for name in ESCAPING_MEMBERS:  # not even readable by their hostile names
            assert isinstance(attempt(lambda n=name: store.get(n)), zf.KeyPathError), name
    a = zf.open(str(path), mode="r")
    np.testing.assert_array_equal(a[...], data)
    assert a.nchunks_initialized == 4
    # appending to the archive writes members, never files
    b = zf.open_array(str(path), mode="r+")
    for name in ESCAPING_MEMBERS:
        attempt(lambda n=name: zf.create(str(path), path=n, shape=(2,)))
    # attributes rewrite zarr.json, which a zip cannot replace: refused, nothing written
    assert isinstance(attempt(lambda: b.attrs.__setitem__("x", 1)), zf.StoreError)
    assert outside(box, root) == before
    assert sorted(p.name for p in root.iterdir()) == ["hostile.zip"]


# -- consolidated metadata ----------------------------------------------------------------------
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_hostile_consolidated_member_names_are_never_listed(zarr_format: int) -> None:
    """Found by this suite: '..' in consolidated metadata was listed, then refused on access."""
    name = f"consolidated-{zarr_format}-{os.getpid()}"
    store = MemoryStore(name)
    g = zf.open_group(store, mode="w", zarr_format=zarr_format)
    g.create_array("x", shape=(2,), dtype="i1")
    zf.consolidate_metadata(store)
    hostile = ["..", "..\\evil", "a\x00b", "C:", "../up"]
    if zarr_format == 2:
        doc = json.loads(store.get(".zmetadata"))
        for bad in hostile:
            doc["metadata"][f"{bad}/.zarray"] = doc["metadata"]["x/.zarray"]
        store.set(".zmetadata", json.dumps(doc).encode())
    else:
        doc = json.loads(store.get("zarr.json"))
        inline = doc["consolidated_metadata"]["metadata"]
        for bad in hostile:
            inline[bad] = inline["x"]
        store.set("zarr.json", json.dumps(doc).encode())
    ro = zf.open_group(MemoryStore(name, read_only=True), mode="r")
    assert ro.metadata.consolidated is not None  # the consolidated path is the one tested
    assert list(ro) == ["x"]
    assert [k for k, _ in ro.members()] == ["x"]
    for bad in hostile:
        assert isinstance(attempt(lambda b=bad: ro[b]), zf.KeyPathError)
