"""Stores that hold chunk readers at a barrier: lost-update tests made deterministic.

A read-modify-write loses an update when two writers read a chunk before
either has written it back. Locks prevent that; to show a test would catch
it with the locks switched off, these stores make every reader of a chunk
wait until ``parties`` readers have arrived, so the unsafe interleaving
happens every time rather than by luck of timing.

* :class:`BarrierStore` — threads of one process (a ``threading.Barrier``).
* :class:`ClusterBarrierStore` — tasks on the workers of a ``distributed``
  cluster (a counter in a ``distributed.Variable`` and a ``distributed.Event``).
"""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

from zarrflow.storage import LocalStore, MemoryStore

__all__ = ["BarrierStore", "ClusterBarrierStore"]


class BarrierStore(MemoryStore):
    """A memory store whose chunk reads (keys under ``c/``) wait for ``parties`` readers.

    Set ``armed`` False to read without waiting (to check the result).

    Examples
    --------
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> store = BarrierStore(2)
    >>> store.set("c/0", b"x")
    >>> with ThreadPoolExecutor(2) as pool:  # both readers pass together
    ...     list(pool.map(store.get, ["c/0", "c/0"]))
    [b'x', b'x']
    """

    def __init__(self, parties: int, armed: bool = True, timeout: float = 30) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=timeout)
        self.armed = armed

    def get(self, key: str) -> bytes | None:
        value = super().get(key)
        if self.armed and key.startswith("c/"):
            self.barrier.wait()
        return value


class ClusterBarrierStore(LocalStore):
    """A local store whose chunk reads wait until ``parties`` readers arrived, in any worker.

    Make one with :meth:`on`, which names the barrier and sets its counter
    on the cluster. Pickles by root, parties and name.
    """

    def __init__(self, root: str | os.PathLike[str], parties: int, name: str) -> None:
        super().__init__(root)
        self.parties = parties
        self.name = name

    @classmethod
    def on(cls, client: Any, root: str | os.PathLike[str], parties: int) -> ClusterBarrierStore:
        """A store at ``root`` with a new barrier for ``parties`` readers on the cluster."""
        from distributed import Variable

        name = f"zarrflow-barrier-{uuid.uuid4().hex}"
        Variable(f"{name}-count", client=client).set(0)
        return cls(root, parties, name)

    def get(self, key: str) -> bytes | None:
        value = super().get(key)
        if key.startswith("c/"):
            from distributed import Event, Lock, Variable

            with Lock(f"{self.name}-lock"):
                counter = Variable(f"{self.name}-count")
                n = counter.get() + 1
                counter.set(n)
            if n >= self.parties:
                Event(self.name).set()
            Event(self.name).wait(30)
        return value

    def __reduce__(self) -> tuple[Any, ...]:
        return (ClusterBarrierStore, (self.root, self.parties, self.name))
