"""Arrays kept compressed in memory: a page's stroke maps are mostly blank paper, so zlib keeps
them in a fraction of their size (record pages at 150 dpi: about a third), and thousands of pages
fit in memory for a whole run. NumPy has no compressed array; zlib at its fastest level costs a
few milliseconds a page."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Packed:
    """One array, zlib-compressed (booleans bit-packed first)."""

    data: bytes
    shape: tuple[int, ...]
    dtype: str

    @classmethod
    def of(cls, array: np.ndarray) -> Packed:
        raw = np.packbits(array) if array.dtype == bool else np.ascontiguousarray(array)
        return cls(zlib.compress(raw.tobytes(), 1), tuple(array.shape), array.dtype.str)

    def unpacked(self) -> np.ndarray:
        raw = zlib.decompress(self.data)
        if np.dtype(self.dtype) == bool:
            count = int(np.prod(self.shape))
            bits = np.unpackbits(np.frombuffer(raw, np.uint8), count=count)
            return bits.view(bool).reshape(self.shape)
        return np.frombuffer(raw, np.dtype(self.dtype)).reshape(self.shape).copy()

    @property
    def nbytes(self) -> int:
        return len(self.data)
