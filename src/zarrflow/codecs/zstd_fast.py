"""zstd with reused per-thread contexts (python-zstandard), byte-compatible with numcodecs.

numcodecs' ``Zstd`` creates a fresh (de)compression context on every call; for
small chunks that setup costs several times the decompression itself. This
module keeps one context per thread and codec configuration, and writes the
same frames numcodecs writes (content size recorded, optional checksum), so
the bytes on disk do not change. :meth:`FastZstd.decompress_many` decodes a
batch of small chunks in one call, which releases the GIL once for the whole
batch instead of once per chunk (what lets threads decode small chunks in
parallel).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

try:  # an optional accelerator: without it the numcodecs path is used
    import zstandard
except ImportError:  # pragma: no cover - zstandard is a dependency
    zstandard = None

__all__ = ["FastZstd", "available", "batches_available"]


def available() -> bool:
    """True when python-zstandard is importable."""
    return zstandard is not None


def batches_available() -> bool:
    """True when python-zstandard has ``multi_decompress_to_buffer`` (marked experimental there)."""
    decompressor = getattr(zstandard, "ZstdDecompressor", None)
    return hasattr(decompressor, "multi_decompress_to_buffer")


class FastZstd:
    """Compress and decompress zstd frames with reused per-thread contexts.

    Parameters
    ----------
    level
        Compression level as numcodecs takes it (0 means zstd's default, 3).
    checksum
        Write (and verify) the frame's content checksum.

    Examples
    --------
    >>> z = FastZstd(level=3)
    >>> out = np.empty(5, np.uint8)
    >>> z.decompress_into(z.compress(b"hello"), out)
    >>> out.tobytes()
    b'hello'
    """

    def __init__(self, level: int = 0, checksum: bool = False) -> None:
        self.level = int(level)
        self.checksum = bool(checksum)
        self._local = threading.local()

    def _cctx(self):
        cctx = getattr(self._local, "cctx", None)
        if cctx is None:
            cctx = zstandard.ZstdCompressor(
                level=self.level or 3, write_checksum=self.checksum, write_content_size=True
            )
            self._local.cctx = cctx
        return cctx

    def _dctx(self):
        dctx = getattr(self._local, "dctx", None)
        if dctx is None:
            dctx = zstandard.ZstdDecompressor()
            self._local.dctx = dctx
        return dctx

    def compress(self, data: Any) -> bytes:
        """One zstd frame holding ``data``."""
        return self._cctx().compress(data)

    def decompress(self, data: Any, max_size: int) -> bytes:
        """Decompress one frame, refusing output larger than ``max_size``."""
        return self._dctx().decompress(data, max_output_size=max_size)

    def decompress_into(self, data: Any, out: np.ndarray) -> None:
        """Decompress one frame into ``out`` (C-contiguous), which it must fill exactly."""
        result = self._dctx().decompress(data, max_output_size=out.nbytes)
        if len(result) != out.nbytes:
            raise ValueError(f"decoded {len(result)} bytes, expected {out.nbytes}")
        out.reshape(-1).view(np.uint8)[:] = np.frombuffer(result, np.uint8)

    def decompress_many(self, frames: Sequence[Any], size: int) -> Sequence[Any]:
        """Decompress many frames of ``size`` bytes each in one call (the GIL released once).

        Returns one buffer per frame. Each frame must decode to exactly
        ``size`` bytes: the output is allocated from ``size``, never from what a
        frame declares, and a frame decoding to more or less raises
        ``zstandard.ZstdError`` naming its position.

        Examples
        --------
        >>> z = FastZstd()
        >>> [bytes(b) for b in z.decompress_many([z.compress(b"ab"), z.compress(b"cd")], 2)]
        [b'ab', b'cd']
        """
        sizes = np.full(len(frames), size, np.uint64)
        return self._dctx().multi_decompress_to_buffer(frames, decompressed_sizes=sizes)

    def __getstate__(self) -> dict[str, Any]:
        return {"level": self.level, "checksum": self.checksum}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)
