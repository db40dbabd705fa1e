"""Arrays and groups: the nodes of a Zarr hierarchy.

:class:`Array` and :class:`Group` are what :mod:`zarrflow.api` returns;
:mod:`.nodes` reads, creates and probes node metadata, :mod:`.attributes`
holds the ``attrs`` mapping and :mod:`.info` the ``info`` summaries.
:mod:`.layout` holds what an array reports about its chunks, shards, codecs
and stored bytes (zarr-python's names); :mod:`.chunking` says what
``chunks=``/``shards=`` mean at creation (``"auto"``, ``-1``);
:mod:`.codec_views` splits an array's codecs by kind as zarr-python does.
"""

from __future__ import annotations

from zarrflow.hierarchy.array import Array
from zarrflow.hierarchy.group import Group
from zarrflow.hierarchy.unreadable import UnreadableMember

__all__ = ["Array", "Group", "UnreadableMember"]
