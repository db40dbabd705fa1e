"""Arrays and groups: the nodes of a Zarr hierarchy.

:class:`Array` and :class:`Group` are what :mod:`zarrflow.api` returns;
:mod:`.nodes` reads, creates and probes node metadata, :mod:`.attributes`
holds the ``attrs`` mapping and :mod:`.info` the ``info`` summaries;
:mod:`.chunking` says what ``chunks=``/``shards=`` mean at creation (``"auto"``,
``-1``) and :mod:`.codec_views` shows an array's codecs as zarr-python does
(``compressors``, ``filters``, ``serializer``).
"""

from __future__ import annotations

from zarrflow.hierarchy.array import Array
from zarrflow.hierarchy.group import Group

__all__ = ["Array", "Group"]
