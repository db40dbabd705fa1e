"""Independent processes doing read-modify-write on one key lose nothing with ``set_if``.

Each of ``PROCESSES`` plain ``multiprocessing`` processes (no Dask, no shared
lock) appends its own markers to a JSON list stored at one key, ``ROUNDS``
times: read the list with its generation, append, write it back only if the
generation is unchanged (``IfAbsent`` for the first write), and on a
:class:`GenerationConflictError` read again and retry. Afterwards the list
holds every marker exactly once: no update lost, none applied twice.

The control: the same harness with plain ``set`` in place of ``set_if``
(``run_writers(stores, conditional=False)``), 4 processes x 60 rounds, run on
2026-12-04:
local files lost 171, 188 and 188 of 240 updates in three runs; S3 (moto)
lost 162 and 166 of 240 in two runs. With ``set_if``: 0 lost (179 and 368
conflicts retried). The local control loses updates on every run, so it is
kept as a test (:func:`test_the_check_detects_lost_updates_without_conditions`);
the S3 one only recorded here (it costs a few seconds of server time).

The test S3 server serialises the writes of one key
(:class:`zarrflow.testing.s3_server.SerialWrites`) so that a conditional PUT is
atomic as on S3; without it, three runs of the S3 test with ``set_if`` also
lost 0 (moto's window between check and store is narrow), so the result does
not rest on it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from zarrflow.errors import GenerationConflictError
from zarrflow.storage import FsspecStore, IfAbsent, IfGeneration, LocalStore, Store

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="forks the writer processes"),
]

PROCESSES = 4
ROUNDS = 60  # per process: 240 read-modify-write rounds in all
KEY = "a/zarr.json"


def append_markers(
    store_args: tuple[type[Store], tuple[Any, ...]],
    name: str,
    rounds: int,
    conditional: bool,
    start: Any,
    results: Any,
) -> None:
    """One writer: ``rounds`` read-modify-write appends of ``name-<i>`` to the list at KEY."""
    cls, args = store_args
    store = cls(*args)
    start.wait()
    conflicts = 0
    for i in range(rounds):
        while True:
            found = store.get_versioned(KEY)
            items = json.loads(found.data) if found is not None else []
            items.append(f"{name}-{i}")
            data = json.dumps(items).encode()
            if not conditional:
                store.set(KEY, data)
                break
            condition = IfAbsent() if found is None else IfGeneration(found.generation)
            try:
                store.set_if(KEY, data, condition)
                break
            except GenerationConflictError:
                conflicts += 1
    results.put((name, conflicts))


StoreArgs = tuple[type[Store], tuple[Any, ...]]


def run_writers(
    stores: list[StoreArgs], conditional: bool, method: str = "fork"
) -> tuple[list[str], list[str], int]:
    """Run one writer per store to the end: (markers expected, markers stored, conflicts).

    ``stores`` are (class, arguments) pairs, each built inside its writer process,
    started with the multiprocessing ``method``.
    """
    ctx = multiprocessing.get_context(method)
    start = ctx.Barrier(len(stores))
    results = ctx.Queue()
    names = [f"p{n}" for n in range(len(stores))]
    processes = [
        ctx.Process(
            target=append_markers, args=(store_args, n, ROUNDS, conditional, start, results)
        )
        for store_args, n in zip(stores, names, strict=True)
    ]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=200) for _ in processes]
    for p in processes:
        p.join(30)
        assert p.exitcode == 0
    cls, args = stores[0]
    stored = json.loads(cls(*args).get(KEY))
    expected = [f"{n}-{i}" for n in names for i in range(ROUNDS)]
    return expected, stored, sum(c for _, c in outcomes)


def check_no_lost_update(stores: list[StoreArgs], method: str = "fork") -> None:
    expected, stored, conflicts = run_writers(stores, conditional=True, method=method)
    assert len(stored) == len(expected) == PROCESSES * ROUNDS
    assert sorted(stored) == sorted(expected)  # each exactly once
    for name in {m.split("-")[0] for m in expected}:  # each writer's own order kept
        mine = [m for m in stored if m.startswith(name + "-")]
        assert mine == sorted(mine, key=lambda m: int(m.split("-")[1]))
    assert conflicts > 0  # the writers did race: the conditions were exercised


def test_local_processes_lose_no_update(tmp_path: Path) -> None:
    """Local files: flock + rename; 240 rounds from 4 processes, 0 lost."""
    check_no_lost_update([(LocalStore, (str(tmp_path / "root"),))] * PROCESSES)


def test_s3_processes_lose_no_update(s3_store_url: str, s3_storage_options: dict) -> None:
    """S3 (moto): If-Match / If-None-Match PUTs; 240 rounds from 4 processes, 0 lost."""
    check_no_lost_update([(FsspecStore, (s3_store_url, s3_storage_options))] * PROCESSES)


def test_s3_obstore_processes_lose_no_update(s3_store_url: str, s3_storage_options: dict) -> None:
    """S3 (moto) through obstore: If-Match / If-None-Match PUTs; 240 rounds, 0 lost.

    Spawned processes: obstore's runtime does not survive ``fork()`` once used
    (``test_obstore.py`` shows a forked child refused). Control, the same
    harness with plain ``set`` (2026-12-04, 4 processes x 60 rounds): 160 of 240
    updates lost; with ``set_if`` 0 lost (381 conflicts retried).
    """
    from zarrflow.storage import ObstoreStore

    stores = [(ObstoreStore, (s3_store_url, s3_storage_options))] * PROCESSES
    check_no_lost_update(stores, method="spawn")


def test_local_symlinked_root_and_real_path_lose_no_update(tmp_path: Path) -> None:
    """Half the writers go through a symlink to the root: the lock is the real path's."""
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    roots = [real, link, real / "a", link / "a"]  # a store rooted at the array: key "zarr.json"
    check_no_lost_update([(_Rooted, (str(root),)) for root in roots])


class _Rooted(LocalStore):
    """A LocalStore that maps KEY onto the same file whether rooted at the top or at ``a/``."""

    def _path(self, key: str) -> str:
        if self.root.endswith(os.sep + "a") and key.startswith("a/"):
            key = key[2:]
        return super()._path(key)


def test_the_check_detects_lost_updates_without_conditions(tmp_path: Path) -> None:
    """The control: plain ``set`` loses updates under the same harness (171-188 of 240)."""
    expected, stored, conflicts = run_writers(
        [(LocalStore, (str(tmp_path / "root"),))] * PROCESSES, conditional=False
    )
    assert conflicts == 0
    assert len(set(stored)) < len(expected)  # some writer's update was overwritten
