"""Telemetry: where a chunk operation's time goes (storage, codec, copies, waits, retries).

:mod:`.events` is the hook API every layer reports through (importable from
any layer, like :mod:`zarrflow.errors`); :mod:`.profile` gathers events into
:func:`zarrflow.profile`'s tables, on threads and on a cluster.
"""

from __future__ import annotations

from zarrflow.telemetry.events import (
    HOOKS,
    Event,
    add_hook,
    emit,
    emit_since,
    hook,
    operation,
    remove_hook,
    report_conflict,
)
from zarrflow.telemetry.profile import PhaseTotal, Profile, profile

__all__ = [
    "HOOKS",
    "Event",
    "PhaseTotal",
    "Profile",
    "add_hook",
    "emit",
    "emit_since",
    "hook",
    "operation",
    "profile",
    "remove_hook",
    "report_conflict",
]
