"""A process killed while adding to an existing zip archive never loses the archive.

A child process opens an existing archive with ``ZipStore(path, mode="a")``
and appends 256 KiB members in a loop, printing each one's number; the parent
SIGKILLs it while it is in the middle of appending (after some members went
in, while the next is being written). Every earlier member must then read
back, byte for byte, and the archive file must be exactly what it was.

The control (:func:`test_the_check_detects_an_archive_broken_by_a_killed_append`)
runs the same child with ``zipfile.ZipFile(path, "a")`` straight on the
archive, which is what ZipStore did before: appending overwrites the old
central directory, so the killed child leaves an archive no reader can open
(``BadZipFile``), every time. Run once against the previous ZipStore (commit
8c1ed39's ``zip.py``), the first test here fails at the first kill: the
archive's bytes had changed and it no longer opened.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from zarrflow.storage import LocalStore, ZipStore
from zarrflow.storage.local import is_temp_name

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"),
]

MEMBERS = {f"a/c/{i}": os.urandom(1000 + 97 * i) for i in range(40)}

APPENDER = r"""
import sys, zipfile
path, how = sys.argv[1], sys.argv[2]
if how == "zipstore":
    from zarrflow.storage import ZipStore
    archive = ZipStore(path, mode="a")
    add = archive.set
else:  # the control: what ZipStore did before, appending in place
    archive = zipfile.ZipFile(path, "a")
    add = archive.writestr
block = bytes(range(256)) * 1024
for i in range(10**6):
    add(f"new/{i}", block)
    sys.stdout.write(f"{i}\n")
    sys.stdout.flush()
    if how == "close" and i == 3:
        break
if how == "close":
    archive.close()
    sys.stdout.write("closed\n")
    sys.stdout.flush()
"""


def make_archive(path: Path) -> str:
    with ZipStore(path, mode="w") as store:
        for key, value in MEMBERS.items():
            store.set(key, value)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def append_and_kill(path: Path, how: str, after: int = 3) -> None:
    """Run the appender and SIGKILL it once it has appended ``after`` + 1 members."""
    child = subprocess.Popen(
        [sys.executable, "-c", APPENDER, str(path), how],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for line in child.stdout:
            if line.strip() == str(after):
                break
        else:
            raise AssertionError(f"the appender stopped early (exit {child.wait()})")
        os.kill(child.pid, signal.SIGKILL)  # mid-loop: the next member is on its way
    finally:
        child.wait(30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL


def test_a_killed_append_leaves_every_earlier_member_readable(tmp_path: Path) -> None:
    path = tmp_path / "data.zip"
    digest = make_archive(path)
    for _ in range(3):  # three kills in a row, each at some point inside a write
        append_and_kill(path, "zipstore")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # untouched
        with ZipStore(path) as store:
            assert sorted(store.list_prefix("")) == sorted(MEMBERS)
            assert store.get_many(list(MEMBERS)) == list(MEMBERS.values())
        with zipfile.ZipFile(path) as raw:
            assert raw.testzip() is None  # every member's CRC checks
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "data.zip"]
    assert len(leftovers) == 3 and all(is_temp_name(n) for n in leftovers)
    assert list(LocalStore(tmp_path).list_prefix("")) == ["data.zip"]  # never listed


def test_an_append_that_closes_commits_old_and_new_members(tmp_path: Path) -> None:
    path = tmp_path / "data.zip"
    make_archive(path)
    child = subprocess.run(
        [sys.executable, "-c", APPENDER, str(path), "close"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0 and child.stdout.endswith("closed\n"), child.stderr
    with ZipStore(path) as store:
        assert store.get_many(list(MEMBERS)) == list(MEMBERS.values())
        assert sorted(store.list_prefix("new/")) == [f"new/{i}" for i in range(4)]
    assert os.listdir(tmp_path) == ["data.zip"]  # the temp file became the archive


def test_opening_for_append_without_writing_leaves_the_archive_alone(tmp_path: Path) -> None:
    path = tmp_path / "data.zip"
    digest = make_archive(path)
    with ZipStore(path, mode="a") as store:
        assert store.get("a/c/1") == MEMBERS["a/c/1"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert os.listdir(tmp_path) == ["data.zip"]


def test_the_check_detects_an_archive_broken_by_a_killed_append(tmp_path: Path) -> None:
    """The control: appending in place (plain zipfile mode "a") and killed, the archive is lost."""
    path = tmp_path / "data.zip"
    make_archive(path)
    append_and_kill(path, "in-place")
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(path)
